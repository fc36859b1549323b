r"""The energy of returned states, on the device, in tsu-core's convention (`tsu_core.energy`).

Spins: $E(s) = -\sum_{e=(i,j)} J_e s_i s_j - \sum_i h_i s_i$.
Categorical: $E(x) = -\sum_{e=(i,j)} W_e[x_i, x_j] - \sum_i h_i[x_i]$.

thrml's factors compute the same energy from block states; here it is evaluated directly on the
(..., N) arrays that the backend returns, so no extra state layout is built.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def spin_energy(
    states: jax.Array, weights: jax.Array, biases: jax.Array, first: jax.Array, second: jax.Array
) -> jax.Array:
    """Energies of (..., N) +-1 states; `first`, `second` are the edges' endpoints (E,)."""
    spins = states.astype(weights.dtype)
    pair = (spins[..., first] * spins[..., second]) @ weights
    return -pair - spins @ biases


def categorical_energy(
    states: jax.Array, weights: jax.Array, biases: jax.Array, first: jax.Array, second: jax.Array
) -> jax.Array:
    """Energies of (..., N) category indices; weights (E, K, K), biases (N, K)."""
    edge_index = jnp.arange(weights.shape[0])
    node_index = jnp.arange(biases.shape[0])
    pair = weights[edge_index, states[..., first], states[..., second]].sum(-1)
    single = biases[node_index, states].sum(-1)
    return -pair - single
