"""The node-major sweep (neighbours and dense layouts): packing, fields, samples vs enumeration."""

from __future__ import annotations

import numpy as np
import pytest

import tsu_core
from tsu_core import Clamp, ExactDistribution, Parameters, Topology
from tsu_core.testing import random_spin_model, stats
from tsu_jax_sim import JaxSimBackend, node_major
from tsu_jax_sim.layouts import bfloat16_model, make_layout
from tsu_jax_sim.node_major import NodeMajorSweep


def _sparse_bipartite(seed: int) -> tuple[Topology, Parameters]:
    """Two contiguous blocks (7 visible, 6 latent), each visible joined to 3 latents."""
    generator = np.random.default_rng(seed)
    edges = sorted({(v, 7 + int(h)) for v in range(7) for h in generator.choice(6, 3, False)})
    topology = Topology(13, np.array(edges), blocks=(np.arange(7), 7 + np.arange(6)))
    return topology, Parameters(
        generator.normal(0, 0.5, topology.num_edges), generator.normal(0, 0.3, 13)
    )


def _rbm(seed: int) -> tuple[Topology, Parameters]:
    generator = np.random.default_rng(seed)
    topology = Topology.bipartite(7, 5)
    return topology, Parameters(
        generator.normal(0, 0.4, topology.num_edges), generator.normal(0, 0.3, 12)
    )


def _hubs(seed: int) -> tuple[Topology, Parameters]:
    """A ring of 12 and two hubs of degree 6 (above the `UNROLL_SLOTS` of these tests), each in
    the block of the ring nodes it does not touch: every block mixes both kinds of tier."""
    generator = np.random.default_rng(seed)
    ring = [(i, (i + 1) % 12) for i in range(12)]
    hubs = [(i, 12) for i in range(1, 12, 2)] + [(i, 13) for i in range(0, 12, 2)]
    even, odd = np.append(np.arange(0, 12, 2), 12), np.append(np.arange(1, 12, 2), 13)
    topology = Topology(14, np.array(ring + hubs), blocks=(even, odd))
    return topology, Parameters(
        generator.normal(0, 0.4, topology.num_edges), generator.normal(0, 0.3, 14)
    )


@pytest.fixture(autouse=True)
def _few_unrolled_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """In blocks with a node of degree above 4, nodes of degree above 3 take the reduction
    (hubs, and some nodes of the random graphs), so these small graphs exercise both ways of
    summing neighbour slots."""
    monkeypatch.setattr(node_major, "UNROLL_SLOTS", 4)
    monkeypatch.setattr(node_major, "NARROW_SLOTS", 3)


