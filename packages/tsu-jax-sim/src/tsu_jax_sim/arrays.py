"""JAX keys from tsu-core's key words. (Arrays of other frameworks become JAX arrays through
`tsu_core.arrays.to_jax`.)"""

from __future__ import annotations

import jax


def jax_key(words: jax.Array) -> jax.Array:
    """A typed JAX threefry key from its (2,) uint32 data (usable inside jit)."""
    return jax.random.wrap_key_data(words, impl="threefry2x32")
