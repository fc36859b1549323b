"""Bringing inputs onto the device: numpy, JAX and torch arrays, without host copies.

A torch tensor crosses through DLPack (`jax.dlpack.from_dlpack`), so a CUDA tensor becomes a
JAX array on the same GPU with no round trip through the host; a JAX array is used as it is.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tsu_core.arrays import framework


def to_jax(array: Any, dtype: Any = None) -> jax.Array:
    """A JAX array holding `array` (torch through DLPack, zero-copy where the layout allows)."""
    kind = framework(array)
    if kind == "torch":
        if array.requires_grad:
            array = array.detach()
        if not array.is_contiguous():
            array = array.contiguous()
        if str(array.dtype) == "torch.bool":
            array = array.to(dtype=__import__("torch").int8)
        result = jax.dlpack.from_dlpack(array)
    elif kind == "jax":
        result = array
    else:
        result = jnp.asarray(np.asarray(array))
    return result if dtype is None else result.astype(dtype)


def jax_key(words: jax.Array) -> jax.Array:
    """A typed JAX threefry key from its (2,) uint32 data (usable inside jit)."""
    return jax.random.wrap_key_data(words, impl="threefry2x32")
