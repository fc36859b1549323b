"""jax-sim beyond the conformance suite: layouts, compile-once, samplers, inputs, tempering."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import tsu_core
from tsu_core import Clamp, ExactDistribution, Parameters, Topology, ising2d
from tsu_core.constructors import lattice_2d
from tsu_core.testing import random_categorical_model, random_spin_model, stats
from tsu_jax_sim import JaxSimBackend
from tsu_jax_sim.layouts import choose_layout

ALPHA = stats.DEFAULT_ALPHA


def _random_lattice(seed: int, side: int = 4) -> tuple[Topology, Parameters]:
    generator = np.random.default_rng(seed)
    topology = Topology.lattice_2d(side)
    return topology, Parameters(
        generator.normal(0.3, 0.4, topology.num_edges), generator.normal(0, 0.3, side * side)
    )


def test_layout_choice() -> None:
    assert choose_layout(Topology.lattice_2d(8)) == "stencil"
    assert choose_layout(Topology.lattice_2d(5)) == "neighbours"  # odd sides: greedy blocks
    assert choose_layout(Topology.bipartite(6, 4)) == "dense"
    assert choose_layout(Topology.complete(10)) == "dense"
    star = Topology(300, np.stack([np.zeros(299, int), np.arange(1, 300)], axis=1))
    assert choose_layout(star) == "neighbours"  # a hub of degree 299 in a sparse graph
    ring = Topology(40, np.stack([np.arange(40), (np.arange(40) + 1) % 40], axis=1))
    assert choose_layout(ring) == "neighbours"


def test_cpu_lattices_take_the_node_major_neighbour_lists() -> None:
    lattice = Topology.lattice_2d(8)
    cpu = [device for device in jax.devices() if device.platform == "cpu"]
    assert JaxSimBackend(devices=cpu[:1]).compile(lattice).layout_kind == "neighbours"
    assert JaxSimBackend(devices=cpu[:1], layout="stencil").compile(lattice).layout_kind == (
        "stencil"
    )
    tempering = JaxSimBackend(sampler="tempering", devices=cpu[:1])
    assert tempering.compile(lattice).layout_kind == "stencil"  # replicas: chain-major sweep
    ring = Topology(40, np.stack([np.arange(40), (np.arange(40) + 1) % 40], axis=1))
    assert JaxSimBackend(devices=cpu[:1]).layout_for(ring) is None


@pytest.mark.parametrize("layout", ["stencil", "dense", "neighbours"])
def test_every_layout_matches_enumeration(layout: str) -> None:
    """The same 4x4 lattice (non-uniform couplings and fields) through each layout, with a
    per-chain clamp, against exact enumeration of its 2^14 free states."""
    topology, parameters = _random_lattice(seed=3)
    backend = JaxSimBackend(layout=layout)
    program = backend.compile(topology)
    assert program.layout_kind == layout
    chains = 2048
    result = program.moments(
        parameters, key=5, num_chains=chains, num_samples=4, burn_in=40, thinning=3, schedule=0.7
    )
    stats.assert_moments_match(result, ExactDistribution.of(topology, parameters, 0.7), chains)
    nodes, values = np.array([0, 9]), np.array([1, -1])
    clamped = program.moments(
        parameters,
        key=6,
        num_chains=chains,
        num_samples=4,
        burn_in=40,
        thinning=3,
        schedule=0.7,
        clamp=Clamp(nodes, np.broadcast_to(values, (chains, 2)).copy()),
    )
    exact = ExactDistribution.of(topology, parameters, 0.7, nodes, values)
    stats.assert_moments_match(clamped, exact, chains)


def test_layouts_give_identical_energies() -> None:
    topology, parameters = _random_lattice(seed=4, side=6)
    states = None
    for layout in ("stencil", "dense", "neighbours"):
        result = (
            JaxSimBackend(layout=layout)
            .compile(topology)
            .sample(parameters, key=1, num_chains=8, num_samples=2, schedule=0.5)
        )
        expected = tsu_core.energy(topology, parameters, np.asarray(result.states))
        assert np.allclose(np.asarray(result.energies), expected, atol=1e-4)
        states = np.asarray(result.states) if states is None else states


def test_compiled_once_per_topology() -> None:
    """New parameters, keys, schedules and clamp values re-run the compiled program."""
    topology, parameters = random_spin_model(seed=1, num_nodes=9)
    program = tsu_core.get_backend("jax-sim").compile(topology)
    options = dict(num_chains=16, num_samples=3, burn_in=2, thinning=2)
    program.sample(parameters, key=0, schedule=1.0, **options)
    assert program.trace_count == 1
    generator = np.random.default_rng(0)
    for seed in range(3):
        other = Parameters(
            generator.normal(size=topology.num_edges), generator.normal(size=topology.num_nodes)
        )
        program.sample(other, key=seed, schedule=tsu_core.geometric(0.2, 2.0), **options)
    clamp = Clamp(np.array([2]), np.array([-1]))
    program.sample(parameters, key=9, clamp=clamp, schedule=0.5, **options)
    assert program.trace_count == 1, "a new parameter set, key or schedule recompiled"


def test_schedule_is_followed_per_sweep() -> None:
    """A custom schedule that ends at a low temperature ends in the exact low-T distribution,
    and one that ends hot ends hot: the betas of the last sweeps are the ones used."""
    topology, parameters = random_spin_model(seed=2, num_nodes=8)
    program = tsu_core.get_backend("jax-sim").compile(topology)
    chains = 4096
    for betas in (
        np.r_[np.full(30, 0.1), np.full(30, 1.0)],
        np.r_[np.full(30, 1.0), np.full(30, 0.1)],
    ):
        result = program.moments(
            parameters, key=3, num_chains=chains, burn_in=59, schedule=tsu_core.custom(betas)
        )
        stats.assert_moments_match(
            result, ExactDistribution.of(topology, parameters, betas[-1]), chains
        )


@pytest.mark.parametrize("sampler", ["metropolis", "tempering"])
def test_alternative_samplers_match_enumeration(sampler: str) -> None:
    backend = JaxSimBackend(sampler=sampler, num_replicas=4)
    chains = 2048
    for topology, parameters in (
        random_spin_model(seed=5, num_nodes=9, edge_probability=0.5),
        random_categorical_model(seed=6, num_nodes=5, num_categories=3),
    ):
        result = backend.compile(topology).moments(
            parameters, key=7, num_chains=chains, num_samples=4, burn_in=60, thinning=2
        )
        stats.assert_moments_match(result, ExactDistribution.of(topology, parameters, 1.0), chains)


def test_registered_variants() -> None:
    assert tsu_core.get_backend("jax-sim-metropolis").name == "jax-sim-metropolis"
    assert tsu_core.get_backend("jax-sim-tempering").name == "jax-sim-tempering"


def test_parallel_tempering_matches_kaufman_near_criticality() -> None:
    """Energy per spin of an 8x8 torus at beta = 0.42 (beta_c = 0.4407) within Bernstein
    tolerance of Kaufman's exact finite-lattice value."""
    side, beta, chains = 8, 0.42, 384
    topology, parameters = lattice_2d(side)
    backend = JaxSimBackend(sampler="tempering", num_replicas=4, ladder_low=0.6)
    result = backend.compile(topology).moments(
        parameters, key=11, num_chains=chains, num_samples=1, burn_in=200, schedule=beta
    )
    exact, variance = ising2d.kaufman_energy(beta, side)
    tolerance = float(stats.mean_tolerance(variance, chains, 1, ALPHA, 4.0 * side**2)) / side**2
    measured = float(result.energy) / side**2
    assert abs(measured - exact) <= tolerance, (measured, exact, tolerance)


