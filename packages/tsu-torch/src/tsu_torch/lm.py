r"""TinyThermoLM: a small character-level language model whose attention and gating sample.

Each block is pre-norm: $x \leftarrow x + \mathrm{Attn}(\mathrm{LN}(x))$ with
`ThermodynamicAttention` (causal; k keys sampled per query), then
$x \leftarrow x + W_2\,(\mathrm{GELU}(W_1 u) \odot g)$, $u = \mathrm{LN}(x)$, where the gate
$g \in \{0, 1\}$ is sampled by the backend with $P(g = 1) = \sigma(W_g u)$ (a `TSUBinaryLayer` at
beta 1/2, straight-through). With `thermal=False` the same model uses exact softmax attention
and the exact gate $\sigma(W_g u)$: the baseline. Generation draws each next character with the
backend's categorical primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tsu_torch.attention import ThermodynamicAttention
from tsu_torch.context import ThermalContext, resolve_context
from tsu_torch.functional import sample_categorical
from tsu_torch.layers import TSUBinaryLayer


@dataclass
class LMConfig:
    """Sizes of TinyThermoLM (defaults: a CPU-sized model)."""

    vocab_size: int = 65
    context_length: int = 64
    embed_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4
    thermal: bool = True
    attention_samples: int = 8
    gate_samples: int = 1


class Block(nn.Module):
    def __init__(self, config: LMConfig, context: ThermalContext | None) -> None:
        super().__init__()
        width = config.embed_dim * config.mlp_ratio
        self.attention_norm = nn.LayerNorm(config.embed_dim)
        self.attention = ThermodynamicAttention(
            config.embed_dim,
            config.num_heads,
            batch_first=True,
            num_samples=config.attention_samples,
            exact=not config.thermal,
            context=context,
        )
        self.mlp_norm = nn.LayerNorm(config.embed_dim)
        self.up = nn.Linear(config.embed_dim, width)
        self.gate = TSUBinaryLayer(
            config.embed_dim, width, beta=0.5, num_samples=config.gate_samples, context=context
        )
        self.down = nn.Linear(width, config.embed_dim)
        self.thermal = config.thermal

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(inputs)
        inputs = (
            inputs + self.attention(normed, normed, normed, need_weights=False, is_causal=True)[0]
        )
        normed = self.mlp_norm(inputs)
        gate = self.gate(normed) if self.thermal else torch.sigmoid(self.gate.fields(normed))
        return inputs + self.down(nn.functional.gelu(self.up(normed)) * gate)


class TinyThermoLM(nn.Module):
    """A character-level transformer with sampled attention and gates (see the module docstring)."""

    def __init__(self, config: LMConfig, context: ThermalContext | None = None) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.position_embedding = nn.Embedding(config.context_length, config.embed_dim)
        self.blocks = nn.ModuleList(Block(config, context) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.embed_dim)
        self.head = nn.Linear(config.embed_dim, config.vocab_size)
        self.thermal_context = context

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (batch, length, vocab) for tokens (batch, length)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        hidden = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            hidden = block(hidden)
        return self.head(self.norm(hidden))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-character cross-entropy in nats over a batch of sequences (batch, length+1)."""
        logits = self(tokens[:, :-1])
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
        )

    @torch.no_grad()
    def generate(
        self, prompt: torch.Tensor, num_tokens: int, temperature: float = 1.0
    ) -> torch.Tensor:
        """Continue a (1, length) prompt, each character drawn by the backend's categorical."""
        context = resolve_context(self.thermal_context, "TinyThermoLM.generate")
        tokens = prompt
        for _ in range(num_tokens):
            logits = self(tokens[:, -self.config.context_length :])[:, -1]
            drawn = sample_categorical(logits, context, beta=1.0 / temperature)
            tokens = torch.cat([tokens, drawn.view(1, 1)], 1)
        return tokens


class CharacterData:
    """Characters of a text as integer tokens, split into train (first 90%) and validation."""

    def __init__(self, text: str) -> None:
        self.alphabet = sorted(set(text))
        self.index = {character: position for position, character in enumerate(self.alphabet)}
        tokens = torch.tensor([self.index[character] for character in text], dtype=torch.int64)
        cut = int(0.9 * len(tokens))
        self.train, self.validation = tokens[:cut], tokens[cut:]

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    def decode(self, tokens: torch.Tensor) -> str:
        return "".join(self.alphabet[int(token)] for token in tokens)

    def batch(
        self, split: str, batch_size: int, length: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Random windows (batch, length + 1) from one split."""
        source = self.train if split == "train" else self.validation
        starts = torch.randint(0, len(source) - length - 1, (batch_size,), generator=generator)
        return torch.stack([source[start : start + length + 1] for start in starts.tolist()])


@torch.no_grad()
def perplexity(
    model: TinyThermoLM, data: CharacterData, length: int, max_windows: int = 200
) -> float:
    """exp(mean nats per character) over consecutive validation windows."""
    source = data.validation
    device = next(model.parameters()).device
    windows = [
        source[start : start + length + 1] for start in range(0, len(source) - length - 1, length)
    ]
    total, count = 0.0, 0
    for start in range(0, min(len(windows), max_windows), 32):
        batch = torch.stack(windows[start : min(start + 32, max_windows)]).to(device)
        total += float(model.loss(batch)) * batch[:, 1:].numel()
        count += batch[:, 1:].numel()
    return math.exp(total / count)
