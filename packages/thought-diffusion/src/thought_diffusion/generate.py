"""Generation by iterative unmasking, with token draws through the tsu-core categorical primitive.

Start with the answer fully masked. At each step the model predicts every masked position; a
token is drawn for each (temperature and top-k applied to the logits, the draw made by
`tsu_core.get_backend().categorical(logits, key=..., beta=1/temperature)`), and only some are
committed:

- `low_confidence` (LLaDA's low-confidence remasking): the k most confident draws per step,
  k chosen so the answer is complete after `steps` steps (steps = length: one token per step).
- `threshold` (Fast-dLLM's confidence-aware parallel decoding): every draw whose probability
  exceeds `threshold`, and at least the most confident one.

With `block_length` set, the answer is produced block by block, left to right (semi-
autoregressive); with `cache=True` the keys and values of the prompt and committed blocks are
computed once per block (at the block's first step, as Fast-dLLM's prefix cache) and each later
step of the block runs the model on the block alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import tsu_core
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.thoughts import ThoughtStack
from tsu_core.arrays import to_torch


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode.

    Arguments:
        length: tokens to generate.
        mode: 'low_confidence' or 'threshold'.
        steps: unmasking steps for 'low_confidence' over the whole answer (None: one token per
            step); with blocks, split evenly among them.
        threshold: the confidence above which 'threshold' commits a token.
        block_length: generate in blocks of this many tokens (None: one block, the whole answer).
        cache: reuse the prefix's keys and values within a block (needs `block_length`).
        temperature: 0 picks the most likely token (no draw); > 0 draws with beta = 1 / T.
        top_k: keep only the k largest logits before drawing (None: all).
    """

    length: int = 64
    mode: str = "low_confidence"
    steps: int | None = None
    threshold: float = 0.9
    block_length: int | None = None
    cache: bool = False
    temperature: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("low_confidence", "threshold"):
            raise ValueError(f"mode: expected 'low_confidence' or 'threshold', got {self.mode!r}")
        if self.length < 1:
            raise ValueError(f"length: expected >= 1 tokens to generate, got {self.length}")
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature}")
        if self.cache and self.block_length is None:
            raise ValueError("cache=True needs block_length (the cache holds earlier blocks)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k: expected >= 1 or None, got {self.top_k}")