def test_annealing_with_metropolis_reaches_ground_state() -> None:
    from tsu_core.testing import frustrated_model

    topology, parameters = frustrated_model(seed=9, num_nodes=12)
    ground = ExactDistribution.of(topology, parameters, 1.0).ground_energy
    result = (
        JaxSimBackend(sampler="metropolis")
        .compile(topology)
        .sample(
            parameters, key=2, num_chains=32, burn_in=400, schedule=tsu_core.geometric(0.05, 5.0)
        )
    )
    final = np.asarray(result.energies)[:, -1]
    assert np.isclose(final.min(), ground) and np.mean(np.isclose(final, ground)) >= 0.25


def test_jax_inputs_and_outputs() -> None:
    import jax.numpy as jnp

    topology, parameters = random_spin_model(seed=1, num_nodes=6)
    device = Parameters(jnp.asarray(parameters.weights), jnp.asarray(parameters.biases))
    program = tsu_core.get_backend("jax-sim").compile(topology)
    first = program.sample(parameters, key=4, num_chains=8, num_samples=2)
    second = program.sample(device, key=4, num_chains=8, num_samples=2)
    assert np.array_equal(np.asarray(first.states), np.asarray(second.states))
    assert hasattr(second.states, "__dlpack__") and "jax" in type(second.states).__module__


