"""Framework-agnostic array helpers: read shapes, check values and convert between numpy, JAX
and torch without copying to the host.

Inputs may be numpy arrays, JAX arrays or torch tensors (or nested Python lists). These helpers
only touch the array's own methods, so a GPU tensor stays on its GPU; `to_numpy` is the one
place that copies to the host and is meant for the reference backend and tests. `to_torch` and
`to_jax` cross through DLPack; they import torch or JAX when called, never when this module is
imported (tsu-core depends on numpy only).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def framework(array: Any) -> str:
    """'numpy', 'torch', 'jax' or 'python' (lists, scalars)."""
    module = type(array).__module__.split(".")[0]
    if isinstance(array, np.ndarray | np.generic):
        return "numpy"
    if module == "torch":
        return "torch"
    if module in ("jax", "jaxlib"):
        return "jax"
    return "python"


def shape_of(array: Any) -> tuple[int, ...]:
    """The shape of an array of any supported framework."""
    shape = getattr(array, "shape", None)
    if shape is None:
        return np.shape(array)
    return tuple(int(size) for size in shape)


def array_problem(array: Any) -> str | None:
    """Why an input cannot be read as an array of real numbers (ragged nesting, strings,
    complex or boolean values, a torch meta tensor), or None if it can."""
    if getattr(array, "is_meta", False):
        return f"expected an array with values, got a meta tensor of shape {tuple(array.shape)}"
    if not hasattr(array, "shape"):
        try:
            array = np.asarray(array)
        except ValueError:
            return "expected a rectangular array, got a ragged nested list"
    if not real_dtype(array):
        return f"expected real numbers (float or integer), got dtype {array.dtype}"
    return None


def real_dtype(array: Any) -> bool:
    """Whether an array holds real numbers: not complex, boolean, string or object values.
    Reads only the dtype's name, so bfloat16 and every framework's float types pass."""
    dtype = getattr(array, "dtype", None)
    if dtype is None:
        dtype = np.asarray(array).dtype
    name = str(dtype).removeprefix("torch.")
    if name.startswith("complex") or name == "bool":
        return False
    if isinstance(dtype, np.dtype):  # numpy and JAX; ml_dtypes' bfloat16 has kind "V"
        return dtype.kind in "iuf" or name.startswith(("bfloat", "float"))
    return True


def all_finite(array: Any, allow_negative_infinity: bool = False) -> bool:
    """Whether every entry is finite (optionally allowing -inf, as in masked logits)."""
    kind = framework(array)
    if kind == "torch":
        import torch

        if not allow_negative_infinity:
            return bool(torch.isfinite(array).all())
        return not bool((torch.isnan(array) | (array == float("inf"))).any())
    if kind == "jax":
        # One compiled call and one read-back: each eager jnp operation is its own dispatch on
        # a GPU, and this check runs on every sampling call.
        return bool(_jax_finite_check(allow_negative_infinity)(array))
    values = np.asarray(array, dtype=float)
    bad = np.isnan(values) | (values == np.inf)
    if not allow_negative_infinity:
        bad |= values == -np.inf
    return not bad.any()


def absolute_sum(array: Any) -> float:
    """The sum of |x| over an array (float64 on the host and in torch; float32 in JAX, where
    an overflow gives inf); NaN if any entry is NaN. One read-back per array."""
    kind = framework(array)
    if kind == "torch":
        import torch

        return float(array.detach().abs().sum(dtype=torch.float64))
    if kind == "jax":
        return float(_jax_absolute_sum()(array))
    return float(np.abs(np.asarray(array, dtype=np.float64)).sum())


@functools.cache
def _jax_absolute_sum() -> Any:
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda array: jnp.abs(array.astype(jnp.float32)).sum())


@functools.cache
def _jax_finite_check(allow_negative_infinity: bool) -> Any:
    import jax
    import jax.numpy as jnp

    def check(array: Any) -> Any:
        if allow_negative_infinity:
            return ~(jnp.isnan(array) | (array == jnp.inf)).any()
        return jnp.isfinite(array).all()

    return jax.jit(check)


LOGITS_VALID, LOGITS_NAN_OR_POSITIVE_INFINITY, LOGITS_ROW_IMPOSSIBLE = 0, 1, 2


def logits_status(array: Any) -> int:
    """`LOGITS_VALID`, `LOGITS_NAN_OR_POSITIVE_INFINITY`, or `LOGITS_ROW_IMPOSSIBLE` (a row of
    the last axis with no entry above -inf, so no category to draw); one read-back."""
    kind = framework(array)
    if kind == "torch":
        import torch

        bad = (torch.isnan(array) | (array == float("inf"))).any()
        impossible = ~(array > float("-inf")).any(-1).all()
        return int(torch.where(bad, 1, torch.where(impossible, 2, 0)))
    if kind == "jax":
        return int(_jax_logits_status()(array))
    values = np.asarray(array, dtype=float)
    if (np.isnan(values) | (values == np.inf)).any():
        return LOGITS_NAN_OR_POSITIVE_INFINITY
    if not (values > -np.inf).any(-1).all():
        return LOGITS_ROW_IMPOSSIBLE
    return LOGITS_VALID


@functools.cache
def _jax_logits_status() -> Any:
    import jax
    import jax.numpy as jnp

    def status(array: Any) -> Any:
        bad = (jnp.isnan(array) | (array == jnp.inf)).any()
        impossible = ~(array > -jnp.inf).any(-1).all()
        return jnp.where(bad, 1, jnp.where(impossible, 2, 0))

    return jax.jit(status)


def to_numpy(array: Any, dtype: Any = None) -> np.ndarray:
    """Copy an array of any framework to a numpy array on the host."""
    kind = framework(array)
    if kind == "torch":
        array = array.detach().cpu().numpy()
    elif kind == "jax":
        array = np.asarray(array)
    return np.asarray(array, dtype=dtype)


def to_torch(array: Any, device: Any = None, dtype: Any = None) -> Any:
    """A torch tensor holding `array` (numpy, JAX, torch or nested lists), through DLPack.

    A JAX array crosses with `torch.from_dlpack`: no copy on its own device. A writeable,
    contiguous numpy array is shared; a read-only or strided one (host results of the reference
    backend may be read-only) is copied, as is an array DLPack refuses (on a device torch does
    not see). A torch tensor is used as it is. The tensor then moves to `device` and `dtype`,
    device to device, without a copy where they already match.

    Arguments:
        array: the array to convert.
        device: a torch device or its name ("cpu", "cuda:0"); None keeps the array's device.
        dtype: a torch dtype; None keeps the array's dtype.

    Returns:
        A `torch.Tensor`.
    """
    import torch

    kind = framework(array)
    if kind == "torch":
        tensor = array
    elif kind == "numpy" or not hasattr(array, "__dlpack__"):
        tensor = _torch_from_host(torch, np.asarray(array))
    else:
        try:
            tensor = torch.from_dlpack(array)
        except (RuntimeError, TypeError, BufferError):
            tensor = _torch_from_host(torch, to_numpy(array))
    if device is None and dtype is None:
        return tensor
    return tensor.to(
        device=tensor.device if device is None else device,
        dtype=tensor.dtype if dtype is None else dtype,
    )


def _torch_from_host(torch: Any, array: np.ndarray) -> Any:
    """A tensor sharing a writeable, contiguous numpy array, else holding a copy of it."""
    if array.flags.writeable and array.flags.c_contiguous and array.ndim > 0:
        return torch.from_dlpack(array)
    return torch.from_numpy(np.array(array))


def to_jax(array: Any, dtype: Any = None) -> Any:
    """A JAX array holding `array` (numpy, JAX, torch or nested lists).

    A torch tensor crosses through DLPack (detached, made contiguous on its own device first):
    a CUDA tensor becomes a JAX array on the same GPU without a round trip through the host.
    Where DLPack refuses (a device JAX does not see) the tensor is copied through the host. A
    JAX array is used as it is; numpy arrays and lists are put on JAX's default device.

    Arguments:
        array: the array to convert.
        dtype: a JAX or numpy dtype; None keeps the array's dtype (as JAX holds it: without
            `jax_enable_x64`, 64-bit host values become 32-bit).

    Returns:
        A `jax.Array`.
    """
    import jax.numpy as jnp

    kind = framework(array)
    if kind in ("numpy", "python"):
        return jnp.asarray(np.asarray(array), dtype=dtype)
    if kind == "torch":
        tensor = array.detach()
        if not tensor.is_contiguous():
            tensor = tensor.contiguous()
        try:
            array = jnp.from_dlpack(tensor)
        except (RuntimeError, TypeError, BufferError):
            array = jnp.asarray(to_numpy(tensor))
    return array if dtype is None else array.astype(dtype)


def all_spins(array: Any) -> bool:
    """Whether every entry is -1 or +1."""
    kind = framework(array)
    if kind == "torch":
        return bool(((array == 1) | (array == -1)).all())
    if kind == "jax":
        return bool(((array == 1) | (array == -1)).all())
    values = np.asarray(array)
    return bool(((values == 1) | (values == -1)).all())


def all_categories(array: Any, num_categories: int) -> bool:
    """Whether every entry is an integer in [0, num_categories)."""
    kind = framework(array)
    if kind in ("torch", "jax"):
        return bool(((array >= 0) & (array < num_categories) & (array == array // 1)).all())
    values = np.asarray(array)
    if values.dtype.kind not in "iuf":
        return False
    return bool(((values >= 0) & (values < num_categories) & (values == np.floor(values))).all())
