"""Moving backend arrays into torch through DLPack, without a host copy."""

from __future__ import annotations

from typing import Any

import torch


def to_torch(
    array: Any, like: torch.Tensor | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A torch view of a backend's array (`torch.from_dlpack`), moved to `like`'s device.

    On the same device this is zero-copy. When the backend samples on another device (the
    reference backend samples on the CPU) the tensor is moved there once, device to device.
    """
    tensor = array if isinstance(array, torch.Tensor) else torch.from_dlpack(array)
    device = like.device if like is not None else tensor.device
    target = dtype if dtype is not None else (like.dtype if like is not None else tensor.dtype)
    return tensor.to(device=device, dtype=target)
