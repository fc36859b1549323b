import numpy as np
import pytest

from tsu_core import ExactDistribution, lattice_2d
from tsu_core.ising2d import (
    CRITICAL_BETA,
    kaufman_energy,
    kaufman_log_partition,
    onsager_energy,
    onsager_magnetisation,
)


@pytest.mark.parametrize("rows,cols", [(4, 4), (3, 4), (4, 3), (3, 5)])
@pytest.mark.parametrize("beta", [0.2, CRITICAL_BETA, 0.6, 1.2])
def test_kaufman_matches_enumeration(rows, cols, beta):
    exact = ExactDistribution.of(*lattice_2d(rows, cols), beta)
    assert np.isclose(kaufman_log_partition(beta, rows, cols), exact.log_partition, rtol=1e-12)
    mean, variance = kaufman_energy(beta, rows, cols)
    assert np.isclose(mean, exact.mean_energy / (rows * cols), atol=1e-6)
    assert np.isclose(variance, exact.energy_variance, rtol=1e-5)


def test_kaufman_approaches_onsager_on_large_lattices():
    for beta in (0.3, 0.6):
        assert abs(kaufman_energy(beta, 128)[0] - onsager_energy(beta)) < 1e-6


def test_onsager_closed_forms():
    # at the critical point u = -sqrt(2) and the magnetisation vanishes
    assert np.isclose(onsager_energy(CRITICAL_BETA), -np.sqrt(2), atol=1e-6)
    assert onsager_magnetisation(0.4) == 0.0
    assert np.isclose(onsager_magnetisation(0.6), (1 - np.sinh(1.2) ** -4) ** 0.125)
    # high-temperature series: ln Z / N = ln 2 + 2 ln cosh(beta) + t^4 + O(t^6), t = tanh(beta)
    t = np.tanh(0.05)
    assert np.isclose(onsager_energy(0.05), -2 * t - 4 * t**3 * (1 - t**2), rtol=1e-4)
