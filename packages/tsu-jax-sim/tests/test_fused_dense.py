"""The fused Pallas RBM block update (run in Pallas's interpreter on the CPU)."""

from __future__ import annotations

import numpy as np

from tsu_core import Clamp, ExactDistribution, Parameters, Topology
from tsu_core.testing import stats
from tsu_jax_sim import JaxSimBackend, node_major
from tsu_jax_sim.fused_dense import FusedDenseSweep
from tsu_jax_sim.layouts import bfloat16_model


def _rbm(seed: int, visible: int, hidden: int) -> tuple[Topology, Parameters]:
    generator = np.random.default_rng(seed)
    topology = Topology.bipartite(visible, hidden)
    return topology, Parameters(
        generator.normal(0, 0.4, topology.num_edges), generator.normal(0, 0.3, topology.num_nodes)
    )


def test_same_samples_as_the_unfused_sweep(monkeypatch) -> None:
    """Same key, and the unfused sweep given the kernel's Philox uniforms: the chains agree
    spin for spin (up to float32 rounding of the acceptance test at a tie)."""
    monkeypatch.setattr(node_major.NodeMajorSweep, "uniforms", FusedDenseSweep.uniforms)
    topology, parameters = _rbm(1, 70, 40)
    options = dict(key=3, num_chains=130, num_samples=2, burn_in=5, thinning=3, schedule=0.9)
    fused = JaxSimBackend(precision="bfloat16", fused=True).compile(topology)
    plain = JaxSimBackend(precision="bfloat16", fused=False).compile(topology)
    assert isinstance(fused.node_major, FusedDenseSweep)
    assert not isinstance(plain.node_major, FusedDenseSweep)
    ours, theirs = fused.sample(parameters, **options), plain.sample(parameters, **options)
    assert np.asarray(ours.states).shape == (130, 2, 110)
    disagree = np.mean(np.asarray(ours.states) != np.asarray(theirs.states))
    assert disagree < 1e-3
    assert np.allclose(np.asarray(ours.energies), np.asarray(theirs.energies), atol=1e-3)


def test_matches_enumeration_with_clamps() -> None:
    """Moments of the bfloat16-rounded RBM against enumeration, with per-chain clamps and a
    chain count that is not a multiple of the kernel's tile."""
    topology, parameters = _rbm(5, 7, 5)
    program = JaxSimBackend(precision="bfloat16", fused=True).compile(topology)
    chains, nodes = 1500, np.array([0, topology.num_nodes - 1])
    values = np.array([1, -1])
    result = program.moments(
        parameters,
        key=6,
        num_chains=chains,
        num_samples=3,
        burn_in=30,
        thinning=2,
        clamp=Clamp(nodes, values),
    )
    rounded = bfloat16_model(parameters)
    exact = ExactDistribution.of(topology, rounded, 1.0, nodes, values)
    stats.assert_moments_match(result, exact, chains)


def test_not_used_for_float32_or_metropolis() -> None:
    topology, _ = _rbm(0, 6, 4)
    for backend in (
        JaxSimBackend(fused=True),
        JaxSimBackend(sampler="metropolis", precision="bfloat16", fused=True),
    ):
        assert not isinstance(backend.compile(topology).node_major, FusedDenseSweep)


def test_tilings_give_the_same_sweeps(monkeypatch) -> None:
    """Three sweeps of the plans themselves, same keys: the unfused node-major sweep with the
    kernel's uniforms, the fused kernel at two tilings and at a tiling per block agree spin
    for spin, and so do their energies."""
    import jax
    import jax.numpy as jnp

    from tsu_jax_sim.fused_dense import Tiling
    from tsu_jax_sim.layouts import make_layout

    monkeypatch.setattr(node_major.NodeMajorSweep, "uniforms", FusedDenseSweep.uniforms)
    topology, parameters = _rbm(2, 70, 40)
    layout = make_layout(topology, "dense", "bfloat16")
    chains = 150
    generator = np.random.default_rng(3)
    states = jnp.asarray(np.where(generator.random((chains, 110)) < 0.5, 1.0, -1.0))
    weights = jnp.asarray(parameters.weights, jnp.float32)
    biases = jnp.asarray(parameters.biases, jnp.float32)
    keys = node_major.block_keys(jax.random.key(7), 3, 2)
    free = jnp.asarray(np.arange(110) % 9 != 0)  # some clamped nodes

    def run(plan):
        prepared = plan.prepare(weights, biases)
        parts = plan.split(states)
        masks = plan.block_free(free)
        for step in range(3):
            parts = plan.sweep(prepared, parts, keys[step], jnp.float32(0.8), masks, "gibbs")
        return np.asarray(plan.join(parts, chains)), np.asarray(
            plan.energies(prepared, parts, chains)
        )

    reference, reference_energies = run(node_major.NodeMajorSweep(layout))
    for tiling in (
        Tiling(),
        Tiling(32, 128, 32),
        (Tiling(64, 128, 32), Tiling(32, 64, 64)),  # (visible, hidden): paddings differ
    ):
        spins, energies = run(FusedDenseSweep(layout, interpret=True, tiling=tiling))
        assert spins.shape == (chains, 110)
        assert np.mean(spins != reference) < 1e-3, tiling
        assert np.allclose(energies, reference_energies, atol=1e-3), tiling
        clamped = np.arange(110) % 9 == 0
        assert np.array_equal(spins[:, clamped], np.asarray(states)[:, clamped])


def test_one_tiling_per_block() -> None:
    """A tiling per block pads each block to its own rows and to the depth of the block that
    reads it, and chains to the widest chain tile; a wrong count of tilings, or chain tiles
    that are not multiples of 4, are refused."""
    import pytest

    from tsu_jax_sim.fused_dense import Tiling
    from tsu_jax_sim.layouts import make_layout

    layout = make_layout(Topology.bipartite(70, 40), "dense", "bfloat16")
    plan = FusedDenseSweep(layout, interpret=True, tiling=(Tiling(64, 128, 32), Tiling(32, 64, 64)))
    assert plan.padded_rows == [128, 64]  # 70 -> max(64 rows, 64 hidden depth); 40 -> 32 x 2
    assert plan.width(150) * plan.lanes == 256
    with pytest.raises(ValueError, match="3 tilings for 2 blocks"):
        FusedDenseSweep(layout, interpret=True, tiling=(Tiling(),) * 3)
    with pytest.raises(ValueError, match="multiples of 4"):
        FusedDenseSweep(layout, interpret=True, tiling=Tiling(64, 2, 64))
