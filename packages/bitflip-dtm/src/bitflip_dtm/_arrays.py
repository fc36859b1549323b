"""Backend arrays to torch through DLPack (no host copy when both live on one device)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_torch(
    array: Any, device: torch.device | str, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A torch tensor of a backend's array (numpy, JAX, torch) via `torch.from_dlpack`.

    numpy arrays that are read-only or not contiguous cannot be exported through DLPack; those
    (host arrays, from the reference backend) are copied instead.
    """
    if isinstance(array, torch.Tensor):
        tensor = array
    elif isinstance(array, np.ndarray | np.generic):
        array = np.asarray(array)
        if array.flags.writeable and array.flags.c_contiguous and array.ndim > 0:
            tensor = torch.from_dlpack(array)
        else:
            tensor = torch.from_numpy(np.array(array))
    else:
        tensor = torch.from_dlpack(array)
    return tensor.to(device=device, dtype=dtype if dtype is not None else tensor.dtype)