def test_non_finite_parameters_raise_for_every_input_kind() -> None:
    """The finiteness check runs inside the compiled program; a fixed JAX model is not read
    back again, but new arrays (JAX, numpy, torch: a tensor changed in place) always are."""
    import jax.numpy as jnp

    torch = pytest.importorskip("torch")
    topology, parameters = random_spin_model(seed=1, num_nodes=6)
    program = JaxSimBackend().compile(topology)
    good = Parameters(jnp.asarray(parameters.weights), jnp.asarray(parameters.biases))
    program.sample(good, key=1, num_chains=4)
    program.sample(good, key=2, num_chains=4)  # the same arrays: passes without a read-back
    bad_weights = parameters.weights.copy()
    bad_weights[2] = np.nan
    bad_biases = parameters.biases.copy()
    bad_biases[0] = -np.inf
    for weights, biases, name in (
        (jnp.asarray(bad_weights), good.biases, "weights"),
        (good.weights, jnp.asarray(bad_biases), "biases"),
        (bad_weights, parameters.biases, "weights"),
    ):
        with pytest.raises(tsu_core.InvalidModel, match=name):
            program.moments(Parameters(weights, biases), key=3, num_chains=4)
    tensors = Parameters(torch.tensor(parameters.weights), torch.tensor(parameters.biases))
    program.sample(tensors, key=4, num_chains=4)
    tensors.weights[1] = float("inf")  # mutated in place: must be checked again
    with pytest.raises(tsu_core.InvalidModel, match="weights"):
        program.sample(tensors, key=5, num_chains=4)
    # Finite, but fields and energies would overflow float32 (issue 25).
    huge = jnp.full(topology.num_edges, 1e38, jnp.float32)
    with pytest.raises(tsu_core.InvalidModel, match="overflow float32, got 1.*e\\+39"):
        program.sample(Parameters(huge, good.biases), key=6, num_chains=4)


def test_torch_inputs_through_dlpack() -> None:
    torch = pytest.importorskip("torch")
    topology, parameters = random_spin_model(seed=1, num_nodes=6)
    tensors = Parameters(
        torch.tensor(parameters.weights, dtype=torch.float32),
        torch.tensor(parameters.biases, dtype=torch.float32),
    )
    program = tsu_core.get_backend("jax-sim").compile(topology)
    first = program.sample(parameters, key=4, num_chains=8, num_samples=2)
    initial = torch.ones((8, 6), dtype=torch.int8)
    second = program.sample(tensors, key=4, num_chains=8, num_samples=2)
    assert np.array_equal(np.asarray(first.states), np.asarray(second.states))
    from tsu_core.arrays import to_jax

    shared = torch.arange(12, dtype=torch.float32)
    assert to_jax(shared).unsafe_buffer_pointer() == shared.data_ptr(), "DLPack copied"
    back = torch.from_dlpack(second.states)
    assert back.shape == (8, 2, 6)
    third = program.sample(tensors, key=4, num_chains=8, initial_state=initial, schedule=30.0)
    assert np.asarray(third.final_state).shape == (8, 6)


def test_primitives_are_deterministic_per_key() -> None:
    backend = tsu_core.get_backend("jax-sim")
    fields = np.linspace(-1, 1, 100)
    assert np.array_equal(backend.pbit(fields, key=3), backend.pbit(fields, key=3))
    assert not np.array_equal(backend.pbit(fields, key=3), backend.pbit(fields, key=4))
    assert np.asarray(backend.gaussian((4, 5), key=1)).shape == (4, 5)


@pytest.mark.parametrize("model", ["sparse highest", "rbm bfloat16"])
def test_unrolled_loops_give_the_same_samples(model: str) -> None:
    """The accelerator path (static scans unrolled) runs the same sweeps with the same keys;
    in bfloat16 too (whose products once crashed XLA's CPU runtime when unrolled)."""
    if model == "rbm bfloat16":
        topology = Topology.bipartite(6, 4)
        generator = np.random.default_rng(4)
        parameters = Parameters(
            generator.normal(0, 0.4, topology.num_edges),
            generator.normal(0, 0.3, topology.num_nodes),
        )
    else:
        topology, parameters = random_spin_model(seed=4, num_nodes=8)
    precision = model.split()[1]
    options = dict(key=3, num_chains=16, num_samples=3, burn_in=5, thinning=3, schedule=0.8)
    plain = JaxSimBackend(unroll=1, precision=precision).compile(topology)
    unrolled = JaxSimBackend(unroll=2, precision=precision).compile(topology)
    # one recorded sample: its energies' products run outside any loop (the CPU crash)
    single = dict(key=3, num_chains=16, num_samples=1, burn_in=9, schedule=0.8)
    for request in (options, single):
        first = plain.sample(parameters, **request)
        second = unrolled.sample(parameters, **request)
        assert np.array_equal(np.asarray(first.states), np.asarray(second.states))
        assert np.allclose(np.asarray(first.energies), np.asarray(second.energies))
    moments_plain = plain.moments(parameters, **options)
    moments_unrolled = unrolled.moments(parameters, **options)
    assert np.allclose(np.asarray(moments_plain.edges), np.asarray(moments_unrolled.edges))
    assert np.array_equal(
        np.asarray(moments_plain.final_state), np.asarray(moments_unrolled.final_state)
    )


