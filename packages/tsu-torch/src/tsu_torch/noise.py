r"""Noise from the backend: dropout masks and Gaussian noise as a scaled sum of spins.

`TSUDropout` keeps a unit with probability $1 - p$: a p-bit with field
$f = \tfrac12 \log((1 - p) / p)$ at beta 1 gives $P(s = +1) = \sigma(2 f) = 1 - p$. Kept units
are scaled by $1 / (1 - p)$ as in `nn.Dropout`.

`TSUGaussianNoise` adds $\sigma \cdot Z_n$ with $Z_n = n^{-1/2} \sum_{i=1}^n s_i$, the $s_i$ unbiased
spins (zero field): mean 0, variance 1, excess kurtosis $-2/n$, and $Z_n \to N(0, 1)$ by the
central limit theorem (Kolmogorov distance to the normal $O(n^{-1/2})$, from the lattice).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tsu_torch.context import ThermalContext, resolve_context
from tsu_torch.functional import sample_spins


def dropout_mask(
    shape: torch.Size | tuple[int, ...],
    probability: float,
    context: ThermalContext,
    like: torch.Tensor,
) -> torch.Tensor:
    """A {0, 1} mask, each entry 1 with probability `1 - probability`, drawn by the backend."""
    field = 0.5 * math.log((1 - probability) / probability)
    fields = torch.full(tuple(shape), field, dtype=like.dtype, device=like.device)
    return (sample_spins(fields, context, beta=1.0)[0] + 1) / 2


def spin_sum_normal(
    shape: torch.Size | tuple[int, ...], num_spins: int, context: ThermalContext, like: torch.Tensor
) -> torch.Tensor:
    """Approximately standard normal draws: sums of `num_spins` fair spins over sqrt(num_spins)."""
    fields = torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)
    return sample_spins(fields, context, beta=1.0, num_samples=num_spins).sum(0) / math.sqrt(
        num_spins
    )


class TSUDropout(nn.Module):
    """`nn.Dropout` with masks sampled by the backend's p-bits (identity in eval mode)."""

    def __init__(self, p: float = 0.5, context: ThermalContext | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p: expected a drop probability in [0, 1), got {p}")
        self.p = float(p)
        self.thermal_context = context

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        context = resolve_context(self.thermal_context, "TSUDropout")
        mask = dropout_mask(inputs.shape, self.p, context, inputs)
        return inputs * mask / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TSUGaussianNoise(nn.Module):
    """Adds `std` times a sum-of-spins normal draw (training mode only, unless `always`).

    Arguments:
        std: the standard deviation of the added noise.
        num_spins: n, the number of spins summed per draw (the CLT's sample size).
        always: add noise in eval mode too.
    """

    def __init__(
        self,
        std: float = 1.0,
        num_spins: int = 64,
        always: bool = False,
        context: ThermalContext | None = None,
    ) -> None:
        super().__init__()
        if num_spins < 1:
            raise ValueError(f"num_spins: expected >= 1, got {num_spins}")
        self.std = float(std)
        self.num_spins = int(num_spins)
        self.always = always
        self.thermal_context = context

    def sample(self, shape: torch.Size | tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Standard-normal-like draws of the given shape (before scaling by `std`)."""
        context = resolve_context(self.thermal_context, "TSUGaussianNoise")
        return spin_sum_normal(shape, self.num_spins, context, like)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not (self.training or self.always) or self.std == 0.0:
            return inputs
        return inputs + self.std * self.sample(inputs.shape, inputs)

    def extra_repr(self) -> str:
        return f"std={self.std}, num_spins={self.num_spins}"