def draw(
    logits: torch.Tensor, key: tsu_core.Key, temperature: float, top_k: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (...,) drawn from logits (..., V) and their model probability (the confidence).

    All positions are drawn in one call of the active tsu-core backend's categorical primitive
    (TSU_BACKEND); the logits are handed over as a torch tensor, which backends take through
    DLPack. The confidence is exp(logit[token] - logsumexp(logits)) at temperature 1 (after
    top-k), without forming the whole softmax.
    """
    logits = logits.float()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if temperature == 0:
        tokens = logits.argmax(-1)
    else:
        drawn = tsu_core.get_backend().categorical(
            logits.contiguous(), key=key, beta=1.0 / temperature
        )
        tokens = to_torch(drawn, logits.device, torch.long)
    chosen = logits.gather(-1, tokens[..., None]).squeeze(-1)
    confidence = torch.exp(chosen - torch.logsumexp(logits, -1))
    return tokens, confidence


def _commit_count(remaining: int, steps_left: int) -> int:
    return max(1, math.ceil(remaining / max(steps_left, 1)))


def prepare_prompt(
    model: ThoughtDiffusionLM, prompt: list[int] | torch.Tensor, length: int
) -> torch.Tensor:
    """The prompt as (1, P) ids, with clear errors for empty, over-long or foreign input."""
    ids = torch.as_tensor(prompt, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.numel() == 0:
        raise ValueError("prompt: it is empty; give at least one token of text")
    config = model.config
    if ids.shape[1] + length > config.max_length:
        raise ValueError(
            f"prompt: {ids.shape[1]} prompt tokens + {length} to generate exceed the model's "
            f"max_length {config.max_length}; shorten the prompt or generate fewer tokens"
        )
    if int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size:
        raise ValueError(
            f"prompt: token ids must lie in [0, {config.vocab_size}) for this model, got ids in "
            f"[{int(ids.min())}, {int(ids.max())}]; encode with the model's own tokenizer"
        )
    if bool((ids == config.mask_id).any()):
        raise ValueError(f"prompt: it contains the mask token (id {config.mask_id})")
    return ids


def choose_commits(
    scores: torch.Tensor, still: torch.Tensor, config: GenerationConfig, count: int
) -> torch.Tensor:
    """Which positions (B, n) to commit this step, for all rows at once.

    Arguments:
        scores: each position's confidence (B, n).
        still: which positions are still masked (B, n).
        config: the decoding mode and threshold.
        count: 'low_confidence' commits the `count` most confident masked positions per row.

    Returns:
        A boolean (B, n): 'threshold' commits every masked position above the threshold and
        at least the most confident masked one of each row that has any.
    """
    scores = scores.masked_fill(~still, -1.0)
    if config.mode == "low_confidence":
        chosen = scores.topk(min(count, scores.shape[1]), dim=-1).indices
    else:
        chosen = scores.argmax(-1, keepdim=True)
    commit = torch.zeros_like(still).scatter_(1, chosen, True)
    if config.mode == "threshold":
        commit |= scores > config.threshold
    return commit & still


def generate(
    model: ThoughtDiffusionLM,
    prompt: list[int] | torch.Tensor,
    config: GenerationConfig,
    key: tsu_core.Key | int,
    stack: ThoughtStack | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Generate `config.length` tokens after `prompt`.

    Each step is one model call, one backend draw and a few tensor operations. The loop reads
    nothing back from the device but, in 'threshold' mode, whether the block is finished (one
    sync per step; the backend may make its own input check): 'low_confidence' commits a known
    number of tokens per step, every position of the block is drawn (a fixed shape, so the
    backend compiles its draw once), the commits of all rows are chosen at once
    (`choose_commits`) and the model skips its id checks (the prompt is checked here, drawn ids
    are in range). The thought memory's keys and values are projected once.

    Returns the generated ids (B, length) and counts: model calls and tokens committed.
    """
    with torch.inference_mode():
        tokens, counts = _decode(model, prompt, config, tsu_core.as_key(key), stack)
    return tokens.clone(), counts  # an ordinary tensor: usable with autograd afterwards


def _decode(
    model: ThoughtDiffusionLM,
    prompt: list[int] | torch.Tensor,
    config: GenerationConfig,
    key: tsu_core.Key,
    stack: ThoughtStack | None,
) -> tuple[torch.Tensor, dict[str, int]]:
    device = next(model.parameters()).device
    ids = prepare_prompt(model, prompt, config.length).to(device)
    batch, prompt_length = ids.shape
    mask_id = model.config.mask_id
    memory = model.project(model.read(stack.to(device))) if stack is not None else None
    block = config.block_length or config.length
    num_blocks = math.ceil(config.length / block)
    total_steps = config.steps or config.length
    steps_per_block = max(1, math.ceil(total_steps / num_blocks))
    sequence = torch.full((batch, prompt_length + config.length), mask_id, device=device)
    sequence[:, :prompt_length] = ids
    calls = 0
    for block_index in range(num_blocks):
        start = prompt_length + block_index * block
        end = min(start + block, sequence.shape[1])
        current = sequence[:, start:end]  # a view: commits write into `sequence`
        prefix = None
        remaining = end - start
        step = 0
        while remaining > 0:
            if config.cache and prefix is not None:
                logits, _, _ = model(current, memory, prefix=prefix, validate=False)
            else:
                cache_length = start if config.cache else 0
                logits, _, prefix = model(
                    sequence[:, :end], memory, cache_length=cache_length, validate=False
                )
                logits = logits[:, start:]
            calls += 1
            still = current == mask_id
            tokens, confidence = draw(
                logits,
                key.fold_in(block_index * 1_000_003 + step),
                config.temperature,
                config.top_k,
            )
            count = _commit_count(remaining, steps_per_block - step)
            commit = choose_commits(confidence, still, config, count)
            current.copy_(torch.where(commit, tokens, current))
            if config.mode == "low_confidence":
                remaining -= count  # every row commits exactly `count` (they stay in step)
            else:
                remaining = int((still & ~commit).sum())  # the one sync of a step
            step += 1
    return sequence[:, prompt_length:], {"model_calls": calls, "tokens": config.length}


@torch.no_grad()
def remember(model: ThoughtDiffusionLM, turn: torch.Tensor, stack: ThoughtStack) -> ThoughtStack:
    """Write a thought from a finished turn (1, L) (prompt and answer) and push it."""
    return model.remember(turn, stack)
