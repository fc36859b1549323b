"""The Fréchet distance against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from tsu_core.frechet import frechet_distance, sample_frechet_distance


def test_closed_forms_of_the_gaussian_distance():
    generator = np.random.default_rng(0)
    factor = generator.standard_normal((3, 3))
    covariance = factor @ factor.T + np.eye(3)
    mean = np.array([0.5, -1.0, 2.0])
    assert frechet_distance(mean, covariance, mean, covariance) == pytest.approx(0, abs=1e-8)
    # Commuting (diagonal) covariances: sum of (sqrt(a) - sqrt(b))^2 plus the squared shift.
    first, second = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    shift = np.array([1.0, 2.0, 0.0])
    expected = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(shift, first, np.zeros(3), second) == pytest.approx(expected)


def test_non_commuting_covariances_in_two_dimensions():
    # In 2D, tr (C_1 C_2)^{1/2} = sqrt(tr(C_1 C_2) + 2 sqrt(det C_1 det C_2)) (C_1 C_2 has
    # non-negative eigenvalues): an exact value for covariances that do not commute.
    mean_1, mean_2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    cov_1 = np.array([[2.0, 0.6], [0.6, 1.0]])
    cov_2 = np.array([[0.5, -0.3], [-0.3, 1.5]])
    trace_root = np.sqrt(
        np.trace(cov_1 @ cov_2) + 2 * np.sqrt(np.linalg.det(cov_1) * np.linalg.det(cov_2))
    )
    exact = np.sum((mean_1 - mean_2) ** 2) + np.trace(cov_1) + np.trace(cov_2) - 2 * trace_root
    assert frechet_distance(mean_1, cov_1, mean_2, cov_2) == pytest.approx(exact, rel=1e-10)
    # From 50,000 samples each: the means and covariances carry about 1% sampling error.
    generator = np.random.default_rng(1)
    first = generator.multivariate_normal(mean_1, cov_1, 50_000)
    second = generator.multivariate_normal(mean_2, cov_2, 50_000)
    assert sample_frechet_distance(first, second) == pytest.approx(exact, rel=0.03)


def test_samples_against_themselves_and_shifted():
    generator = np.random.default_rng(2)
    features = generator.standard_normal((500, 16)) @ np.diag(np.arange(1, 17))
    assert sample_frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert sample_frechet_distance(features, features + 1.0) == pytest.approx(16.0, rel=1e-6)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="same D"):
        sample_frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=">= 2 rows"):
        sample_frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
