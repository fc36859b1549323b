r"""Tolerances derived from the sample size, for tests that must not flake and must not be loose.

Every bound here holds with probability at least `1 - alpha` for a correct sampler, so a test at
`alpha = 1e-6` fails a correct backend about once in a million runs, and with fixed keys never.

* Total variation of an empirical distribution of n independent draws (Jensen + McDiarmid):
  $E[\mathrm{TV}] \le \tfrac12 \sum_x \sqrt{p_x (1 - p_x) / n}$, and TV changes by at most 1/n
  when one draw changes, so $P(\mathrm{TV} > E[\mathrm{TV}] + \varepsilon) \le e^{-2 n \varepsilon^2}$.
* A mean of C independent chains, each averaging correlated samples of a quantity with variance
  $\sigma^2$ and $|X - \mu| \le M$: a chain's average has variance at most $\sigma^2$
  (Cauchy-Schwarz) and the same range, so Bernstein's inequality
  $P(|\hat\mu - \mu| \ge t) \le 2 \exp(-C t^2 / (2\sigma^2 + 2 M t / 3))$ holds exactly, for any
  C and any $\sigma$ (no normal approximation, so rare states and near-frozen spins are safe);
  Bonferroni-corrected over the number of quantities tested.
* Dvoretzky-Kiefer-Wolfowitz for a KS statistic: $P(\sup|F_n - F| > \varepsilon) \le 2 e^{-2n\varepsilon^2}$.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_ALPHA = 1e-6


def normal_quantile(upper_tail: float) -> float:
    """z with P(Z > z) = upper_tail for a standard normal Z (bisection on erfc)."""
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2
        if 0.5 * math.erfc(middle / math.sqrt(2)) > upper_tail:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def z_threshold(num_tests: int = 1, alpha: float = DEFAULT_ALPHA) -> float:
    """Two-sided z for `num_tests` simultaneous tests at family-wise error `alpha`."""
    return normal_quantile(alpha / (2 * max(num_tests, 1)))


def empirical_distribution(indices: np.ndarray, num_states: int) -> np.ndarray:
    """Frequencies of each state index."""
    counts = np.bincount(np.asarray(indices).ravel(), minlength=num_states)
    return counts / counts.sum()


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def total_variation_bound(
    probabilities: np.ndarray, num_draws: int, alpha: float = DEFAULT_ALPHA
) -> float:
    """The TV distance that n independent exact draws exceed with probability below alpha."""
    p = np.asarray(probabilities, dtype=np.float64)
    expected = 0.5 * float(np.sqrt(p * (1 - p) / num_draws).sum())
    return expected + math.sqrt(math.log(1 / alpha) / (2 * num_draws))


def mean_tolerance(
    variance: np.ndarray,
    num_chains: int,
    num_tests: int = 1,
    alpha: float = DEFAULT_ALPHA,
    spread: float = 2.0,
) -> np.ndarray:
    """Half-width within which each of `num_tests` chain-averaged means must fall (Bernstein).

    Arguments:
        variance: the exact variance of one sample of the quantity (an upper bound will do).
        num_chains: the number of independent chains averaged.
        spread: a bound on |X - mean| (2 for a spin or a product of spins, 1 for an indicator).
    """
    log_term = math.log(2 * max(num_tests, 1) / alpha)
    linear = spread * log_term / 3
    variance = np.maximum(np.asarray(variance, dtype=np.float64), 0.0)
    return (linear + np.sqrt(linear**2 + 2 * num_chains * variance * log_term)) / num_chains


def dkw_bound(num_draws: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The KS distance that n independent draws from F exceed with probability below alpha."""
    return math.sqrt(math.log(2 / alpha) / (2 * num_draws))


def normal_cdf(values: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * (1 + erf(np.asarray(values, dtype=np.float64) / math.sqrt(2)))


def assert_moments_match(
    result: Any, exact: Any, chains: int, alpha: float = DEFAULT_ALPHA
) -> None:
    """Node and edge moments and the mean energy of `result` (a `Moments`) within Bernstein
    tolerances of `exact` (an `ExactDistribution`, or anything with its moment attributes) for
    `chains` independent samples; the variance of a spin product is 1 - m^2, of an indicator
    p (1 - p). One family of tests at error `alpha`."""
    from tsu_core.arrays import to_numpy

    nodes, edges = to_numpy(result.nodes), to_numpy(result.edges)
    assert nodes.shape == exact.node_moments.shape, f"moments.nodes: shape {nodes.shape}"
    assert edges.shape == exact.edge_moments.shape, f"moments.edges: shape {edges.shape}"
    tests = nodes.size + edges.size + 1
    for name, got, want in (
        ("nodes", nodes, exact.node_moments),
        ("edges", edges, exact.edge_moments),
    ):
        if exact.topology.is_spin:
            variance, spread = 1 - want**2, 2.0
        else:
            variance, spread = want * (1 - want), 1.0
        tolerance = mean_tolerance(variance, chains, tests, alpha, spread)
        error = np.abs(got - want)
        if error.size == 0:  # a topology without edges has no edge moments
            continue
        worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
        assert np.all(error <= tolerance + 1e-9), (
            f"moments.{name}{list(worst)} = {got[worst]:.4f}, exact {want[worst]:.4f} "
            f"(tolerance {tolerance[worst]:.4f})"
        )
    spread = float(np.ptp(exact.energies))
    energy_tolerance = mean_tolerance(exact.energy_variance, chains, tests, alpha, spread)
    mean_energy = float(to_numpy(result.energy))
    assert abs(mean_energy - exact.mean_energy) <= energy_tolerance, (
        f"mean energy {mean_energy:.4f}, exact {exact.mean_energy:.4f} "
        f"(tolerance {energy_tolerance:.4f})"
    )
