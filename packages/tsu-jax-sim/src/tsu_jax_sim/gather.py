"""Reading the nodes of a block out of a states array: a slice when the node indices are
contiguous (a bipartite block), a gather otherwise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def contiguous(indices: np.ndarray) -> bool:
    """True when `indices` is a non-empty run of consecutive integers."""
    return bool(indices.size) and bool(np.all(np.diff(indices) == 1))


def columns(array: jax.Array, indices: np.ndarray) -> jax.Array:
    """array[:, indices], as a slice when the indices are contiguous (no gather)."""
    if contiguous(indices):
        return jax.lax.slice_in_dim(array, int(indices[0]), int(indices[-1]) + 1, axis=1)
    return array[:, indices]


def take(array: jax.Array, indices: np.ndarray, axis: int) -> jax.Array:
    """array[..., indices, ...] along `axis` (`jnp.take`), as a slice when the indices are
    contiguous."""
    if contiguous(indices):
        return jax.lax.slice_in_dim(array, int(indices[0]), int(indices[-1]) + 1, axis=axis)
    return jnp.take(array, indices, axis=axis)
