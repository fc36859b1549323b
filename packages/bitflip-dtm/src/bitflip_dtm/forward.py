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
from dataclasses import dataclass, field

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


def cumulative_flips(
    kind: str, num_steps: int, final_flip: float = 0.5, rate: float = 1.0
) -> torch.Tensor:
    r"""$\bar q_t$ for t = 0 .. T (float64, $\bar q_0 = 0$, $\bar q_T$ = `final_flip`).

    * "linear": $\bar q_t$ rises linearly.
    * "cosine": the signal $1 - 2\bar q_t$ falls as $\cos^2(\pi t / 2T)$ towards $1 - 2\bar q_T$.
    * "mutual-information": the mutual information $1 - H_2(\bar q_t)$ between a uniform data bit
      and its noisy copy falls by the same amount at every step.
    * "log-time": the DTM paper's. Each bit is resampled at `rate` per unit time over the times
      $\tau_t = -\log(1 - t/T)$, so the signal is $e^{-\text{rate}\,\tau_t} = (1 - t/T)^{\text{rate}}$
      (scaled to end at $1 - 2\bar q_T$); a lower rate keeps a bit informative longer.
    """
    fraction = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    final_signal = 1 - 2 * final_flip
    if kind == "linear":
        return final_flip * fraction
    if kind == "cosine":
        signal = final_signal + (1 - final_signal) * torch.cos(math.pi / 2 * fraction) ** 2
        return (1 - signal) / 2
    if kind == "log-time":
        signal = final_signal + (1 - final_signal) * (1 - fraction) ** rate
        return (1 - signal) / 2
    if kind == "mutual-information":
        final_entropy = binary_entropy(torch.tensor(final_flip, dtype=torch.float64))
        cumulative = inverse_binary_entropy(fraction * final_entropy)
        cumulative[0], cumulative[-1] = 0.0, final_flip  # exact ends, not bisection's
        return cumulative
    raise ConfigError(
        f"schedule: expected linear, cosine, mutual-information or log-time, got {kind!r}"
    )


def bitflip_schedule(
    kind: str, num_steps: int, final_flip: float = 0.5, rate: float = 1.0
) -> torch.Tensor:
    r"""Per-step flip probabilities $q_1 .. q_T$ (float64, shape (T,)) of a schedule.

    From the cumulative flips: $1 - 2 q_t = (1 - 2\bar q_t) / (1 - 2\bar q_{t-1})$.
    """
    signal = 1 - 2 * cumulative_flips(kind, num_steps, final_flip, rate)
    flips = (1 - signal[1:] / signal[:-1]) / 2
    return flips.clamp(SMALLEST_FLIP, 0.5)


