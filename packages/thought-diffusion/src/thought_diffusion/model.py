"""The denoiser: a bidirectional transformer whose text attends to a stack of thoughts.

Blocks are pre-norm (RMSNorm) with rotary self-attention (no causal mask, unless the config
asks for the autoregressive baseline) and a SwiGLU MLP. The thought memory is built once per
call from the stack and read in one of two ways (`ModelConfig.thought_reader`):

- 'attention': each thought cell becomes a memory token (a learned map of its C channels plus
  an embedding of the thought's age) that every block's own self-attention attends to beside
  the text, with its keys and values from the block's own projections, at the rotary position
  where its token stood in the turn just before the current one (cell j at j - H W, for a
  thought of any age). The text then reads earlier turns as the long-context twin reads the
  turn before, through weights the language-model loss trains on every token.
- 'cross': a separate cross-attention per block; each thought's H x W tokens get a 2D position
  embedding and a temporal embedding of their age, and temporal attention mixes each spatial
  position across the stack's slots.

Either way each slot's keys carry the bias log sigmoid(importance), so the importance score is
learned by how much the text uses it. With `use_thoughts=False` none of the thought modules
exist: the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional
from torch.utils.checkpoint import checkpoint

from thought_diffusion.config import ModelConfig
from thought_diffusion.thoughts import ThoughtStack

Cache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Memory:
    """A stack read into memory tokens (B, M, width), their attention bias (B, M) (-inf on empty
    slots) and, for the 'attention' reader, their rotary positions (M,)."""

    tokens: torch.Tensor
    bias: torch.Tensor
    positions: torch.Tensor | None = None


@dataclass(frozen=True)
class ProjectedMemory:
    """The thought memory's keys and values, per block, with its bias.

    `ThoughtDiffusionLM.project` computes them once; generation reuses them for every model
    call instead of projecting the memory (1 + S*H*W tokens) again in every block of every call.
    """

    keys_values: list[tuple[torch.Tensor, torch.Tensor]]
    bias: torch.Tensor


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight."""

    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel where the backend has it (the eager formula took eight).
        normed = functional.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return normed.to(x.dtype) * self.weight


Rotary = tuple[torch.Tensor, torch.Tensor]


def rotary(positions: torch.Tensor, head_width: int) -> Rotary:
    """cos and sin (L, D/2) of the rotary angles position * 10000^(-2i/D) at positions (L,).

    Computed once per forward pass and shared by every block (float32; `rotate` casts).
    """
    half = head_width // 2
    exponents = torch.arange(half, device=positions.device, dtype=torch.float32) / half
    angles = positions.float()[:, None] * (10000.0**-exponents)[None]
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, angles: Rotary) -> torch.Tensor:
    """Rotary position embedding of (..., L, D) by the angles of `rotary`.

    Pairs (x_i, x_{i+D/2}) rotate by angle position * 10000^(-2i/D).
    """
    half = x.shape[-1] // 2
    cos, sin = angles[0].to(x.dtype), angles[1].to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], -1)


class SelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def keys_values(
        self, memory: torch.Tensor, angles: Rotary
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (rotated by `angles`, (M, D/2) each) and values (B, heads, M, D) of memory
        tokens (B, M, width) that are already normed: this attention's own projections."""
        width = memory.shape[-1]
        k, v = rearrange(
            functional.linear(memory, self.qkv.weight[width:]),
            "b m (two h d) -> two b h m d",
            two=2,
            h=self.num_heads,
        )
        return rotate(k, angles), v

    def forward(
        self,
        x: torch.Tensor,
        angles: Rotary,
        causal: bool,
        prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        memory: tuple[torch.Tensor, torch.Tensor] | None = None,
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attention over the cached `prefix` and `x`, and over `memory` (its keys and values
        from `keys_values`, with the additive `bias` (B, M)) when given. Returns the output and
        the keys and values of prefix and `x` (the memory's are not cached)."""
        qkv = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        (q, k), v = rotate(qkv[:2], angles), qkv[2]  # queries and keys in one rotation
        if prefix is not None:
            k, v = torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2)
        if memory is None:
            out = functional.scaled_dot_product_attention(
                q, k, v, is_causal=causal and prefix is None
            )
        else:
            mask = torch.cat([bias, bias.new_zeros(bias.shape[0], k.shape[2])], 1)
            out = functional.scaled_dot_product_attention(
                q,
                torch.cat([memory[0].to(k.dtype), k], 2),
                torch.cat([memory[1].to(v.dtype), v], 2),
                attn_mask=mask[:, None, None, :].to(q.dtype),
            )
        return self.out(rearrange(out, "b h l d -> b l (h d)")), (k, v)


class CrossAttention(nn.Module):
    """Queries from the text, keys and values from the thought memory with an additive bias."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(width, width, bias=False)
        self.key_value = nn.Linear(width, 2 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, heads, M, D) of memory tokens (B, M, width)."""
        k, v = rearrange(
            self.key_value(memory), "b m (two h d) -> two b h m d", two=2, h=self.num_heads
        )
        return k, v

    def forward(
        self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor
    ) -> torch.Tensor:
        q = rearrange(self.query(x), "b l (h d) -> b h l d", h=self.num_heads)
        k, v = keys_values
        out = functional.scaled_dot_product_attention(
            q, k.to(q.dtype), v.to(q.dtype), attn_mask=bias[:, None, None, :].to(q.dtype)
        )
        return self.out(rearrange(out, "b h l d -> b l (h d)"))


class SwiGLU(nn.Module):
    """W2 (silu(W1 x) * W3 x), hidden width 8/3 of the model's, rounded up to 64."""

    def __init__(self, width: int) -> None:
        super().__init__()
        hidden = 64 * math.ceil(8 * width / 3 / 64)
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(functional.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.width)
        self.attention = SelfAttention(config.width, config.num_heads)
        self.reads_by_attention = config.use_thoughts and config.thought_reader == "attention"
        if config.use_thoughts and not self.reads_by_attention:
            self.cross_norm = RMSNorm(config.width)
            self.cross = CrossAttention(config.width, config.num_heads)
        self.mlp_norm = RMSNorm(config.width)
        self.mlp = SwiGLU(config.width)
        self.causal = config.causal

    def forward(
        self,
        x: torch.Tensor,
        angles: Rotary,
        memory: tuple[torch.Tensor, torch.Tensor] | None,
        prefix: tuple[torch.Tensor, torch.Tensor] | None,
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One block; `memory` is this block's keys and values of the thought memory
        (`ThoughtDiffusionLM.project`) and `bias` the memory's attention bias."""
        if self.reads_by_attention:
            attended, key_value = self.attention(
                self.attention_norm(x), angles, self.causal, prefix, memory, bias
            )
            return self._mlp(x + attended), key_value
        attended, key_value = self.attention(self.attention_norm(x), angles, self.causal, prefix)
        x = x + attended
        if memory is not None:
            x = x + self.cross(self.cross_norm(x), memory, bias)
        return self._mlp(x), key_value

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.mlp_norm(x))

    def memory_keys_values(
        self, tokens: torch.Tensor, angles: Rotary | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This block's keys and values of memory tokens (B, M, width)."""
        if self.reads_by_attention:
            return self.attention.keys_values(self.attention_norm(tokens), angles)
        return self.cross.keys_values(tokens)


class AttentionReader(nn.Module):
    """Turns a stack (B, S, H, W, C) into memory tokens (B, S*H*W, width) for the blocks'
    self-attention, with their bias and rotary positions.

    A thought's cells are its turn's tokens in reading order (one cell per token where H*W is
    the turn's length). Every thought sits where the turn just before the current one stood:
    cell j at position j - H W (the current turn starts at 0), whatever its age, so reading a
    thought is one skill at every distance; the age is a learned embedding added to its cells.
    (Placed by age, at j - (a + 1) H W, each distance was a different rotary offset, and
    training learned to read them one distance at a time: docs/notes/thought-memory.md.)
    A text with an empty stack attends to its own tokens alone (every memory key's bias is
    -inf).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.project = nn.Linear(config.thought_channels, config.width)
        self.ages = nn.Embedding(config.stack_size + 1, config.width)
        self.stack_size = config.stack_size

    def forward(self, stack: ThoughtStack) -> Memory:
        _, slots, height, width, _ = stack.thoughts.shape
        cells = height * width
        tokens = self.project(stack.thoughts)  # (B, S, H, W, d)
        tokens = tokens + self.ages(stack.ages.clamp(max=self.stack_size))[:, :, None, None]
        positions = torch.arange(cells, device=stack.ages.device) - cells
        bias = torch.where(
            stack.valid,
            functional.logsigmoid(stack.importance.float()),
            torch.full_like(stack.importance.float(), -torch.inf),
        )
        return Memory(
            rearrange(tokens, "b s h w d -> b (s h w) d"),
            bias.repeat_interleave(cells, 1),
            positions.repeat(slots),
        )


class ThoughtReader(nn.Module):
    """Turns a stack (B, S, H, W, C) into memory tokens (B, 1 + S*H*W, width) and their bias.

    A learned null token is always present, so a text with an empty stack attends to it alone.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = config.width
        self.project = nn.Linear(config.thought_channels, width)
        self.rows = nn.Parameter(torch.randn(config.thought_height, width) * 0.02)
        self.columns = nn.Parameter(torch.randn(config.thought_width, width) * 0.02)
        self.ages = nn.Embedding(config.stack_size + 1, width)
        self.temporal_norm = RMSNorm(width)
        self.temporal = nn.MultiheadAttention(width, config.num_heads, batch_first=True, bias=False)
        self.null = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.stack_size = config.stack_size

    def forward(self, stack: ThoughtStack) -> Memory:
        batch, slots, height, width, _ = stack.thoughts.shape
        tokens = self.project(stack.thoughts)  # (B, S, H, W, d)
        tokens = tokens + self.rows[:, None] + self.columns[None]
        ages = stack.ages.clamp(max=self.stack_size)
        tokens = tokens + self.ages(ages)[:, :, None, None]
        # Temporal attention: each spatial position attends across the stack's held slots.
        sequence = rearrange(tokens, "b s h w d -> (b h w) s d")
        invalid = ~stack.valid
        invalid = invalid & ~invalid.all(1, keepdim=True)  # all-empty rows: mask nothing
        invalid = invalid.repeat_interleave(height * width, 0)
        normed = self.temporal_norm(sequence)
        mixed, _ = self.temporal(
            normed, normed, normed, key_padding_mask=invalid, need_weights=False
        )
        sequence = sequence + mixed
        memory = rearrange(sequence, "(b h w) s d -> b (s h w) d", b=batch, h=height, w=width)
        bias = torch.where(
            stack.valid,
            functional.logsigmoid(stack.importance.float()),
            torch.full_like(stack.importance.float(), -torch.inf),
        )
        bias = bias.repeat_interleave(height * width, 1)
        memory = torch.cat([self.null.expand(batch, -1, -1).to(memory.dtype), memory], 1)
        bias = torch.cat([torch.zeros_like(bias[:, :1]), bias], 1)
        return Memory(memory, bias)


class ThoughtWriter(nn.Module):
    """A new thought (B, H, W, C) and its importance (B,) from a turn's final hidden states.

    The thought is the turn itself, pooled: cell j (in reading order, row by row) is the mean of
    the final hidden states over the j-th of H*W equal runs of the turn (adaptive average
    pooling), mapped to C channels (no map when C equals the width) and scaled to unit RMS.
    Nothing learned stands between the text and the thought, so a thought holds what the turn
    said from the first step on and the reader only has to learn to read it. A learned writer
    (H*W queries attending over the turn) had to learn to write and to read at once, and on the
    fact-recall task it never started (docs/notes/thought-memory.md).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.height, self.width = config.thought_height, config.thought_width
        self.channels = config.thought_channels
        self.to_thought = (
            nn.Identity()
            if config.thought_channels == config.width
            else nn.Linear(config.width, config.thought_channels, bias=False)
        )
        self.importance = nn.Linear(config.width, 1)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells = functional.adaptive_avg_pool1d(
            hidden.float().transpose(1, 2), self.height * self.width
        ).transpose(1, 2)
        importance = self.importance(cells.mean(1).to(hidden.dtype)).squeeze(-1)
        thought = functional.rms_norm(
            self.to_thought(cells.to(hidden.dtype)).float(), (self.channels,)
        )
        thought = rearrange(thought, "b (h w) c -> b h w c", h=self.height)
        return thought, importance.float()


class ThoughtDiffusionLM(nn.Module):
    """Token ids (B, L) -> logits (B, L, V), conditioned on a thought stack.

    For the diffusion objective the mask token's logit is -inf: the model never predicts it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = RMSNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        if config.use_thoughts:
            self.reader = (
                AttentionReader(config)
                if config.thought_reader == "attention"
                else ThoughtReader(config)
            )
            self.writer = ThoughtWriter(config)
            # Predicts the next thought from the newest held one (an optional auxiliary loss).
            self.next_thought = nn.Linear(config.thought_channels, config.thought_channels)
        self.apply(self._initialise)

    @staticmethod
    def _initialise(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self, thought_path: bool | None = None) -> int:
        """Parameters in all (None), only the thought path (True), or all but it (False)."""
        total = 0
        for name, parameter in self.named_parameters():
            in_thoughts = (
                name.startswith(("reader.", "writer.", "next_thought.")) or ".cross" in name
            )
            if thought_path is None or thought_path == in_thoughts:
                total += parameter.numel()
        return total

    def read(self, stack: ThoughtStack | None) -> Memory | None:
        """The thought memory for a stack (None without thoughts). Reuse it across calls."""
        if not self.config.use_thoughts or stack is None:
            return None
        return self.reader(stack)

    def project(self, memory: Memory | None) -> ProjectedMemory | None:
        """Every block's keys and values of a memory from `read`, to pass as `memory` to many
        forward calls (generation) instead of recomputing them in each."""
        if not self.config.use_thoughts or memory is None:
            return None
        angles = None
        if memory.positions is not None:
            angles = rotary(memory.positions, self.config.width // self.config.num_heads)
        return ProjectedMemory(
            [block.memory_keys_values(memory.tokens, angles) for block in self.blocks],
            memory.bias,
        )

    def write(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A new thought and its importance from final hidden states (B, L, width)."""
        if not self.config.use_thoughts:
            raise ValueError("this model has no thought path (use_thoughts=False)")
        return self.writer(hidden)

    def thought_of(
        self, tokens: torch.Tensor, memory: Memory | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The thought (B, H, W, C) and importance (B,) of finished turns (B, L): their final
        hidden states, pooled by the writer. With `config.write_with_memory` the pass reads
        `memory` (the stack's, from `read`); without, it reads the turns alone."""
        thought, importance, _ = self.write_pass(tokens, memory)
        return thought, importance

    def write_pass(
        self, tokens: torch.Tensor, memory: Memory | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`thought_of`'s thought and importance, and the logits (B, L, V) of the same pass:
        training scores them against the turn's own tokens (`TrainConfig.written_tokens_weight`)."""
        if not self.config.write_with_memory:
            memory = None
        logits, hidden, _ = self(tokens, memory, return_hidden=True)
        thought, importance = self.write(hidden)
        return thought, importance, logits

    def remember(
        self, tokens: torch.Tensor, stack: ThoughtStack, where: torch.Tensor | None = None
    ) -> ThoughtStack:
        """`stack` with the thought of finished turns (B, L) pushed (only in the rows `where`
        (B,) marks, when given)."""
        memory = self.read(stack) if self.config.write_with_memory else None
        return stack.push(*self.thought_of(tokens, memory), where=where)

    def check_tokens(self, tokens: torch.Tensor, offset: int = 0) -> None:
        """Clear errors for ids outside the vocabulary and for over-long inputs."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens: expected shape (batch, length), got {tuple(tokens.shape)}")
        if tokens.shape[1] == 0:
            raise ValueError("tokens: the input is empty; give at least one token")
        if offset + tokens.shape[1] > self.config.max_length:
            raise ValueError(
                f"tokens: {offset + tokens.shape[1]} positions exceed the model's max_length "
                f"{self.config.max_length}; shorten the prompt or the requested length"
            )
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"tokens: ids must lie in [0, {self.config.vocab_size}) for this model's "
                f"vocabulary, got ids in [{low}, {high}]; was the text encoded with the "
                "tokenizer the model was trained with?"
            )

    def forward(
        self,
        tokens: torch.Tensor,
        memory: Memory | ProjectedMemory | None = None,
        prefix: Cache | None = None,
        cache_length: int = 0,
        return_hidden: bool = False,
        validate: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, Cache | None]:
        """Logits (B, L, V); also the final hidden states and the first `cache_length`
        positions' keys and values per layer when asked.

        Arguments:
            tokens: (B, L) ids.
            memory: the thought memory from `read`, or its projection from `project` (None: no
                thoughts; the baseline ignores it).
            prefix: cached keys/values of earlier positions; `tokens` then start after them.
            cache_length: return keys/values of this many leading positions (0: none).
            return_hidden: return the final normed hidden states (B, L, width).
            validate: check the ids (`check_tokens`: reads them back to the host, a device
                sync); generation passes False for ids it has already checked or drawn itself.
        """
        offset = 0 if prefix is None else prefix[0][0].shape[2]
        if validate:
            self.check_tokens(tokens, offset)
        positions = torch.arange(offset, offset + tokens.shape[1], device=tokens.device)
        angles = rotary(positions, self.config.width // self.config.num_heads)
        if not self.config.use_thoughts:
            memory = None
        elif not isinstance(memory, ProjectedMemory):
            memory = self.project(memory)
        x = self.embedding(tokens)
        cache: Cache = []
        for index, block in enumerate(self.blocks):
            layer_prefix = None if prefix is None else prefix[index]
            layer_memory = None if memory is None else memory.keys_values[index]
            bias = None if memory is None else memory.bias
            if self.config.gradient_checkpointing and self.training:
                x, key_value = checkpoint(
                    block, x, angles, layer_memory, layer_prefix, bias, use_reentrant=False
                )
            else:
                x, key_value = block(x, angles, layer_memory, layer_prefix, bias)
            if cache_length:
                cache.append((key_value[0][:, :, :cache_length], key_value[1][:, :, :cache_length]))
        hidden = self.norm(x)
        logits = self.head(hidden).float()
        if not self.config.causal:
            logits[..., self.config.mask_id] = -torch.inf
        return logits, (hidden if return_hidden else None), (cache if cache_length else None)
