"""The thrml graph is built once per wiring, and its parameter slots hold exactly the weights
thrml itself would have built (checked against thrml's own IsingEBM and factors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import thrml
from thrml import Block, BlockGibbsSpec, FactorSamplingProgram
from thrml.models import IsingEBM, IsingSamplingProgram
from thrml.models.discrete_ebm import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    SquareCategoricalEBMFactor,
)
from thrml.pgm import DEFAULT_NODE_SHAPE_DTYPES, _UniqueID

from tsu_core import Clamp
from tsu_core.testing.models import random_categorical_model, random_spin_model
from tsu_thrml.graph import ThrmlGraph, flat_parameters, with_parameters


def _interaction_weights(program) -> list[np.ndarray]:
    return [
        np.asarray(interaction.weights)
        for block in program.per_block_interactions
        for interaction in block
    ]


def _theta(parameters, beta: float) -> jax.Array:
    biases = jnp.asarray(parameters.biases, jnp.float32)
    weights = jnp.asarray(parameters.weights, jnp.float32)
    return flat_parameters(biases, weights) * beta


@pytest.mark.parametrize("clamped", [(), (1, 4)])
def test_spin_slots_match_thrml_ising_program(clamped: tuple[int, ...]) -> None:
    topology, parameters = random_spin_model(seed=3, num_nodes=7)
    graph = ThrmlGraph.build(topology)
    layout = graph.layout(np.asarray(clamped, dtype=np.int64))
    filled = with_parameters(layout.program, _theta(parameters, 0.7))

    nodes = graph.nodes
    ebm = IsingEBM(
        list(nodes),
        [(nodes[i], nodes[j]) for i, j in topology.edges],
        jnp.asarray(parameters.biases, jnp.float32),
        jnp.asarray(parameters.weights, jnp.float32),
        jnp.asarray(0.7, jnp.float32),
    )
    free = [Block([nodes[i] for i in block]) for block in layout.free_nodes]
    clamped_blocks = [Block([nodes[i] for i in clamped])] if clamped else []
    direct = IsingSamplingProgram(ebm, free, clamped_blocks)

    ours, theirs = _interaction_weights(filled), _interaction_weights(direct)
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, reference)


def test_categorical_slots_match_thrml_factors() -> None:
    topology, parameters = random_categorical_model(seed=4, num_nodes=5, num_categories=3)
    graph = ThrmlGraph.build(topology)
    layout = graph.layout(np.zeros(0, dtype=np.int64))
    filled = with_parameters(layout.program, _theta(parameters, 1.3))

    nodes = graph.nodes
    first = Block([nodes[i] for i in topology.edges[:, 0]])
    second = Block([nodes[j] for j in topology.edges[:, 1]])
    factors = [
        CategoricalEBMFactor([Block(nodes)], 1.3 * jnp.asarray(parameters.biases, jnp.float32)),
        SquareCategoricalEBMFactor(
            [first, second], 1.3 * jnp.asarray(parameters.weights, jnp.float32)
        ),
    ]
    free = [Block([nodes[i] for i in block]) for block in layout.free_nodes]
    spec = BlockGibbsSpec(free, [], DEFAULT_NODE_SHAPE_DTYPES)
    sampler = CategoricalGibbsConditional(3)
    direct = FactorSamplingProgram(spec, [sampler for _ in free], factors, [])

    for mine, reference in zip(
        _interaction_weights(filled), _interaction_weights(direct), strict=True
    ):
        np.testing.assert_allclose(mine, reference, rtol=1e-6, atol=1e-6)


def test_blocks_follow_the_colouring() -> None:
    topology, _ = random_spin_model(seed=5, num_nodes=9)
    layout = ThrmlGraph.build(topology).layout(np.array([2], dtype=np.int64))
    expected = [block[block != 2] for block in topology.blocks if (block != 2).any()]
    assert [list(nodes) for nodes in layout.free_nodes] == [list(nodes) for nodes in expected]
    assert list(layout.clamped_nodes) == [2]


class _ConstructionCounter:
    """Counts thrml program constructions (every FactorSamplingProgram runs this __init__)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = thrml.BlockSamplingProgram.__init__

        def counting(program, *arguments, **options):
            self.calls += 1
            original(program, *arguments, **options)

        monkeypatch.setattr(thrml.BlockSamplingProgram, "__init__", counting)


def test_new_parameters_rebuild_nothing(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first call, new weights, biases, betas, clamp values and keys reuse the thrml
    program, the thrml nodes, and the compiled XLA function."""
    counter = _ConstructionCounter(monkeypatch)
    topology, parameters = random_spin_model(seed=6, num_nodes=8)
    program = backend.compile(topology)
    clamp_nodes = np.array([0, 5])
    options = dict(num_chains=16, num_samples=2, burn_in=3)
    program.sample(parameters, key=0, clamp=Clamp(clamp_nodes, np.array([1, -1])), **options)
    built = counter.calls
    nodes_made = _UniqueID._counter
    layout = program.graph.layout(clamp_nodes)
    staged = program.compiled.staged(clamp_nodes, "states")
    # compile built the unclamped program, the first clamped call the one for these nodes.
    assert built == 2 and staged._jitted._cache_size() == 1

    generator = np.random.default_rng(0)
    for step in range(3):
        new = type(parameters)(
            generator.normal(size=parameters.weights.shape),
            generator.normal(size=parameters.biases.shape),
        )
        values = np.where(generator.random((16, 2)) < 0.5, 1, -1).astype(np.int8)
        result = program.sample(
            new, key=step + 1, schedule=0.5 + step, clamp=Clamp(clamp_nodes, values), **options
        )
        assert np.all(np.asarray(result.states)[:, :, clamp_nodes] == values[:, None, :])

    assert counter.calls == built, "new parameters rebuilt a thrml program"
    assert _UniqueID._counter == nodes_made, "new parameters created thrml nodes"
    assert program.graph.layout(clamp_nodes) is layout
    assert staged._jitted._cache_size() == 1, "new parameters retraced the sampler"


def test_same_wiring_compiles_once(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _ConstructionCounter(monkeypatch)
    first_topology, parameters = random_spin_model(seed=7, num_nodes=6)
    second_topology, _ = random_spin_model(seed=7, num_nodes=6)  # equal, distinct objects
    first = backend.compile(first_topology)
    first.sample(parameters, key=0)
    second = backend.compile(second_topology)
    second.sample(parameters, key=1)
    assert second.topology is second_topology
    assert second.compiled is first.compiled and counter.calls == 1