@dataclass(frozen=True)
class ForwardProcess:
    r"""The forward process of a config: per-step and cumulative flips, couplings, sampling.

    Steps are numbered t = 1 .. T; `flips[t - 1]` is $q_t$, `cumulative[t]` is $\bar q_t$.
    Column 0 holds the image bits' values; a second column, when the config has label bits,
    the labels' (the last `num_label_bits` bits of every image), which follow their own rate.
    Per-bit values (`step_coupling`, the draws) have shape (D,) then, and are scalars without
    labels.
    """

    flips: torch.Tensor
    cumulative: torch.Tensor
    num_label_bits: int = 0
    _tables: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, config: Config) -> ForwardProcess:
        rates = [config.noise_rate] + ([config.label_noise_rate] if config.label_copies else [])
        flips = torch.stack(
            [
                bitflip_schedule(config.schedule, config.num_steps, config.final_flip, rate)
                for rate in rates
            ],
            dim=1,
        )
        signal = torch.cumprod(1 - 2 * flips, 0)
        cumulative = torch.cat([torch.zeros(1, len(rates), dtype=torch.float64), (1 - signal) / 2])
        return cls(flips, cumulative, config.num_label_bits)

    @property
    def num_steps(self) -> int:
        return int(self.flips.shape[0])

    def per_bit(self, row: torch.Tensor, num_bits: int) -> torch.Tensor:
        """One value per bit from a row of group values: a scalar without labels, else (D,)."""
        if row.numel() == 1:
            return row.reshape(())
        labels = self.num_label_bits
        return torch.cat([row[0].expand(num_bits - labels), row[1].expand(labels)])

    def step_coupling(self, t: int, num_bits: int = 1) -> torch.Tensor:
        r"""$\gamma_t$, the coupling between $x_{t-1}$ and $x_t$ (per bit, see the class)."""
        return coupling(self.per_bit(self.flips[t - 1], num_bits))

    def marginal_coupling(self, t: int, num_bits: int = 1) -> torch.Tensor:
        r"""$\gamma(\bar q_t)$, the coupling between $x_0$ and $x_t$ ($+\infty$ at t = 0)."""
        if t == 0:
            return torch.full_like(self.per_bit(self.cumulative[0], num_bits), math.inf)
        return coupling(self.per_bit(self.cumulative[t], num_bits))

    def noise(self, spins: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        r"""A draw of $s_t \sim q(s_t \mid s_0)$: each spin flips with probability $\bar q_t$."""
        return _flip(spins, self.per_bit(self.cumulative[t], spins.shape[-1]), generator)

    def step(self, spins: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        r"""A draw of $s_t \sim q(s_t \mid s_{t-1})$: each spin flips with probability $q_t$."""
        return _flip(spins, self.per_bit(self.flips[t - 1], spins.shape[-1]), generator)

    def pairs(
        self, spins_0: torch.Tensor, steps: list[int], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Draws of $(x_{t-1}, x_t)$ for every step t in `steps` at once: two (K, B, D) tensors
        from spins $x_0$ (B, D), drawn on the spins' device with `generator` (on that device)."""
        count, device = spins_0.shape[-1], spins_0.device
        index = torch.tensor(steps, dtype=torch.int64)
        shape = (len(steps), *spins_0.shape)
        previous = self._table("cumulative", count, device)[index - 1].unsqueeze(1)
        step = self._table("flips", count, device)[index].unsqueeze(1)
        first = torch.rand(shape, generator=generator, device=device)
        second = torch.rand(shape, generator=generator, device=device)
        spins_previous = torch.where(first < previous, -spins_0, spins_0).to(torch.int8)
        spins_t = torch.where(second < step, -spins_previous, spins_previous).to(torch.int8)
        return spins_previous, spins_t

    def _table(self, name: str, num_bits: int, device: torch.device) -> torch.Tensor:
        """Per-bit float32 values of `cumulative` (rows t = 0 .. T) or of `flips` (rows
        t = 1 .. T, with row 0 unused), (T + 1, D) on `device`, built once per device."""
        cache = self._tables  # a dict field of a frozen dataclass: filled in place
        key = (name, num_bits, str(device))
        if key not in cache:
            rows = getattr(self, name)
            if name == "flips":
                rows = torch.cat([torch.zeros_like(rows[:1]), rows])
            table = torch.stack([self.per_bit(row, num_bits).expand(num_bits) for row in rows])
            cache[key] = table.to(device, torch.float32)
        return cache[key]

    def posterior_up(self, spins_t: torch.Tensor, spins_0: torch.Tensor, t: int) -> torch.Tensor:
        r"""$q(s_{t-1} = +1 \mid s_t, s_0) = \sigma(2(\gamma_t s_t + \gamma(\bar q_{t-1}) s_0))$."""
        if t == 1:
            return (spins_0 > 0).to(torch.float64)
        count = spins_t.shape[-1]
        step = self.step_coupling(t, count).to(spins_t.device)
        marginal = self.marginal_coupling(t - 1, count).to(spins_t.device)
        field = step * spins_t.double() + marginal * spins_0.double()
        return torch.sigmoid(2 * field)

    def posterior(
        self, spins_t: torch.Tensor, spins_0: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        r"""A draw of $s_{t-1} \sim q(s_{t-1} \mid s_t, s_0)$."""
        up = self.posterior_up(spins_t, spins_0, t)
        uniform = torch.rand(up.shape, generator=generator, dtype=torch.float64)
        return torch.where(uniform.to(up.device) < up, 1, -1).to(torch.int8)


def _flip(
    spins: torch.Tensor, probability: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    uniform = torch.rand(spins.shape, generator=generator).to(spins.device)
    return torch.where(uniform < probability.to(spins.device), -spins, spins).to(torch.int8)
