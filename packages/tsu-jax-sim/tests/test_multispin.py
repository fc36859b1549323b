"""The bit-packed multispin kernel: packing round trip, energies, and Kaufman's exact energy."""

import numpy as np
import pytest

from tsu_core import ising2d
from tsu_core.testing import stats
from tsu_jax_sim.multispin import PackedIsing, pack, packed_energy_per_spin, unpack


def test_pack_round_trip_and_energy() -> None:
    spins = np.where(np.random.default_rng(0).random((64, 6, 8)) < 0.5, 1, -1).astype(np.int8)
    black, white = pack(spins)
    assert np.array_equal(unpack(black, white), spins)
    expected = (
        -((spins * np.roll(spins, -1, 1)).sum((1, 2)) + (spins * np.roll(spins, -1, 2)).sum((1, 2)))
        / 48
    )
    assert np.allclose(np.asarray(packed_energy_per_spin(black, white)), expected)


@pytest.mark.parametrize("beta", [0.3, 0.44, 0.6])
def test_kaufman_energy(beta: float) -> None:
    """1024 independent chains on an 8x8 torus: energy per spin within Bernstein tolerance."""
    side, chains = 8, 1024
    model = PackedIsing(side, side)
    state = model.run(model.initial(chains, ordered=beta > 0.45, seed=1), 5, beta, 300)
    per_spin = np.asarray(packed_energy_per_spin(*state))
    exact, variance = ising2d.kaufman_energy(beta, side)
    tolerance = float(stats.mean_tolerance(variance, chains, 3, spread=4.0 * side**2)) / side**2
    assert abs(per_spin.mean() - exact) <= tolerance, (per_spin.mean(), exact, tolerance)


def test_chains_in_one_word_are_independent() -> None:
    """Two lanes of a word must not share random bits: their overlap has mean ~0 at beta 0.3."""
    model = PackedIsing(8, 8)
    state = model.run(model.initial(256, ordered=True), 9, 0.3, 200)
    spins = unpack(*state).reshape(256, -1).astype(float)
    overlaps = (spins[0::2] * spins[1::2]).mean(1)
    assert abs(overlaps.mean()) < 5 * overlaps.std() / np.sqrt(overlaps.size) + 0.02
