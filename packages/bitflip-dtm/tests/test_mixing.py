"""The autocorrelation estimate against closed forms, and the adaptive penalty's rule."""

import numpy as np
import pytest
import torch

from bitflip_dtm.config import preset
from bitflip_dtm.data import data_spins, load_dataset
from bitflip_dtm.mixing import (
    PENALTY_MIN,
    adapt_penalty,
    autocorrelation_curve,
    chain_autocorrelation,
)
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import compile_program


def test_curve_of_an_autoregressive_series_is_its_closed_form():
    """For y_{s+1} = a y_s + sqrt(1 - a^2) e (stationary, unit variance), rho(l) = a^l."""
    generator = torch.Generator().manual_seed(0)
    chains, length, directions, a = 400, 400, 8, 0.8
    series = torch.empty(chains, length, directions, dtype=torch.float64)
    series[:, 0] = torch.randn(chains, directions, generator=generator, dtype=torch.float64)
    for s in range(1, length):
        step = torch.randn(chains, directions, generator=generator, dtype=torch.float64)
        series[:, s] = a * series[:, s - 1] + (1 - a**2) ** 0.5 * step
    curve = autocorrelation_curve(series.reshape(40, 10, length, directions))
    lags = np.arange(8)
    # 400 x 8 x 200 products per lag, correlated along time: a loose but sample-size-derived band.
    tolerance = 6 * (2 / (1 - a**2) / (chains * directions * 200)) ** 0.5
    assert np.all(np.abs(curve[lags] - a**lags) < tolerance)
    assert abs(curve[-20:].mean()) < tolerance


def test_conditioning_shared_by_a_group_is_not_memory():
    """Independent draws around different means per group (as chains of different clamped x_t
    are) have rho = 0 at every lag but 0: only a chain's own memory counts."""
    generator = torch.Generator().manual_seed(1)
    means = 3 * torch.randn(50, 1, 1, 4, generator=generator, dtype=torch.float64)
    series = means + torch.randn(50, 8, 200, 4, generator=generator, dtype=torch.float64)
    curve = autocorrelation_curve(series)
    assert curve[0] == pytest.approx(1.0, abs=0.05) and np.abs(curve[1:]).max() < 0.05


def test_independent_chains_have_no_long_lag_memory(backend):
    """At the last step (x_T is noise, coupling 0) of a model with zero parameters every sweep
    draws fresh uniform bits: the long-lag autocorrelation is zero up to sampling error."""
    config = preset("tiny")
    model = DTM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    images, _ = load_dataset(config)
    spins = data_spins(images[:8], None, config)
    value, curve = chain_autocorrelation(
        model, compile_program(model, backend), spins, config.num_steps, key=1, sweeps=400
    )
    assert curve[0] == pytest.approx(1.0, abs=0.05)
    assert value < 0.05 and np.abs(curve[1:]).max() < 0.1


def test_frozen_chains_remember(backend):
    """Strong ferromagnetic local couplings freeze block Gibbs chains in their first basin."""
    if backend.capabilities.exact:
        pytest.skip("an exact backend draws independent states: nothing to freeze")
    config = preset("tiny")
    model = DTM(config)
    with torch.no_grad():
        for step in model.steps:
            step.weights.fill_(4.0)
    images, _ = load_dataset(config)
    spins = data_spins(images[:8], None, config)
    value, _ = chain_autocorrelation(
        model, compile_program(model, backend), spins, config.num_steps, key=1, sweeps=200
    )
    assert value > 0.3


def test_adaptive_penalty_rule():
    threshold = 0.02
    # Under the threshold: lowered, by more the further under.
    assert adapt_penalty(0.1, 0.0, 0.5, threshold) == pytest.approx(0.06)
    assert adapt_penalty(0.1, 0.01, 0.5, threshold) == pytest.approx(0.07)
    # Over and rising: raised, by half again when far over.
    assert adapt_penalty(0.1, 0.03, 0.025, threshold) == pytest.approx(0.12)
    assert adapt_penalty(0.1, 0.05, 0.04, threshold) == pytest.approx(0.15)
    # Over but falling: slow decay.
    assert adapt_penalty(0.1, 0.03, 0.04, threshold) == pytest.approx(0.095)
    # Off stays off while mixing is good; it switches on at the minimum when mixing degrades.
    assert adapt_penalty(0.0, 0.001, 0.0, threshold) == 0.0
    assert adapt_penalty(0.0, 0.05, 0.01, threshold) == pytest.approx(1.5 * PENALTY_MIN)
