"""The MDLM loss against the negative ELBO computed by brute force on a tiny vocabulary."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from thought_diffusion.diffusion import (
    EPSILON,
    alpha,
    diffusion_loss,
    mask_tokens,
    sample_times,
    substitute,
    weight,
)
from thought_diffusion.model import ThoughtDiffusionLM
from tsu_core.testing.stats import mean_tolerance, z_threshold


def _beta_integral(k: int, length: int, lower: float) -> float:
    """int_lower^1 u^(k-1) (1-u)^(length-k) du, expanded binomially (exact for integers)."""
    total = 0.0
    for j in range(length - k + 1):
        power = k + j
        total += math.comb(length - k, j) * (-1) ** j * (1 - lower**power) / power
    return total


def _masked_cross_entropy(model: ThoughtDiffusionLM, tokens: torch.Tensor) -> dict:
    """sum over masked l of -log p(x_l | z) for every mask pattern, with p the softmax over
    the real tokens only (computed here without the package's loss code)."""
    mask_id = model.config.mask_id
    length = tokens.shape[0]
    values = {}
    for pattern in itertools.product([False, True], repeat=length):
        masked = torch.tensor(pattern)
        noisy = torch.where(masked, torch.tensor(mask_id), tokens)
        with torch.no_grad():
            logits, _, _ = model(noisy[None])
        log_probs = torch.log_softmax(logits[0, :, :mask_id].double(), -1)
        picked = log_probs.gather(1, tokens[:, None]).squeeze(1)
        values[pattern] = float(-(picked * masked).sum())
    return values


def _brute_force(values: dict, length: int, schedule: str, moment: int = 1) -> float:
    """E_t E_m[(w(t) CE(m))^moment] over t ~ U[eps, 1], exactly (moment 1) or by quadrature."""
    if moment == 1:
        lower = 1 - float(alpha(torch.tensor(EPSILON, dtype=torch.float64), schedule))
        total = sum(
            value * _beta_integral(sum(p), length, lower) for p, value in values.items() if any(p)
        )
        return total / (1 - EPSILON)
    grid = np.geomspace(EPSILON, 1.0, 200_001)
    t = torch.tensor(grid, dtype=torch.float64)
    a, w = alpha(t, schedule).numpy(), weight(t, schedule).numpy()
    integrand = np.zeros_like(grid)
    for pattern, value in values.items():
        k = sum(pattern)
        integrand += (1 - a) ** k * a ** (length - k) * (w * value) ** moment
    return float(np.trapezoid(integrand, grid)) / (1 - EPSILON)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_weight_is_the_schedule_derivative_ratio(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64, requires_grad=True)
    a = alpha(t, schedule)
    (derivative,) = torch.autograd.grad(a.sum(), t)
    expected = -derivative / (1 - a)
    assert torch.allclose(weight(t.detach(), schedule), expected.detach(), rtol=1e-10)
    assert float(alpha(torch.tensor(0.0), schedule)) == pytest.approx(1.0)
    assert float(alpha(torch.tensor(1.0), schedule)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_loss_equals_brute_force_elbo(schedule, tiny_config):
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(tiny_config(vocab_size=4, depth=1, use_thoughts=False)).eval()
    with torch.no_grad():
        model.head.weight.mul_(40)  # sharper predictions, so patterns differ
    tokens = torch.tensor([2, 0, 1])
    length = tokens.shape[0]
    values = _masked_cross_entropy(model, tokens)
    exact = _brute_force(values, length, schedule)
    second = _brute_force(values, length, schedule, moment=2)
    num_draws = 40_000
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        losses = diffusion_loss(
            model, tokens.expand(num_draws, -1).clone(), schedule, generator
        ).double()
    # The per-draw weight reaches 1/eps, so a Bernstein bound is loose; the sample mean of
    # 40,000 draws is normal to a good approximation, with at most the i.i.d. variance
    # (stratified t only lowers it), computed exactly above.
    tolerance = z_threshold() * math.sqrt((second - exact**2) / num_draws)
    assert abs(float(losses.mean()) - exact) < tolerance, (float(losses.mean()), exact, tolerance)
    # The bound is informative: the tolerance is a small fraction of the value.
    assert tolerance < 0.1 * exact


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_elbo_does_not_depend_on_the_schedule_without_truncation(schedule):
    # int_0^1 w(t) (1 - alpha)^k alpha^(L-k) dt = B(k, L - k + 1) for every schedule.
    grid = torch.linspace(1e-7, 1, 400_001, dtype=torch.float64)
    a, w = alpha(grid, schedule), weight(grid, schedule)
    for k in range(1, 4):
        integrand = w * (1 - a) ** k * a ** (3 - k)
        numeric = float(torch.trapezoid(integrand, grid))
        assert numeric == pytest.approx(_beta_integral(k, 3, 0.0), rel=1e-3)


def test_times_are_stratified():
    t = sample_times(64, torch.Generator().manual_seed(3))
    strata = ((t - EPSILON) / (1 - EPSILON) * 64).floor().long()
    assert sorted(strata.tolist()) == list(range(64))
    assert float(t.min()) >= EPSILON and float(t.max()) <= 1.0


def test_masking_rate_follows_alpha():
    tokens = torch.zeros(4000, 50, dtype=torch.long)
    t = torch.full((4000,), 0.3)
    noisy, masked = mask_tokens(tokens, t, 7, "linear", torch.Generator().manual_seed(0))
    assert torch.equal(noisy == 7, masked)
    rate = float(masked.double().mean())
    tolerance = float(mean_tolerance(0.3 * 0.7, masked.numel(), spread=1.0))
    assert abs(rate - 0.3) < tolerance


def test_mask_token_is_never_predicted_and_unmasked_tokens_carry_over(tiny_config):
    torch.manual_seed(0)
    config = tiny_config()
    model = ThoughtDiffusionLM(config)
    with torch.no_grad():
        model.head.weight[config.mask_id].fill_(100.0)  # would dominate if allowed
    noisy = torch.randint(0, config.vocab_size, (5, 10))
    logits, _, _ = model(noisy)
    assert torch.isneginf(logits[..., config.mask_id]).all()
    log_probs = substitute(logits, noisy, config.mask_id)
    assert torch.isneginf(log_probs[..., config.mask_id]).all()
    carried = noisy != config.mask_id
    assert torch.equal(log_probs.argmax(-1)[carried], noisy[carried])
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(5, 10))
    # Gradients of the loss never push probability toward the mask token.
    loss = diffusion_loss(
        model, torch.randint(0, config.mask_id, (4, 10)), "linear", torch.Generator().manual_seed(0)
    )
    loss.mean().backward()
    assert torch.isfinite(model.head.weight.grad).all()
    assert float(model.head.weight.grad[config.mask_id].abs().sum()) == 0.0
