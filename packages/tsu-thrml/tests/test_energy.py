"""The energies computed on the device equal tsu-core's reference `tsu_core.energy`."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tsu_core.energy import energy
from tsu_core.testing.models import random_categorical_model, random_spin_model
from tsu_thrml.energy import categorical_energy, spin_energy


def _edges(topology):
    return jnp.asarray(topology.edges[:, 0]), jnp.asarray(topology.edges[:, 1])


def test_spin_energy_matches_reference() -> None:
    topology, parameters = random_spin_model(seed=1, num_nodes=11)
    states = np.where(np.random.default_rng(0).random((4, 3, 11)) < 0.5, 1, -1).astype(np.int8)
    ours = spin_energy(
        jnp.asarray(states),
        jnp.asarray(parameters.weights, jnp.float32),
        jnp.asarray(parameters.biases, jnp.float32),
        *_edges(topology),
    )
    np.testing.assert_allclose(ours, energy(topology, parameters, states), rtol=1e-5, atol=1e-5)


def test_categorical_energy_matches_reference() -> None:
    topology, parameters = random_categorical_model(seed=2, num_nodes=6, num_categories=4)
    states = np.random.default_rng(1).integers(0, 4, size=(5, 2, 6))
    ours = categorical_energy(
        jnp.asarray(states),
        jnp.asarray(parameters.weights, jnp.float32),
        jnp.asarray(parameters.biases, jnp.float32),
        *_edges(topology),
    )
    np.testing.assert_allclose(ours, energy(topology, parameters, states), rtol=1e-5, atol=1e-5)
