"""A deliberately broken backend fails the conformance suite: each bug is caught by name."""

import pytest
from broken import (
    IgnoresClampBackend,
    IgnoresScheduleBackend,
    SharedRandomnessBackend,
    WrongEnergyBackend,
    WrongTemperatureBackend,
)

from tsu_core.testing import BackendConformance

suite = BackendConformance()


def _fails(test, *arguments):
    with pytest.raises(AssertionError):
        test(*arguments)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_wrong_temperature_fails_distribution(beta):
    _fails(suite.test_spin_distribution, WrongTemperatureBackend(), beta)


def test_wrong_temperature_fails_moments_and_lattice():
    backend = WrongTemperatureBackend()
    _fails(suite.test_spin_moments, backend)
    _fails(suite.test_lattice_energy, backend, 0.3)
    _fails(suite.test_categorical_distribution, backend, 0.5)


def test_ignoring_clamps_fails():
    backend = IgnoresClampBackend()
    _fails(suite.test_spin_distribution_clamped, backend, 0.5)
    _fails(suite.test_spin_moments_clamped, backend)
    _fails(suite.test_categorical_distribution_clamped, backend)


def test_shared_randomness_fails_independence():
    _fails(suite.test_chain_independence, SharedRandomnessBackend())


def test_wrong_energy_sign_fails():
    _fails(suite.test_spin_distribution, WrongEnergyBackend(), 1.0)


def test_ignoring_the_schedule_fails_annealing():
    _fails(suite.test_annealing_reaches_ground_state, IgnoresScheduleBackend())


def test_the_unbroken_parts_still_pass():
    """The bugs are specific: the same backends pass the tests their bug does not touch."""
    suite.test_spin_distribution(IgnoresClampBackend(), 1.0)
    suite.test_determinism_per_key(WrongTemperatureBackend())
    suite.test_annealing_reaches_ground_state(WrongEnergyBackend())
