"""The energy convention, its local fields, and exact enumeration agree with each other."""

import numpy as np

from tsu_core import energy, local_fields
from tsu_core.exact import ExactDistribution, all_states
from tsu_core.testing import random_categorical_model, random_spin_model


def test_spin_local_field_is_the_energy_change_of_a_flip():
    topology, parameters = random_spin_model(0, 9)
    states = np.where(np.random.default_rng(1).random((20, 9)) < 0.5, 1, -1)
    fields = local_fields(topology, parameters, states)
    for node in range(9):
        flipped = states.copy()
        flipped[:, node] *= -1
        change = energy(topology, parameters, flipped) - energy(topology, parameters, states)
        assert np.allclose(change, 2 * states[:, node] * fields[:, node])


def test_categorical_logits_are_energy_differences():
    topology, parameters = random_categorical_model(0, 5, 3)
    states = np.random.default_rng(2).integers(0, 3, (10, 5))
    logits = local_fields(topology, parameters, states)
    for node in range(5):
        for value in range(3):
            changed = states.copy()
            changed[:, node] = value
            difference = energy(topology, parameters, states) - energy(
                topology, parameters, changed
            )
            expected = logits[:, node, value] - logits[np.arange(10), node, states[:, node]]
            assert np.allclose(difference, expected)


def test_exact_distribution_by_brute_force():
    topology, parameters = random_spin_model(3, 5)
    exact = ExactDistribution.of(topology, parameters, beta=0.7)
    spins = 1 - 2 * all_states(5, 2)
    weights = np.exp(-0.7 * energy(topology, parameters, spins))
    assert np.isclose(exact.log_partition, np.log(weights.sum()))
    assert np.allclose(np.sort(exact.probabilities), np.sort(weights / weights.sum()))
    assert np.allclose(exact.state_index(exact.states), np.arange(32))
    assert np.allclose(exact.node_moments, (weights @ spins) / weights.sum())


def test_clamped_distribution_is_the_conditional():
    topology, parameters = random_spin_model(4, 6)
    full = ExactDistribution.of(topology, parameters, 1.3)
    clamped = ExactDistribution.of(topology, parameters, 1.3, [1, 4], [1, -1])
    match = (full.states[:, 1] == 1) & (full.states[:, 4] == -1)
    conditional = full.probabilities[match] / full.probabilities[match].sum()
    order = full.state_index(full.states[match])
    assert np.allclose(
        np.sort(conditional),
        np.sort(clamped.probabilities[clamped.state_index(full.states[match])]),
    )
    assert order.size == clamped.probabilities.size


def test_categorical_moments_are_normalised():
    topology, parameters = random_categorical_model(5, 4, 3)
    exact = ExactDistribution.of(topology, parameters, 1.0)
    assert np.allclose(exact.node_moments.sum(1), 1)
    assert np.allclose(exact.edge_moments.sum((1, 2)), 1)
    assert np.allclose(exact.edge_moments.sum(2), exact.node_moments[topology.edges[:, 0]])
