r"""Thermodynamic attention: attention weights sampled from the Boltzmann distribution over keys.

For query i, exact attention averages the values with weights
$p_{ij} = \mathrm{softmax}_j(q_i \cdot k_j / (\sqrt{d}\, T))$. Here the backend's categorical
primitive draws k key indices $j_1, \dots, j_k \sim p_{i\cdot}$ and the weights become the
empirical frequencies $\hat p_{ij} = \tfrac1k \sum_r [j_r = j]$, so the output
$\hat o_i = \sum_j \hat p_{ij} v_j$ is unbiased for the exact output with variance
$\tfrac1k \left(\sum_j p_{ij} v_j^2 - o_i^2\right)$ per coordinate.

Gradient (straight through the expectation): the weights used are
$p + \mathrm{sg}(\hat p - p)$ (sg: stop gradient), equal to $\hat p$ in value, so queries and
keys receive the gradient of exact softmax attention, and values the gradient of the sampled
weights.

Shapes follow `nn.MultiheadAttention` (and its parameter names, so its `state_dict` loads).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from tsu_torch.context import ThermalContext, resolve_context
from tsu_torch.functional import sample_categorical


def sample_attention_weights(
    logits: torch.Tensor, context: ThermalContext, beta: float, num_samples: int
) -> torch.Tensor:
    """Empirical frequencies of `num_samples` categorical draws over the last axis.

    Arguments:
        logits: (..., S) scores, -inf for masked keys (each row needs one finite entry).
        beta: the inverse temperature of the draw, P(j) ~ exp(beta * logits[..., j]).

    Returns:
        (..., S) weights in {0, 1/k, ..., 1}, each row summing to 1.
    """
    expanded = logits.detach().unsqueeze(0).expand(num_samples, *logits.shape)
    indices = sample_categorical(expanded, context, beta).unsqueeze(-1)
    counts = torch.zeros(expanded.shape, dtype=logits.dtype, device=logits.device)
    counts.scatter_add_(-1, indices, torch.ones_like(indices, dtype=logits.dtype))
    return counts.mean(0)


def merge_masks(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    is_causal: bool,
    batch: int,
    heads: int,
    target: int,
    source: int,
    like: torch.Tensor,
) -> torch.Tensor | None:
    """One additive mask of shape broadcastable to (batch, heads, target, source), -inf where
    attention is forbidden (boolean masks: True means masked, as in `nn.MultiheadAttention`)."""
    total = None

    def additive(mask: torch.Tensor) -> torch.Tensor:
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(
                mask, float("-inf")
            )
        return mask.to(like.dtype)

    if is_causal and attn_mask is None:
        attn_mask = torch.ones(target, source, dtype=torch.bool, device=like.device).triu(1)
    if attn_mask is not None:
        mask = additive(attn_mask)
        if mask.dim() == 3:  # (batch * heads, target, source)
            mask = mask.view(batch, heads, target, source)
        total = mask
    if key_padding_mask is not None:
        padding = additive(key_padding_mask).view(batch, 1, 1, source)
        total = padding if total is None else total + padding
    return total


class ThermodynamicAttention(nn.Module):
    """Multi-head attention whose weights are sampled by the backend (a drop-in for
    `nn.MultiheadAttention` without `kdim`/`vdim`/`add_bias_kv`).

    Arguments:
        embed_dim: as `nn.MultiheadAttention`.
        num_heads: as `nn.MultiheadAttention`.
        dropout: as `nn.MultiheadAttention`.
        bias: as `nn.MultiheadAttention`.
        batch_first: as `nn.MultiheadAttention`.
        num_samples: k, the number of keys sampled per query.
        temperature: T of softmax(QK^T / (sqrt(d) T)); divided further by the context's.
        exact: use exact softmax weights (the baseline, and for evaluation).
        context: the thermal context.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        num_samples: int = 8,
        temperature: float = 1.0,
        exact: bool = False,
        context: ThermalContext | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim: expected a multiple of num_heads ({num_heads}), got {embed_dim}"
            )
        options = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.num_samples = int(num_samples)
        self.temperature = float(temperature)
        self.exact = exact
        self.thermal_context = context
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **options))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **options)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **options)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def _project(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = self.in_proj_weight.chunk(3)
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        projected = [
            functional.linear(x, w, b)
            for x, w, b in zip((query, key, value), weights, biases, strict=True)
        ]
        batch = query.shape[0]
        return tuple(
            x.view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2) for x in projected
        )  # type: ignore[return-value]

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (output, weights) like `nn.MultiheadAttention`; the weights are the sampled
        frequencies (or the exact softmax when `exact`)."""
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (
                x.unsqueeze(1 if not self.batch_first else 0) for x in (query, key, value)
            )
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        batch, target, _ = query.shape
        source = key.shape[1]
        q, k, v = self._project(query, key, value)
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        mask = merge_masks(
            attn_mask, key_padding_mask, is_causal, batch, self.num_heads, target, source, logits
        )
        if mask is not None:
            logits = logits + mask
        temperature = self.temperature
        if not self.exact:
            temperature *= resolve_context(self.thermal_context, type(self).__name__).temperature
        probabilities = torch.softmax(logits / temperature, dim=-1)
        if self.exact:
            weights = probabilities
        else:
            context = resolve_context(self.thermal_context, type(self).__name__)
            sampled = sample_attention_weights(logits, context, 1.0 / temperature, self.num_samples)
            weights = probabilities + (sampled - probabilities).detach()
        if self.training and self.dropout > 0:
            weights = functional.dropout(weights, p=self.dropout)
        output = (weights @ v).transpose(1, 2).reshape(batch, target, self.embed_dim)
        output = self.out_proj(output)
        if not self.batch_first:
            output = output.transpose(0, 1)
        returned = None
        if need_weights:
            returned = weights.detach().mean(1) if average_attn_weights else weights.detach()
            if unbatched:
                returned = returned.squeeze(0)
        if unbatched:
            output = output.squeeze(1 if not self.batch_first else 0)
        return output, returned
