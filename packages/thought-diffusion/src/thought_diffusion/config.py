"""Model and training configuration: dataclasses with working defaults and size presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """The denoiser transformer, its thought path and the thought stack's shape.

    Arguments:
        vocab_size: number of token ids, the mask token included (it is the last id).
        max_length: the longest token sequence the model reads (one turn, prompt + answer).
        width: the residual stream's width (d_model).
        depth: the number of transformer blocks.
        num_heads: attention heads per block.
        use_thoughts: False gives the baseline: the same model with the thought path removed.
        thought_height: H of one thought's shape H x W x C.
        thought_width: W of one thought's shape.
        thought_channels: C of one thought's shape.
        stack_size: S, the number of thoughts the stack holds.
        write_with_memory: the pass whose hidden states become a turn's thought also reads
            the stack (thoughts can carry earlier thoughts on). False (the default) writes each
            thought from its turn alone, so training scores all turns of a sequence in two
            model calls instead of two per turn (`train.sequence_loss`).
        thought_reader: how the text reads the stack. 'attention': each block's own
            self-attention also attends to the thought cells (keys and values from the block's
            own projections; every thought at the rotary positions of the turn just before the
            current one, its age a learned embedding), so the path that the language-model
            loss trains on every token is the one that reads. 'cross': a
            separate cross-attention per block to the cells, with 2D position and age
            embeddings and temporal mixing across slots (the design before; it learned to
            read a fact only after thousands of steps, see `docs/notes/thought-memory.md`).
        causal: True turns the denoiser into the autoregressive baseline (causal mask).
        gradient_checkpointing: recompute each block's activations in the backward pass.
    """

    vocab_size: int = 257
    max_length: int = 256
    width: int = 256
    depth: int = 4
    num_heads: int = 4
    use_thoughts: bool = True
    thought_height: int = 16
    thought_width: int = 16
    thought_channels: int = 64
    stack_size: int = 8
    write_with_memory: bool = False
    thought_reader: str = "attention"
    causal: bool = False
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.width % self.num_heads or (self.width // self.num_heads) % 2:
            raise ValueError(
                f"width {self.width} must split into {self.num_heads} heads of even size"
            )
        if self.thought_reader not in ("attention", "cross"):
            raise ValueError(
                f"thought_reader: expected 'attention' or 'cross', got {self.thought_reader!r}"
            )
        if self.vocab_size < 2:
            raise ValueError(
                f"vocab_size must be >= 2 (a token and the mask), got {self.vocab_size}"
            )

    @property
    def mask_id(self) -> int:
        """The absorbing (mask) token: the last id of the vocabulary."""
        return self.vocab_size - 1

    @property
    def thought_tokens(self) -> int:
        """Memory tokens (cells) one thought contributes (H * W)."""
        return self.thought_height * self.thought_width

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        # Configs stored before `write_with_memory` existed wrote every thought with memory;
        # before `thought_reader`, the text read thoughts by cross-attention.
        return cls(**{"write_with_memory": True, "thought_reader": "cross", **values})


PRESETS: dict[str, ModelConfig] = {
    # CPU tests and demos: runs in milliseconds.
    "tiny": ModelConfig(
        max_length=64,
        width=64,
        depth=2,
        num_heads=2,
        thought_height=8,
        thought_width=8,
        thought_channels=64,
        stack_size=4,
    ),
    # About 25M parameters in the transformer body.
    "small": ModelConfig(max_length=256, width=512, depth=8, num_heads=8),
    # About 100M parameters in the transformer body.
    "base": ModelConfig(max_length=256, width=768, depth=14, num_heads=12),
}
"""The model presets by name (`preset(name)` returns one with fields overridden)."""


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset by name ('tiny', 'small', 'base'), with fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# Where a fact-recall episode's conversation starts (`TrainConfig.memory_history`,
# `memory.FactRecall.episodes`).
MEMORY_HISTORIES = ("full", "none", "varied")


@dataclass
class TrainConfig:
    """The training run.

    Arguments:
        objective: 'diffusion' (masked diffusion ELBO) or 'autoregressive' (the AR baseline).
        schedule: the mask schedule alpha(t): 'linear' or 'cosine'.
        turn_length: tokens per turn; a training sequence is `num_turns` consecutive turns.
        num_turns: turns per training sequence (thoughts written after each but the last).
        recall_probability: fraction of sequences whose last turn repeats the first (the
            multi-turn task whose answer depends on an earlier turn).
        memory_probability: fraction of sequences that are fact-recall episodes (`memory.py`):
            a fact turn, then a question about it 1..num_turns-1 turns later.
        memory_facts: facts per fact-recall episode, drawn uniformly from this tuple.
        memory_history: where a fact-recall episode's conversation starts
            (`FactRecall.episodes`): 'varied' at a turn drawn up to the fact turn, so that
            questions are asked of stacks of every fill, as in a chat younger than an episode;
            'full' at the first turn; 'none' at the fact turn. Only the thought model reads it.
        answer_weight: weight of the answer's loss (nats per sequence) in fact-recall episodes.
        context: 'turn' scores each turn seeing only itself (and the thought stack); 'all' gives
            the long-context twin: every sequence is one turn of num_turns x turn_length tokens.
        progressive_steps: if > 0, the largest mask ratio ramps from `progressive_start` to 1
            over this many steps (the progressive mask-ratio schedule).
        written_tokens_weight: weight of the cross-entropy of each written turn's own tokens,
            read through the head from the final hidden states its thought is pooled from. The
            diffusion loss never scores those positions (the turn is clean there), so without
            this term nothing ties them to the tokens they hold.
        max_minutes: stop after this wall-clock budget (0: no limit).
        precision: 'bf16' (autocast on CUDA), 'fp16' or 'fp32'.
    """

    objective: str = "diffusion"
    schedule: str = "linear"
    batch_size: int = 32
    turn_length: int = 64
    num_turns: int = 3
    recall_probability: float = 0.25
    memory_probability: float = 0.0
    memory_facts: tuple[int, ...] = (1,)
    memory_history: str = "varied"
    answer_weight: float = 1.0
    context: str = "turn"
    steps: int = 1000
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    gradient_clip: float = 1.0
    accumulation_steps: int = 1
    precision: str = "bf16"
    progressive_steps: int = 0
    progressive_start: float = 0.3
    next_thought_weight: float = 0.0
    reconstruction_weight: float = 0.0
    written_tokens_weight: float = 0.0
    eval_interval: int = 200
    eval_batches: int = 8
    checkpoint_interval: int = 500
    max_minutes: float = 0.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in ("diffusion", "autoregressive"):
            raise ValueError(
                f"objective: expected 'diffusion' or 'autoregressive', got {self.objective!r}"
            )
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule: expected 'linear' or 'cosine', got {self.schedule!r}")
        if self.context not in ("turn", "all"):
            raise ValueError(f"context: expected 'turn' or 'all', got {self.context!r}")
        if self.memory_history not in MEMORY_HISTORIES:
            raise ValueError(
                f"memory_history: expected one of {MEMORY_HISTORIES}, got {self.memory_history!r}"
            )
        self.memory_facts = tuple(self.memory_facts)  # a list after a JSON round trip
        if self.memory_probability > 0 and self.num_turns < 2:
            raise ValueError("memory_probability > 0 needs num_turns >= 2 (a fact, a question)")
        if self.num_turns < 1 or self.turn_length < 2:
            raise ValueError("num_turns must be >= 1 and turn_length >= 2")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        # Runs stored before `memory_history` existed started every episode at its first turn.
        return cls(**{"memory_history": "full", **values})
