r"""Thermal linear layers: a field $f = Wx + b$ computed in torch, spins sampled by the backend.

`ThermalLinear` returns spins in {-1, +1} (or their mean over k samples), an unbiased estimate
of $\tanh(\beta f)$; `TSUBinaryLayer` returns bits $(s + 1) / 2$, an estimate of
$\sigma(2 \beta f)$. The effective beta is the layer's `beta` divided by the context's
temperature, so annealing the context anneals every layer.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tsu_torch.context import ThermalContext, resolve_context
from tsu_torch.functional import Estimator, thermal_activation

Output = Literal["spin", "binary"]


class ThermalActivation(nn.Module):
    """Module form of `thermal_activation`: samples spins from given fields.

    Arguments:
        beta: the layer's inverse temperature (divided by the context's temperature).
        num_samples: spins averaged per field.
        estimator: straight-through gradient, "sigmoid" or "identity".
        output: "spin" (+-1) or "binary" (0/1).
        context: the thermal context (or attach one later, or use `with context:`).
    """

    def __init__(
        self,
        beta: float = 1.0,
        num_samples: int = 1,
        estimator: Estimator = "sigmoid",
        output: Output = "spin",
        context: ThermalContext | None = None,
    ) -> None:
        super().__init__()
        if output not in ("spin", "binary"):
            raise ValueError(f"output: expected 'spin' or 'binary', got {output!r}")
        self.beta = float(beta)
        self.num_samples = int(num_samples)
        self.estimator = estimator
        self.output = output
        self.thermal_context = context
        self._last_spins: torch.Tensor | None = None

    @property
    def last_sparsity(self) -> float | None:
        """The fraction of units off (s = -1) in the last forward pass, from the mean spins
        (read lazily, so a GPU forward pass does not wait for it)."""
        if self._last_spins is None:
            return None
        return float(((1 - self._last_spins) / 2).mean())

    def effective_beta(self) -> float:
        context = resolve_context(self.thermal_context, type(self).__name__)
        return self.beta / context.temperature

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        context = resolve_context(self.thermal_context, type(self).__name__)
        spins = thermal_activation(
            fields, context, self.beta / context.temperature, self.num_samples, self.estimator
        )
        self._last_spins = spins.detach()
        return spins if self.output == "spin" else (spins + 1) / 2

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, num_samples={self.num_samples}, estimator={self.estimator!r}, "
            f"output={self.output!r}"
        )


class ThermalLinear(nn.Linear):
    """`nn.Linear` whose outputs are spins sampled with P(+1) = sigmoid(2 beta (Wx + b)).

    The parameters are those of `nn.Linear` (so `load_state_dict` of a trained linear layer
    works). `last_sparsity` holds the fraction of units off in the last forward pass.

    Arguments:
        in_features: as `nn.Linear`.
        out_features: as `nn.Linear`.
        bias: as `nn.Linear`.
        beta: as `ThermalActivation`.
        num_samples: as `ThermalActivation`.
        estimator: as `ThermalActivation`.
        output: as `ThermalActivation`.
        context: as `ThermalActivation`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        beta: float = 1.0,
        num_samples: int = 1,
        estimator: Estimator = "sigmoid",
        output: Output = "spin",
        context: ThermalContext | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.activation = ThermalActivation(beta, num_samples, estimator, output, context)

    @property
    def thermal_context(self) -> ThermalContext | None:
        return self.activation.thermal_context

    @thermal_context.setter
    def thermal_context(self, context: ThermalContext | None) -> None:
        self.activation.thermal_context = context

    @property
    def num_samples(self) -> int:
        return self.activation.num_samples

    @num_samples.setter
    def num_samples(self, value: int) -> None:
        self.activation.num_samples = int(value)

    @property
    def last_sparsity(self) -> float | None:
        return self.activation.last_sparsity

    def fields(self, inputs: torch.Tensor) -> torch.Tensor:
        """The effective fields Wx + b."""
        return super().forward(inputs)

    def expectation(self, inputs: torch.Tensor) -> torch.Tensor:
        """The exact mean output: tanh(beta f) for spins, sigmoid(2 beta f) for bits."""
        mean = torch.tanh(self.activation.effective_beta() * self.fields(inputs))
        return mean if self.activation.output == "spin" else (mean + 1) / 2

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(self.fields(inputs))


class TSUBinaryLayer(ThermalLinear):
    """A stochastic binary layer: bits h in {0, 1} with P(h = 1) = sigmoid(2 beta (Wx + b)).

    With beta = 1/2 this is the sigmoid belief unit P(h = 1) = sigmoid(Wx + b).
    """

    def __init__(self, in_features: int, out_features: int, **options) -> None:  # noqa: ANN003
        options.setdefault("output", "binary")
        super().__init__(in_features, out_features, **options)
