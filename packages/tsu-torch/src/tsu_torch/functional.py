r"""Sampling spins through the backend's p-bit primitive, with straight-through gradients.

Forward: k independent spins per field from the backend,
$P(s = +1) = \sigma(2 \beta f)$, averaged, so the output is an unbiased estimate of
$E[s] = \tanh(\beta f)$.

Backward (the straight-through estimators):

* "sigmoid": $\partial E[s] / \partial f = \beta (1 - \tanh^2(\beta f)) = 4 \beta\,\sigma(2\beta f)(1 - \sigma(2\beta f))$,
  the exact gradient of the expectation;
* "identity": the gradient passes unchanged (the classic straight-through estimator).
"""

from __future__ import annotations

from typing import Literal

import torch

from tsu_core.arrays import to_torch
from tsu_torch.context import ThermalContext
from tsu_torch.shapes import bucket, pad_rows

Estimator = Literal["sigmoid", "identity"]


def sample_spins(
    fields: torch.Tensor, context: ThermalContext, beta: float, num_samples: int = 1
) -> torch.Tensor:
    """k spin samples per field from the backend: shape (num_samples, *fields.shape), +-1.

    The fields go to the backend flattened and padded to a size bucket (`tsu_torch.shapes`),
    so that a compiling backend sees few distinct shapes.
    """
    flat = fields.detach().reshape(1, -1).expand(num_samples, -1).reshape(-1)
    count = flat.numel()
    padded = bucket(count)
    if padded != count:
        flat = torch.cat([flat, flat.new_zeros(padded - count)])
    spins = context.backend.pbit(flat.contiguous(), key=context.next_key(), beta=beta)
    spins = to_torch(spins, fields.device, fields.dtype)[:count]
    return spins.reshape(num_samples, *fields.shape)


def sample_categorical(logits: torch.Tensor, context: ThermalContext, beta: float) -> torch.Tensor:
    """Indices (logits.shape[:-1]) drawn with P(j) ~ exp(beta * logits[..., j]) by the backend.

    Rows and categories are padded to size buckets (padded categories get -inf, so they are
    never drawn), so that a compiling backend sees few distinct shapes.
    """
    categories = logits.shape[-1]
    rows, count = pad_rows(logits.detach(), fill=0.0)
    padded = bucket(categories)
    if padded != categories:
        rows = torch.nn.functional.pad(rows, (0, padded - categories), value=float("-inf"))
    indices = context.backend.categorical(rows, key=context.next_key(), beta=beta)
    return to_torch(indices, logits.device, torch.int64)[:count].reshape(logits.shape[:-1])


class _ThermalSpin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fields, context, beta, num_samples, estimator):  # noqa: ANN001
        spins = sample_spins(fields, context, beta, num_samples).mean(0)
        ctx.save_for_backward(fields)
        ctx.beta = beta
        ctx.estimator = estimator
        return spins

    @staticmethod
    def backward(ctx, grad_output):  # noqa: ANN001
        (fields,) = ctx.saved_tensors
        if ctx.estimator == "identity":
            return grad_output, None, None, None, None
        slope = ctx.beta * (1 - torch.tanh(ctx.beta * fields) ** 2)
        return grad_output * slope, None, None, None, None


def thermal_activation(
    fields: torch.Tensor,
    context: ThermalContext,
    beta: float = 1.0,
    num_samples: int = 1,
    estimator: Estimator = "sigmoid",
) -> torch.Tensor:
    """The mean of `num_samples` backend spins per field (values in [-1, 1]).

    Arguments:
        fields: the effective fields f (any shape, floating point).
        context: supplies the backend and the key; the context's temperature is NOT applied
            here (layers multiply it into `beta`).
        beta: the inverse temperature of the draw.
        num_samples: k, the number of spins averaged per field.
        estimator: "sigmoid" (the exact gradient of tanh(beta f)) or "identity".
    """
    if estimator not in ("sigmoid", "identity"):
        raise ValueError(f"estimator: expected 'sigmoid' or 'identity', got {estimator!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples: expected >= 1, got {num_samples}")
    return _ThermalSpin.apply(fields, context, float(beta), int(num_samples), estimator)
