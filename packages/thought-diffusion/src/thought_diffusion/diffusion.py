r"""Absorbing-state (masked) diffusion with the continuous-time ELBO of MDLM (Sahoo et al. 2024).

Forward process: each token of x independently stays with probability alpha(t) and becomes the
mask token otherwise, with alpha(0) = 1 and alpha(1) = 0. The reverse model uses the SUBS
parameterisation: it never predicts the mask token (its logit is -inf) and carries unmasked
tokens over unchanged. The negative ELBO is then

.. math::
    \mathcal{L} = \int_0^1 \frac{-\alpha'(t)}{1 - \alpha(t)}
        \mathbb{E}_{z_t \sim q(z_t | x)} \Big[ \sum_{l : z_t^l = m} -\log p_\theta(x^l | z_t) \Big] dt

with weight 1/t for the linear schedule alpha(t) = 1 - t and
(pi/2) sin(pi t / 2) / (1 - cos(pi t / 2)) for the cosine schedule alpha(t) = cos(pi t / 2).
t is drawn in [eps, 1] by low-discrepancy (stratified) sampling across the batch.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

EPSILON = 1e-3


def alpha(t: torch.Tensor, schedule: str) -> torch.Tensor:
    """The probability a token is still unmasked at time t."""
    if schedule == "linear":
        return 1 - t
    if schedule == "cosine":
        return torch.cos(0.5 * math.pi * t)
    raise ValueError(f"schedule: expected 'linear' or 'cosine', got {schedule!r}")


def weight(t: torch.Tensor, schedule: str) -> torch.Tensor:
    """-alpha'(t) / (1 - alpha(t)): the ELBO's weight on the masked positions' loss."""
    if schedule == "linear":
        return 1 / t
    if schedule == "cosine":
        half = 0.5 * math.pi * t
        return 0.5 * math.pi * torch.sin(half) / (1 - torch.cos(half))
    raise ValueError(f"schedule: expected 'linear' or 'cosine', got {schedule!r}")


def sample_times(
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    epsilon: float = EPSILON,
    maximum: float = 1.0,
) -> torch.Tensor:
    """Low-discrepancy t in [eps, maximum]: t_i = eps + (maximum - eps) ((u + i / B) mod 1)."""
    offset = torch.rand((), generator=generator)
    strata = (offset + torch.arange(batch_size) / batch_size) % 1
    return (epsilon + (maximum - epsilon) * strata).to(device)


def mask_tokens(
    tokens: torch.Tensor,
    t: torch.Tensor,
    mask_id: int,
    schedule: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """z_t ~ q(z_t | x): each token masked independently with probability 1 - alpha(t).

    Returns the noisy tokens and the boolean mask of masked positions.
    """
    uniform = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    masked = uniform < (1 - alpha(t, schedule))[:, None]
    return torch.where(masked, torch.full_like(tokens, mask_id), tokens), masked


def substitute(logits: torch.Tensor, noisy: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS log-probabilities: the mask token gets -inf; unmasked positions are one-hot on
    their own token (carried over)."""
    logits = logits.clone()
    logits[..., mask_id] = -torch.inf
    log_probs = functional.log_softmax(logits.float(), -1)
    carried = torch.full_like(log_probs, -torch.inf).scatter(-1, noisy[..., None], 0.0)
    return torch.where((noisy == mask_id)[..., None], log_probs, carried)


def token_cross_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """-log p(x_l | .) (B, L) of every position, in float32."""
    return functional.cross_entropy(
        logits.float().flatten(0, 1), tokens.flatten(), reduction="none"
    ).view(tokens.shape)


def masked_loss(
    logits: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor, t: torch.Tensor, schedule: str
) -> torch.Tensor:
    """Per-sequence negative ELBO estimate (B,): weight(t) * sum over masked positions of
    -log p(x_l | z_t)."""
    return weight(t, schedule) * (token_cross_entropy(logits, tokens) * masked).sum(1)


def diffusion_loss(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    schedule: str = "linear",
    generator: torch.Generator | None = None,
    memory: tuple[torch.Tensor, torch.Tensor] | None = None,
    t: torch.Tensor | None = None,
    maximum_t: float = 1.0,
) -> torch.Tensor:
    """Per-sequence negative ELBO estimate (B,) in nats for clean tokens (B, L).

    Its expectation over t and masks is the continuous-time negative ELBO; divide by L for the
    per-token bound (perplexity bound = exp of that).
    """
    return diffusion_terms(model, tokens, schedule, generator, memory, t, maximum_t)[0]


def diffusion_terms(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    schedule: str = "linear",
    generator: torch.Generator | None = None,
    memory: tuple[torch.Tensor, torch.Tensor] | None = None,
    t: torch.Tensor | None = None,
    maximum_t: float = 1.0,
    answer: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative ELBO estimate (B,) of `diffusion_loss` and the answer's loss (B,).

    `answer` (B, L), optional, marks positions that are always masked in the model's input
    (a question's answer); their cross-entropy, summed per sequence, is the second term
    (zeros without `answer`). The ELBO term scores the positions the schedule masked, as
    without `answer`.
    """
    if t is None:
        t = sample_times(tokens.shape[0], generator, tokens.device, maximum=maximum_t)
    noisy, masked = mask_tokens(tokens, t, model.config.mask_id, schedule, generator)
    if answer is not None:
        noisy = torch.where(answer, torch.full_like(noisy, model.config.mask_id), noisy)
    logits, _, _ = model(noisy, memory)
    cross_entropy = token_cross_entropy(logits, tokens)
    elbo = weight(t, schedule) * (cross_entropy * masked).sum(1)
    if answer is None:
        return elbo, torch.zeros_like(elbo)
    return elbo, (cross_entropy * answer).sum(1)


def autoregressive_loss(
    model: torch.nn.Module, tokens: torch.Tensor, memory: object = None
) -> torch.Tensor:
    """Per-sequence next-token negative log-likelihood (B,) of a causal model.

    The input is [BOS, x_1 .. x_{L-1}] with the mask id as BOS, so all L tokens are scored, the
    same tokens the diffusion bound scores.
    """
    bos = torch.full_like(tokens[:, :1], model.config.mask_id)
    logits, _, _ = model(torch.cat([bos, tokens[:, :-1]], 1))
    return (
        functional.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="none")
        .view(tokens.shape)
        .sum(1)
    )