def test_default_unrolling_shrinks_with_the_blocks() -> None:
    """The accelerator default (8 sweeps) unrolls at most UNROLLED_BLOCKS block updates; a
    depth the user gives is kept."""
    from tsu_jax_sim.backend import UNROLLED_BLOCKS

    accelerator = JaxSimBackend()
    accelerator.unroll = 8  # the default off the CPU
    assert accelerator.unroll_for(100, 2) == 8
    assert accelerator.unroll_for(3, 2) == 3
    assert accelerator.unroll_for(100, UNROLLED_BLOCKS // 4) == 4
    assert accelerator.unroll_for(100, 25) == 1
    assert JaxSimBackend(unroll=4).unroll_for(100, 25) == 4


@pytest.mark.parametrize("sampler", ["gibbs", "metropolis"])
def test_many_blocks_loop_on_device(sampler: str) -> None:
    """A complete graph of 14 nodes with a custom 14-block colouring is past the unrolling
    limit when the limit is lowered: the on-device block loop matches enumeration."""
    from tsu_jax_sim import layouts

    generator = np.random.default_rng(12)
    complete = Topology.complete(14)
    parameters = Parameters(
        generator.normal(0, 0.3, complete.num_edges), generator.normal(0, 0.3, 14)
    )
    limit = layouts.SEQUENTIAL_BLOCKS
    layouts.SEQUENTIAL_BLOCKS = 4
    try:
        program = JaxSimBackend(sampler=sampler).compile(complete)
        assert program.layout.sequential
        chains = 2048
        result = program.moments(
            parameters,
            key=8,
            num_chains=chains,
            num_samples=2,
            burn_in=30,
            clamp=Clamp(np.array([3]), np.array([1])),
        )
    finally:
        layouts.SEQUENTIAL_BLOCKS = limit
    exact = ExactDistribution.of(complete, parameters, 1.0, np.array([3]), np.array([1]))
    stats.assert_moments_match(result, exact, chains)


def test_memory_limit_is_half_the_accelerators_memory() -> None:
    """On accelerators the limit of a call is half their memory (chains are split over them);
    on the CPU, or where JAX reports no memory, tsu-core's host limit applies."""
    from tsu_jax_sim.backend import device_memory_limit

    class Device:
        def __init__(self, platform: str, stats: dict | None) -> None:
            self.platform, self.stats = platform, stats

        def memory_stats(self) -> dict | None:
            return self.stats

    gpu = Device("gpu", {"bytes_limit": 80_000_000_000})
    assert device_memory_limit([gpu, gpu]) == 80_000_000_000
    assert device_memory_limit([Device("gpu", None)]) is None
    assert device_memory_limit([Device("cpu", None)]) is None
    assert JaxSimBackend().capabilities.max_request_bytes is None  # the CPU of this test run


@pytest.mark.parametrize("layout", ["neighbours", "dense"])
def test_edgeless_layouts_sample_independent_spins(layout: str) -> None:
    """No edges: each spin is +1 with probability sigmoid(2 beta h_i), on every layout."""
    biases = np.array([-1.0, -0.2, 0.0, 0.5, 1.5])
    topology = Topology(5, np.zeros((0, 2), dtype=np.int64))
    chains = 4000
    result = (
        JaxSimBackend(layout=layout)
        .compile(topology)
        .sample(Parameters(np.zeros(0), biases), key=5, num_chains=chains, schedule=0.8)
    )
    up = (np.asarray(result.states)[:, 0] == 1).mean(0)
    expected = 1 / (1 + np.exp(-2 * 0.8 * biases))
    tolerance = stats.mean_tolerance(expected * (1 - expected), chains, 5, spread=1.0)
    assert np.all(np.abs(up - expected) <= tolerance)
    assert np.allclose(
        np.asarray(result.energies)[:, 0], -(np.asarray(result.states)[:, 0] @ biases)
    )
