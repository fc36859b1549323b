"""Sampling through tsu-thrml is sampling through thrml: bit-for-bit equal to thrml called
directly, and per-sweep beta schedules follow each sweep's beta exactly (closed forms)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from thrml import Block, SamplingSchedule, SpinNode, sample_states
from thrml.models import IsingEBM, IsingSamplingProgram

from tsu_core import Clamp, Key, Parameters, Topology, custom, linear
from tsu_core.energy import energy
from tsu_core.testing import stats
from tsu_core.testing.models import random_spin_model


def test_samples_equal_thrml_called_directly(backend) -> None:
    """Same model, blocks, initial states and keys: identical states, sweep for sweep."""
    topology, parameters = random_spin_model(seed=12, num_nodes=9)
    chains, samples, burn_in, thinning, beta = 32, 3, 4, 2, 0.8
    initial = np.where(np.random.default_rng(3).random((chains, 9)) < 0.5, 1, -1).astype(np.int8)
    key = Key(11)
    result = backend.compile(topology).sample(
        parameters,
        key=key,
        num_chains=chains,
        num_samples=samples,
        burn_in=burn_in,
        thinning=thinning,
        schedule=beta,
        initial_state=initial,
    )

    nodes = [SpinNode() for _ in range(topology.num_nodes)]
    model = IsingEBM(
        nodes,
        [(nodes[i], nodes[j]) for i, j in topology.edges],
        jnp.asarray(parameters.biases, jnp.float32),
        jnp.asarray(parameters.weights, jnp.float32),
        jnp.asarray(beta, jnp.float32),
    )
    blocks = [Block([nodes[i] for i in block]) for block in topology.blocks]
    program = IsingSamplingProgram(model, blocks, [])
    schedule = SamplingSchedule(burn_in + thinning, samples, thinning)
    # tsu-thrml's key derivation: the Key's words are a JAX key; its second half runs the chains.
    _, run_key = jax.random.split(jax.random.wrap_key_data(jnp.asarray(key.words(), jnp.uint32)))
    starts = [jnp.asarray(initial[:, block] > 0) for block in topology.blocks]
    direct = jax.vmap(
        lambda chain_key, start: sample_states(
            chain_key, program, schedule, start, [], [Block(nodes)]
        )
    )(jax.random.split(run_key, chains), starts)[0]

    assert isinstance(result.states, jax.Array) and hasattr(result.states, "__dlpack__")
    np.testing.assert_array_equal(np.asarray(result.states), np.where(direct, 1, -1))
    np.testing.assert_allclose(
        np.asarray(result.energies),
        energy(topology, parameters, np.asarray(result.states)),
        rtol=1e-5,
        atol=1e-5,
    )


def _independent_spins() -> tuple[Topology, Parameters]:
    """Six spins and no edges: one sweep draws P(s_i = +1) = sigmoid(2 beta h_i), afresh."""
    topology = Topology(6, np.zeros((0, 2), dtype=np.int64))
    return topology, Parameters(np.zeros(0), np.array([0.5, -0.3, 1.0, 0.2, -0.8, 0.4]))


def test_custom_schedule_uses_each_sweeps_beta(backend) -> None:
    topology, parameters = _independent_spins()
    betas, chains = np.array([0.2, 1.0, 3.0, 0.5]), 4000
    result = backend.compile(topology).sample(
        parameters, key=31, num_chains=chains, num_samples=4, schedule=custom(betas)
    )
    up = (np.asarray(result.states) == 1).mean(0)  # (samples, nodes)
    expected = 1 / (1 + np.exp(-2 * betas[:, None] * parameters.biases[None, :]))
    tolerance = stats.mean_tolerance(expected * (1 - expected), chains, expected.size, spread=1.0)
    assert np.all(np.abs(up - expected) <= tolerance), np.abs(up - expected).max()


def test_linear_schedule_moments(backend) -> None:
    """Moments over a linear schedule average tanh(beta_t h) over the recorded sweeps."""
    topology, parameters = _independent_spins()
    chains, burn_in, samples, thinning = 4000, 1, 3, 2
    sweeps = burn_in + samples * thinning
    betas = linear(0.1, 2.0).betas(sweeps)[burn_in + thinning - 1 :: thinning]
    result = backend.compile(topology).moments(
        parameters,
        key=32,
        num_chains=chains,
        num_samples=samples,
        burn_in=burn_in,
        thinning=thinning,
        schedule=linear(0.1, 2.0),
    )
    means = np.tanh(betas[:, None] * parameters.biases[None, :])
    expected = means.mean(0)
    # Each chain averages `samples` independent draws.
    variance = (1 - means**2).mean(0) / samples
    tolerance = stats.mean_tolerance(variance, chains, topology.num_nodes)
    assert np.all(np.abs(np.asarray(result.nodes) - expected) <= tolerance)
    assert result.edges.shape == (0,) and result.num_samples == chains * samples
    assert np.isclose(float(result.energy), -(np.asarray(result.nodes) @ parameters.biases))


@pytest.mark.parametrize("schedule", [custom([0.3, 2.5, 0.7]), linear(0.2, 1.5)])
def test_annealed_run_keeps_per_chain_clamps(backend, schedule) -> None:
    """A two-spin model, node 0 clamped to +1 on even chains and -1 on odd ones: at the last
    sweep P(s_1 = +1) = sigmoid(2 beta_T (h_1 + J s_0))."""
    topology = Topology(2, np.array([[0, 1]]))
    parameters = Parameters(np.array([0.8]), np.array([0.0, 0.3]))
    chains = 4000
    values = np.where(np.arange(chains) % 2 == 0, 1, -1).astype(np.int8)[:, None]
    result = backend.compile(topology).sample(
        parameters,
        key=33,
        num_chains=chains,
        num_samples=1,
        burn_in=2,
        schedule=schedule,
        clamp=Clamp(np.array([0]), values),
    )
    states = np.asarray(result.states)[:, 0]
    assert np.array_equal(states[:, 0], values[:, 0]), "clamped node changed value"
    final_beta = schedule.betas(3)[-1]
    for clamped in (1, -1):
        chosen = states[values[:, 0] == clamped, 1]
        expected = 1 / (1 + np.exp(-2 * final_beta * (0.3 + 0.8 * clamped)))
        tolerance = stats.mean_tolerance(expected * (1 - expected), chosen.size, 2, spread=1.0)
        assert abs((chosen == 1).mean() - expected) <= tolerance


def test_every_node_clamped(backend) -> None:
    """No free block at all: thrml sweeps nothing, states are the clamps, energies exact."""
    topology = Topology(3, np.array([[0, 1], [1, 2]]))
    parameters = Parameters(np.array([0.5, -0.25]), np.array([0.1, 0.0, 0.3]))
    values = np.array([[1, -1, 1], [-1, -1, 1]], dtype=np.int8)
    result = backend.compile(topology).sample(
        parameters, key=0, num_chains=2, num_samples=2, clamp=Clamp(np.arange(3), values)
    )
    assert np.all(np.asarray(result.states) == values[:, None, :])
    np.testing.assert_allclose(
        np.asarray(result.energies)[:, 0], energy(topology, parameters, values), rtol=1e-6
    )
