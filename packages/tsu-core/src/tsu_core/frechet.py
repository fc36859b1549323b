r"""The Fréchet distance between Gaussians, the statistic behind FID, in numpy.

$d^2 = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}(C_1 + C_2 - 2 (C_1^{1/2} C_2 C_1^{1/2})^{1/2})$,
with symmetric square roots taken by eigendecomposition (no scipy). The models of the stack
score their samples with it on features of their own extractors (FID); it lives here because
every package may depend on `tsu_core` and on nothing else of the stack.
"""

from __future__ import annotations

import numpy as np


def _root(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mean_1: np.ndarray, covariance_1: np.ndarray, mean_2: np.ndarray, covariance_2: np.ndarray
) -> float:
    """The Fréchet distance of N(mean_1, covariance_1) and N(mean_2, covariance_2), clipped at
    0 against round-off."""
    root_1 = _root(np.asarray(covariance_1, np.float64))
    cross = root_1 @ np.asarray(covariance_2, np.float64) @ root_1
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((cross + cross.T) / 2), 0.0, None)))
    difference = np.asarray(mean_1, np.float64) - np.asarray(mean_2, np.float64)
    value = (
        difference @ difference + np.trace(covariance_1) + np.trace(covariance_2) - 2.0 * trace_root
    )
    return max(float(value), 0.0)


def sample_frechet_distance(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """`frechet_distance` of the Gaussians fitted to (N_1, D) and (N_2, D) samples (float64)."""
    first = np.asarray(features_1, np.float64)
    second = np.asarray(features_2, np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(
            f"features: expected (N_1, D) and (N_2, D) with the same D, "
            f"got {first.shape} and {second.shape}"
        )
    if len(first) < 2 or len(second) < 2:
        raise ValueError(f"features: expected >= 2 rows each, got {len(first)} and {len(second)}")
    return frechet_distance(
        first.mean(0),
        np.atleast_2d(np.cov(first, rowvar=False)),
        second.mean(0),
        np.atleast_2d(np.cov(second, rowvar=False)),
    )
