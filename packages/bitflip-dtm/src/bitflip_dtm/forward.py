r"""The forward process: at step t every bit flips independently with probability $q_t$.

With spins $s = 2x - 1$, one step is a binary symmetric channel,
$q(s_t \mid s_{t-1}) \propto \exp(\gamma_t\, s_t s_{t-1})$ with the coupling

$$\gamma(q) = \tfrac12 \log \frac{1 - q}{q}$$

(written once, in `coupling`). Channels compose by multiplying their "signals" $1 - 2q$, so
$q(x_t \mid x_0)$ flips each bit with the cumulative probability

$$\bar q_t = \tfrac12 \Big(1 - \prod_{k \le t} (1 - 2 q_k)\Big),$$

and the posterior of one bit is a p-bit with field $\gamma_t s_t + \gamma(\bar q_{t-1}) s_0$:

$$q(s_{t-1} = +1 \mid s_t, s_0) = \sigma\big(2\,(\gamma_t s_t + \gamma(\bar q_{t-1})\, s_0)\big).$$
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bitflip_dtm.config import Config, ConfigError

SMALLEST_FLIP = 1e-12


def coupling(flip: torch.Tensor | float) -> torch.Tensor:
    r"""$\gamma(q) = \frac12 \log\frac{1-q}{q}$: the spin coupling of a bit-flip channel.

    $q = 1/2$ gives 0 (no information); $q \to 0$ gives $+\infty$ (a copy).
    """
    flip = torch.as_tensor(flip, dtype=torch.float64)
    return 0.5 * (torch.log1p(-flip) - torch.log(flip))


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H2(p) in bits, with H2(0) = 0."""
    p = p.clamp(0, 1)
    safe = p.clamp(1e-300, 1 - 1e-16)
    value = -(safe * torch.log2(safe) + (1 - safe) * torch.log2(1 - safe))
    return torch.where((p <= 0) | (p >= 1), torch.zeros_like(value), value)


def inverse_binary_entropy(h: torch.Tensor) -> torch.Tensor:
    """The p in [0, 1/2] with H2(p) = h (bisection, to float64 precision)."""
    low = torch.zeros_like(h, dtype=torch.float64)
    high = torch.full_like(h, 0.5, dtype=torch.float64)
    for _ in range(80):
        middle = (low + high) / 2
        below = binary_entropy(middle) < h
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    return (low + high) / 2


def cumulative_flips(kind: str, num_steps: int, final_flip: float = 0.5) -> torch.Tensor:
    r"""$\bar q_t$ for t = 0 .. T (float64, $\bar q_0 = 0$, $\bar q_T$ = `final_flip`).

    * "linear": $\bar q_t$ rises linearly.
    * "cosine": the signal $1 - 2\bar q_t$ falls as $\cos^2(\pi t / 2T)$ towards $1 - 2\bar q_T$.
    * "mutual-information": the mutual information $1 - H_2(\bar q_t)$ between a uniform data bit
      and its noisy copy falls by the same amount at every step.
    """
    fraction = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    final_signal = 1 - 2 * final_flip
    if kind == "linear":
        return final_flip * fraction
    if kind == "cosine":
        signal = final_signal + (1 - final_signal) * torch.cos(math.pi / 2 * fraction) ** 2
        return (1 - signal) / 2
    if kind == "mutual-information":
        final_entropy = binary_entropy(torch.tensor(final_flip, dtype=torch.float64))
        cumulative = inverse_binary_entropy(fraction * final_entropy)
        cumulative[0], cumulative[-1] = 0.0, final_flip  # exact ends, not bisection's
        return cumulative
    raise ConfigError(f"schedule: expected linear, cosine or mutual-information, got {kind!r}")


def bitflip_schedule(kind: str, num_steps: int, final_flip: float = 0.5) -> torch.Tensor:
    r"""Per-step flip probabilities $q_1 .. q_T$ (float64, shape (T,)) of a schedule.

    From the cumulative flips: $1 - 2 q_t = (1 - 2\bar q_t) / (1 - 2\bar q_{t-1})$.
    """
    signal = 1 - 2 * cumulative_flips(kind, num_steps, final_flip)
    flips = (1 - signal[1:] / signal[:-1]) / 2
    return flips.clamp(SMALLEST_FLIP, 0.5)


@dataclass(frozen=True)
class ForwardProcess:
    """The forward process of a config: per-step and cumulative flips, couplings, sampling.

    Steps are numbered t = 1 .. T; `flips[t - 1]` is $q_t$, `cumulative[t]` is $\bar q_t$.
    """

    flips: torch.Tensor
    cumulative: torch.Tensor

    @classmethod
    def of(cls, config: Config) -> ForwardProcess:
        flips = bitflip_schedule(config.schedule, config.num_steps, config.final_flip)
        signal = torch.cumprod(1 - 2 * flips, 0)
        cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), (1 - signal) / 2])
        return cls(flips, cumulative)

    @property
    def num_steps(self) -> int:
        return int(self.flips.numel())

    def step_coupling(self, t: int) -> float:
        r"""$\gamma_t$, the coupling between $x_{t-1}$ and $x_t$."""
        return float(coupling(self.flips[t - 1]))

    def marginal_coupling(self, t: int) -> float:
        r"""$\gamma(\bar q_t)$, the coupling between $x_0$ and $x_t$ ($+\infty$ at t = 0)."""
        if t == 0:
            return math.inf
        return float(coupling(self.cumulative[t]))

    def noise(self, spins: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        r"""A draw of $s_t \sim q(s_t \mid s_0)$: each spin flips with probability $\bar q_t$."""
        return _flip(spins, float(self.cumulative[t]), generator)

    def step(self, spins: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        r"""A draw of $s_t \sim q(s_t \mid s_{t-1})$: each spin flips with probability $q_t$."""
        return _flip(spins, float(self.flips[t - 1]), generator)

    def posterior_up(self, spins_t: torch.Tensor, spins_0: torch.Tensor, t: int) -> torch.Tensor:
        r"""$q(s_{t-1} = +1 \mid s_t, s_0) = \sigma(2(\gamma_t s_t + \gamma(\bar q_{t-1}) s_0))$."""
        if t == 1:
            return (spins_0 > 0).to(torch.float64)
        field = self.step_coupling(t) * spins_t.double() + self.marginal_coupling(t - 1) * (
            spins_0.double()
        )
        return torch.sigmoid(2 * field)

    def posterior(
        self, spins_t: torch.Tensor, spins_0: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        r"""A draw of $s_{t-1} \sim q(s_{t-1} \mid s_t, s_0)$."""
        up = self.posterior_up(spins_t, spins_0, t)
        uniform = torch.rand(up.shape, generator=generator, dtype=torch.float64)
        return torch.where(uniform.to(up.device) < up, 1, -1).to(torch.int8)


def _flip(spins: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(spins.shape, generator=generator).to(spins.device)
    return torch.where(uniform < probability, -spins, spins).to(torch.int8)
