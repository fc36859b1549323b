import math

import numpy as np
import pytest
import torch

from tsu_core.testing.stats import dkw_bound, mean_tolerance, normal_cdf
from tsu_torch import ThermalContext
from tsu_torch.noise import TSUDropout, TSUGaussianNoise


def test_dropout_keeps_with_the_right_probability(context: ThermalContext) -> None:
    dropout = TSUDropout(p=0.3, context=context)
    inputs = torch.ones(200, 100)
    outputs = dropout(inputs)
    kept = (outputs != 0).float()
    values = torch.unique(outputs)
    assert len(values) == 2 and values[0] == 0 and float(values[1]) == pytest.approx(1 / 0.7)
    tolerance = mean_tolerance(0.3 * 0.7, num_chains=kept.numel(), spread=1.0)
    assert abs(float(kept.mean()) - 0.7) <= tolerance
    # inverted dropout keeps the mean
    assert abs(float(outputs.mean()) - 1.0) <= tolerance / 0.7
    dropout.eval()
    assert torch.equal(dropout(inputs), inputs)


def test_gaussian_noise_moments(context: ThermalContext) -> None:
    num_spins, count = 64, 40_000
    noise = TSUGaussianNoise(std=1.0, num_spins=num_spins, context=context)
    draws = noise.sample((count,), torch.zeros(1, dtype=torch.float64)).numpy()
    # exact moments of Z_n: mean 0, variance 1, E[Z^4] = 3 - 2/n
    fourth = 3 - 2 / num_spins
    assert abs(draws.mean()) <= mean_tolerance(1.0, count, num_tests=2, spread=8.0)
    second_variance = fourth - 1  # Var(Z^2)
    assert abs((draws**2).mean() - 1) <= mean_tolerance(second_variance, count, 2, spread=64.0)
    # sixth moment of the binomial sum bounds Var(Z^4) by E[Z^8] <= 105 (normal) for a check
    assert abs((draws**4).mean() - fourth) <= mean_tolerance(105.0, count, 1, spread=4096.0)


def test_gaussian_noise_ks_against_torch_randn(context: ThermalContext) -> None:
    """Two-sample KS: |F_n - G_m| <= |F_n - F| + |F - Phi| + |G_m - Phi|, where F is the exact
    law of the scaled spin sum (a binomial) and |F - Phi| is computed exactly."""
    num_spins, count = 256, 20_000
    noise = TSUGaussianNoise(num_spins=num_spins, context=context)
    draws = np.sort(noise.sample((count,), torch.zeros(1, dtype=torch.float64)).numpy())
    generator = torch.Generator().manual_seed(0)
    reference = np.sort(torch.randn(count, generator=generator, dtype=torch.float64).numpy())
    grid = np.concatenate([draws, reference])
    statistic = np.max(
        np.abs(
            np.searchsorted(draws, grid, side="right") / count
            - np.searchsorted(reference, grid, side="right") / count
        )
    )
    # the exact law of Z_n: (2 B - n) / sqrt(n) with B ~ Binomial(n, 1/2)
    successes = np.arange(num_spins + 1)
    log_pmf = np.array(
        [
            math.lgamma(num_spins + 1) - math.lgamma(k + 1) - math.lgamma(num_spins - k + 1)
            for k in successes
        ]
    ) - num_spins * math.log(2)
    cdf = np.cumsum(np.exp(log_pmf))
    support = (2 * successes - num_spins) / math.sqrt(num_spins)
    phi = normal_cdf(support)
    lattice_gap = max(
        np.max(np.abs(cdf - phi)), np.max(np.abs(np.concatenate([[0], cdf[:-1]]) - phi))
    )
    bound = 2 * dkw_bound(count, alpha=1e-6 / 2) + lattice_gap
    assert statistic <= bound
    # and the test has power: a wrong scale is rejected
    scaled = np.sort(draws * 1.3)
    wrong = np.max(
        np.abs(
            np.searchsorted(scaled, grid, side="right") / count
            - np.searchsorted(reference, grid, side="right") / count
        )
    )
    assert wrong > bound


def test_noise_only_in_training(context: ThermalContext) -> None:
    noise = TSUGaussianNoise(std=0.5, context=context)
    inputs = torch.zeros(3, 4)
    assert not torch.equal(noise(inputs), inputs)
    noise.eval()
    assert torch.equal(noise(inputs), inputs)
