"""Turning tsu-core values (keys, states) into thrml's JAX ones, and back again.

thrml stores a spin as a boolean (`True` is +1) and a categorical node as an unsigned integer;
tsu-core speaks +-1 spins (int8) and category indices (int32). The two encodings meet here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tsu_core.keys import Key

# thrml's default categorical dtype (`thrml.pgm.DEFAULT_NODE_SHAPE_DTYPES`) holds 256 states.
CATEGORY_DTYPE = jnp.uint8
MAX_CATEGORIES = 256


def jax_key(key: Key) -> jax.Array:
    """The JAX (threefry) key whose two 32-bit words are the words of a tsu-core `Key`."""
    return jax.random.wrap_key_data(jnp.asarray(key.words(), dtype=jnp.uint32))


def encode_states(states: jax.Array, is_spin: bool) -> jax.Array:
    """tsu-core states (+-1 spins or category indices) in thrml's encoding."""
    if is_spin:
        return states > 0
    return states.astype(CATEGORY_DTYPE)


def decode_states(states: jax.Array, is_spin: bool) -> jax.Array:
    """thrml states (booleans or unsigned categories) in tsu-core's encoding."""
    if is_spin:
        return jnp.where(states, 1, -1).astype(jnp.int8)
    return states.astype(jnp.int32)