CASES = {
    "sparse bipartite": (_sparse_bipartite(1), "neighbours"),
    "greedy colouring": (
        random_spin_model(seed=2, num_nodes=10, edge_probability=0.4),
        "neighbours",
    ),
    "rbm": (_rbm(3), "dense"),
    "hubs": (_hubs(7), "neighbours"),
    "complete": (
        (Topology.complete(6), Parameters(np.linspace(-0.5, 0.5, 15), np.full(6, 0.1))),
        "dense",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("rows", [8, 11])
def test_split_join_round_trip(case: str, rows: int) -> None:
    """Packing into node-major blocks (4 chains a byte, or bfloat16 pairs) loses nothing, also
    when the chains do not fill the last word."""
    import jax.numpy as jnp

    (topology, _), kind = CASES[case]
    plan = NodeMajorSweep(make_layout(topology, kind))
    states = np.where(np.random.default_rng(rows).random((rows, topology.num_nodes)) < 0.5, 1, -1)
    parts = plan.split(jnp.asarray(states, jnp.float32))
    assert len(parts) == len(topology.blocks)
    assert np.array_equal(np.asarray(plan.join(parts, rows)), states)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("precision", ["highest", "bfloat16"])
def test_energies_match_tsu_core(case: str, precision: str) -> None:
    (topology, parameters), kind = CASES[case]
    program = JaxSimBackend(layout=kind, precision=precision).compile(topology)
    assert program.node_major is not None
    result = program.sample(parameters, key=2, num_chains=10, num_samples=3, schedule=0.5)
    if precision == "bfloat16" and program.layout_kind == "dense":
        parameters = bfloat16_model(parameters)
    expected = tsu_core.energy(topology, parameters, np.asarray(result.states))
    assert np.allclose(np.asarray(result.energies), expected, atol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("sampler", ["gibbs", "metropolis"])
def test_matches_enumeration_with_clamps(case: str, sampler: str) -> None:
    """Moments of every graph shape the node-major sweep handles (one or several source blocks,
    contiguous or interleaved blocks, bfloat16 pairs or packed bytes) against enumeration, with
    a per-chain clamp and a chain count that leaves the last packed word partly empty."""
    (topology, parameters), kind = CASES[case]
    program = JaxSimBackend(sampler=sampler, layout=kind).compile(topology)
    chains, nodes = 1022, np.array([0, topology.num_nodes - 1])
    values = np.where(np.arange(chains)[:, None] % 3 == 0, 1, -1) * np.array([1, -1])
    result = program.moments(
        parameters,
        key=4,
        num_chains=chains,
        num_samples=4,
        burn_in=30,
        thinning=2,
        schedule=0.8,
        clamp=Clamp(nodes, values),
    )
    # Chains carry different clamp values: the expectation is the mixture of the two.
    first = ExactDistribution.of(topology, parameters, 0.8, nodes, values[0])
    second = ExactDistribution.of(topology, parameters, 0.8, nodes, values[1])
    share = np.mean(np.arange(chains) % 3 == 0)
    mixed = _Mixture(first, second, share)
    stats.assert_moments_match(result, mixed, chains)


def test_bfloat16_rbm_samples_the_rounded_model() -> None:
    """bfloat16 weights: the exact distribution of the bfloat16-rounded weights."""
    topology, parameters = _rbm(5)
    program = JaxSimBackend(precision="bfloat16").compile(topology)
    chains = 4096
    result = program.moments(parameters, key=6, num_chains=chains, num_samples=2, burn_in=40)
    rounded = bfloat16_model(parameters)
    stats.assert_moments_match(result, ExactDistribution.of(topology, rounded, 1.0), chains)


class _Mixture:
    """Exact moments of a two-component mixture (chains split between two clamp values)."""

    def __init__(self, first: ExactDistribution, second: ExactDistribution, share: float):
        self.topology = first.topology
        self.node_moments = share * first.node_moments + (1 - share) * second.node_moments
        self.edge_moments = share * first.edge_moments + (1 - share) * second.edge_moments
        self.mean_energy = share * first.mean_energy + (1 - share) * second.mean_energy
        second_moment = share * (first.energy_variance + first.mean_energy**2) + (1 - share) * (
            second.energy_variance + second.mean_energy**2
        )
        self.energy_variance = second_moment - self.mean_energy**2
        self.energies = np.concatenate([first.energies, second.energies])


def test_hubs_come_first_and_sum_by_reduction() -> None:
    """The hub of each block leads it, in a tier of its own; the fields of both tiers equal
    the fields of the chain-major layout."""
    import jax.numpy as jnp

    topology, parameters = _hubs(8)
    layout = make_layout(topology, "neighbours")
    plan = NodeMajorSweep(layout)
    assert [block[0] for block in plan.blocks] == [12, 13]
    assert [[tier.unrolled for tier in tiers] for tiers in plan.tiers] == [[False, True]] * 2
    states = np.where(np.random.default_rng(0).random((9, 14)) < 0.5, 1.0, -1.0)
    weights, biases = jnp.asarray(parameters.weights), jnp.asarray(parameters.biases)
    prepared = plan.prepare(weights, biases)
    parts = plan.split(jnp.asarray(states, jnp.float32))
    expected = np.asarray(layout.all_fields(layout.prepare(weights, biases), jnp.asarray(states)))
    for index, block in enumerate(plan.blocks):
        lanes = plan.field_lanes(prepared, parts, index)
        fields = np.asarray(plan._interleave(lanes))[:, :9].T
        assert np.allclose(fields, expected[:, block], atol=1e-5)
