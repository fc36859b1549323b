"""The forward process against its closed forms."""

import math

import numpy as np
import pytest
import torch

from bitflip_dtm.config import preset
from bitflip_dtm.forward import (
    ForwardProcess,
    binary_entropy,
    bitflip_schedule,
    coupling,
    cumulative_flips,
)
from tsu_core.testing.stats import mean_tolerance


@pytest.mark.parametrize("kind", ["linear", "cosine", "mutual-information", "log-time"])
def test_schedules_reach_the_final_flip_and_stay_valid(kind):
    cumulative = cumulative_flips(kind, 10, 0.5)
    assert cumulative[0] == 0 and cumulative[-1] == pytest.approx(0.5, abs=1e-12)
    assert torch.all(torch.diff(cumulative) > 0)
    flips = bitflip_schedule(kind, 10, 0.5)
    assert torch.all((flips > 0) & (flips <= 0.5))
    # Composing the per-step channels gives back the cumulative flips.
    signal = torch.cumprod(1 - 2 * flips, 0)
    assert torch.allclose((1 - signal) / 2, cumulative[1:], atol=1e-12)


def test_mutual_information_schedule_decays_evenly():
    cumulative = cumulative_flips("mutual-information", 8, 0.4)
    information = 1 - binary_entropy(cumulative)
    steps = torch.diff(information)
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-9)


def test_coupling_is_the_channel_log_odds():
    # exp(gamma s s') / (2 cosh gamma) is q for s != s' and 1 - q for s == s'.
    for flip in (0.01, 0.2, 0.5):
        gamma = float(coupling(flip))
        assert math.exp(-gamma) / (2 * math.cosh(gamma)) == pytest.approx(flip, rel=1e-12)


def test_marginals_match_the_closed_form():
    """Running t single steps flips each bit with the cumulative probability (Bernstein bound)."""
    config = preset("tiny", num_steps=6, schedule="cosine")
    process = ForwardProcess.of(config)
    generator = torch.Generator().manual_seed(0)
    count = 20000
    start = torch.ones(count, 9, dtype=torch.int8)
    spins = start
    for t in range(1, 7):
        spins = process.step(spins, t, generator)
        direct = process.noise(start, t, generator)
        expected = float(process.cumulative[t])
        tolerance = mean_tolerance(expected * (1 - expected), count * 9, num_tests=12, spread=1)
        for draw in (spins, direct):
            flipped = float((draw < 0).double().mean())
            assert abs(flipped - expected) < tolerance, (t, flipped, expected, tolerance)


def test_posterior_matches_bayes_rule_and_samples():
    config = preset("tiny", num_steps=5, schedule="linear")
    process = ForwardProcess.of(config)
    t = 3
    q_t, previous = float(process.flips[t - 1]), float(process.cumulative[t - 1])
    for s_0 in (-1, 1):
        for s_t in (-1, 1):
            # P(s_{t-1} = +1 | s_t, s_0) by Bayes' rule from the flip probabilities.
            def channel(a, b, p):
                return 1 - p if a == b else p

            up = channel(s_t, 1, q_t) * channel(1, s_0, previous)
            down = channel(s_t, -1, q_t) * channel(-1, s_0, previous)
            value = process.posterior_up(torch.tensor([s_t]), torch.tensor([s_0]), t)
            assert float(value) == pytest.approx(up / (up + down), rel=1e-12)
    # Empirically: draw x_0 -> x_{t-1} -> x_t and compare P(s_{t-1} = +1 | s_t, s_0).
    generator = torch.Generator().manual_seed(1)
    spins_0 = torch.where(torch.rand(40000, generator=generator) < 0.5, 1, -1).to(torch.int8)
    spins_previous = process.noise(spins_0, t - 1, generator)
    spins_t = process.step(spins_previous, t, generator)
    for s_0 in (-1, 1):
        for s_t in (-1, 1):
            chosen = (spins_0 == s_0) & (spins_t == s_t)
            expected = float(process.posterior_up(torch.tensor([s_t]), torch.tensor([s_0]), t))
            frequency = float((spins_previous[chosen] > 0).double().mean())
            tolerance = mean_tolerance(expected * (1 - expected), int(chosen.sum()), 4, spread=1)
            assert abs(frequency - expected) < tolerance


def test_posterior_at_step_one_is_the_data():
    process = ForwardProcess.of(preset("tiny"))
    spins_0 = torch.tensor([1, -1, 1])
    spins_1 = torch.tensor([-1, -1, 1])
    assert np.array_equal(process.posterior_up(spins_1, spins_0, 1).numpy(), [1.0, 0.0, 1.0])


def test_log_time_schedule_is_the_papers_resampling():
    """Resampling a bit at rate r over the times -log(1 - t/T) leaves the signal (1 - t/T)^r."""
    for rate in (0.2, 0.8):
        cumulative = cumulative_flips("log-time", 8, 0.5, rate)
        fraction = torch.arange(9, dtype=torch.float64) / 8
        assert torch.allclose(1 - 2 * cumulative, (1 - fraction) ** rate, atol=1e-12)


def test_label_bits_follow_their_own_rate():
    config = preset("paper", num_steps=4)
    process = ForwardProcess.of(config)
    image, label = config.num_image_bits, config.num_label_bits
    gamma = process.step_coupling(2, config.num_bits)
    assert gamma.shape == (image + label,)
    expected_image = coupling(bitflip_schedule("log-time", 4, 0.5, 0.8)[1])
    expected_label = coupling(bitflip_schedule("log-time", 4, 0.5, 0.2)[1])
    assert torch.allclose(gamma[:image], expected_image) and torch.allclose(
        gamma[image:], expected_label
    )
    # Labels keep more signal: at t = 3 of 4 a label bit flipped with probability below an image's.
    assert process.cumulative[3, 1] < process.cumulative[3, 0]
    generator = torch.Generator().manual_seed(0)
    spins = torch.ones(20000, image + label, dtype=torch.int8)
    noisy = process.noise(spins, 3, generator)
    for column, columns in ((0, slice(None, image)), (1, slice(image, None))):
        expected = float(process.cumulative[3, column])
        count = noisy[:, columns].numel()
        flipped = float((noisy[:, columns] < 0).double().mean())
        assert abs(flipped - expected) < mean_tolerance(
            expected * (1 - expected), count, 2, spread=1
        )


def test_pairs_draw_every_step_at_once():
    """`pairs` gives x_{t-1} ~ q(. | x_0) and x_t ~ q(. | x_{t-1}) for several steps."""
    config = preset("tiny", num_steps=5, schedule="cosine")
    process = ForwardProcess.of(config)
    generator = torch.Generator().manual_seed(2)
    spins_0 = torch.ones(30000, 9, dtype=torch.int8)
    previous, noisy = process.pairs(spins_0, [2, 5], generator)
    assert previous.shape == noisy.shape == (2, 30000, 9)
    for k, t in enumerate((2, 5)):
        for draw, expected in ((previous[k], process.cumulative[t - 1]),
                               (noisy[k], process.cumulative[t])):  # fmt: skip
            expected = float(expected)
            flipped = float((draw < 0).double().mean())
            tolerance = mean_tolerance(expected * (1 - expected), draw.numel(), 4, spread=1)
            assert abs(flipped - expected) < tolerance
