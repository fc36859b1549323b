"""`tsu_jax_sim.program.Record`: what a run records, apart from the sweeps."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tsu_core import Topology
from tsu_jax_sim.program import Record


def test_empty_sums_have_the_moments_shapes() -> None:
    spin = Topology.lattice_2d(3)
    categorical = Topology.complete(4, num_categories=3)
    assert Record.SAMPLES.empty(spin) == ()
    nodes, edges, energy = Record.MOMENTS.empty(spin)
    assert (nodes.shape, edges.shape, energy.shape) == ((9,), (spin.num_edges,), ())
    nodes, edges, energy = Record.MOMENTS.empty(categorical)
    assert (nodes.shape, edges.shape) == ((4, 3), (categorical.num_edges, 3, 3))


def test_finish_drops_the_burn_in_round_and_puts_chains_first() -> None:
    rounds, chains, nodes = 3, 2, 5
    states = jnp.arange(rounds * chains * nodes).reshape(rounds, chains, nodes)
    energies = jnp.arange(rounds * chains, dtype=jnp.float32).reshape(rounds, chains)
    kept_states, kept_energies = Record.SAMPLES.finish((), (states, energies), chains, rounds - 1)
    np.testing.assert_array_equal(kept_states, np.swapaxes(states[1:], 0, 1))
    np.testing.assert_array_equal(kept_energies, np.swapaxes(energies[1:], 0, 1))


def test_finish_averages_the_sums() -> None:
    sums = (jnp.full(2, 8.0), jnp.full(1, 4.0), jnp.asarray(6.0))
    (nodes, edges, energy), nothing = Record.MOMENTS.finish(sums, None, 2, 2)
    assert nothing is None
    np.testing.assert_array_equal(nodes, [2.0, 2.0])
    np.testing.assert_array_equal(edges, [1.0])
    assert float(energy) == 3.0  # the energy sum holds one mean per round: / num_samples
