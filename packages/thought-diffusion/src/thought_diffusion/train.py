"""Training: multi-turn masked diffusion (or the autoregressive baseline) with checkpoints.

Each training sequence is T consecutive turns. Turn k is denoised with the thought stack built
from turns 1..k-1: after each turn the model reads the clean turn, writes a thought and pushes
it, and gradients flow back through the pushes. The baseline (`use_thoughts=False`) and the
autoregressive model score every turn on its own. Mixed precision (bf16 autocast on CUDA),
gradient checkpointing, gradient accumulation, data parallelism under `torchrun` (each rank
draws its own batches; gradients are averaged with an all-reduce before each optimiser step,
which is what DDP does, done by hand because one step runs the model several times per turn
sequence), a CSV log, and
checkpoints (`checkpoint.py`) that resume the run exactly (model, optimiser, step and
random-generator state). A `stop` callable (the command line's SIGINT/SIGTERM request) ends the
run at the end of a step, with a checkpoint.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn import functional
from tqdm import tqdm

from thought_diffusion.checkpoint import (
    NEWEST,
    PREVIOUS,
    Checkpoint,
    latest_intact,
    restore_optimizer,
    same_model,
    save_checkpoint,
)
from thought_diffusion.config import ModelConfig, TrainConfig
from thought_diffusion.data import TokenData
from thought_diffusion.diffusion import autoregressive_loss, diffusion_terms
from thought_diffusion.memory import FactRecall, recall_rate, repeat_accuracy
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import tokenizer_from_json
from tsu_core.distributed import average_gradients
from tsu_core.files import remove_leftovers

logger = logging.getLogger(__name__)


def sequence_loss(
    model: ThoughtDiffusionLM,
    batch: torch.Tensor,
    train: TrainConfig,
    generator: torch.Generator,
    maximum_t: float = 1.0,
    answer: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss per token over a (B, T, L) batch and the per-turn bound (T,) in nats/token.

    Diffusion: the negative-ELBO estimate; autoregressive: the negative log-likelihood.
    `answer` (B, L), optional, marks the answer of a fact-recall question in the last turn:
    it is always masked there and its cross-entropy, times `train.answer_weight`, joins the
    loss (the per-turn bound leaves it out). `start` (B,), optional: each row's conversation
    starts there (`memory.Episodes.start`); the thoughts of earlier turns are not pushed
    (those turns are still scored, each with the stack of its own conversation).
    Optional auxiliary losses (thought model only): score each written turn's own tokens from
    the pass its thought is pooled from (cross-entropy), predict the next thought from the
    newest held one (MSE) and reconstruct a turn from its thought alone (the fully masked
    turn's ELBO at t = 1, i.e. cross-entropy of every position), each with its own weight.

    Where no turn's thought depends on an earlier one (no thoughts, or thoughts written
    without memory) and no auxiliary loss asks for a turn at a time, every turn is scored in
    one model call (`_all_turns_loss`); otherwise turn after turn (`_turn_by_turn_loss`).
    The two give the same loss for the same draws.
    """
    config = (model.module if hasattr(model, "module") else model).config
    sequential = config.use_thoughts and (
        config.write_with_memory or train.next_thought_weight > 0 or train.reconstruction_weight > 0
    )
    loss = _turn_by_turn_loss if sequential else _all_turns_loss
    return loss(model, batch, train, generator, maximum_t, answer, start)


def _answer_term(
    train: TrainConfig, answer: torch.Tensor | None, answer_nats: torch.Tensor
) -> torch.Tensor:
    """The answer's mean cross-entropy per answer token, times `train.answer_weight`."""
    if answer is None or not bool(answer.any()):
        return answer_nats.new_zeros(())
    return train.answer_weight * answer_nats.sum() / answer.sum()


def _written_term(train: TrainConfig, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The written turns' own tokens scored by their writing pass (mean nats per token), times
    `train.written_tokens_weight`."""
    if train.written_tokens_weight == 0:
        return logits.new_zeros((), dtype=torch.float32)
    nats = functional.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())
    return train.written_tokens_weight * nats


def _all_turns_loss(
    model: ThoughtDiffusionLM,
    batch: torch.Tensor,
    train: TrainConfig,
    generator: torch.Generator,
    maximum_t: float,
    answer: torch.Tensor | None,
    start: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sequence_loss` with the turns scored together: one call writes the thoughts of turns
    1..T-1 (each from its turn alone), pushes build the stack each turn sees, and one call
    denoises all T turns, each against its own stack. Rows are turn-major (turn, sequence)."""
    core = model.module if hasattr(model, "module") else model
    config = core.config
    batch_size, num_turns, length = batch.shape
    tokens = batch.transpose(0, 1).flatten(0, 1)  # (T*B, L)
    memory = None
    written_term = batch.new_zeros((), dtype=torch.float32)
    if config.use_thoughts:
        written = tokens[: (num_turns - 1) * batch_size]
        thought, importance, logits = core.write_pass(written)
        written_term = _written_term(train, logits, written)
        thought = thought.unflatten(0, (num_turns - 1, batch_size))
        importance = importance.unflatten(0, (num_turns - 1, batch_size))
        stacks = [ThoughtStack.empty(batch_size, config, batch.device)]
        for turn in range(num_turns - 1):
            where = None if start is None else start <= turn
            stacks.append(stacks[-1].push(thought[turn], importance[turn], where))
        memory = core.read(ThoughtStack.concatenate(stacks))
    if train.objective == "autoregressive":
        loss = autoregressive_loss(model, tokens)
        auxiliary = loss.new_zeros(())
    else:
        marked = None
        if answer is not None:  # the answer is in the last turn, the last B rows
            marked = torch.cat([torch.zeros_like(tokens[:-batch_size], dtype=torch.bool), answer])
        loss, answer_nats = diffusion_terms(
            model, tokens, train.schedule, generator, memory, maximum_t=maximum_t, answer=marked
        )
        auxiliary = _answer_term(train, answer, answer_nats)
    per_turn = loss.view(num_turns, batch_size).mean(1) / length
    return per_turn.mean() + auxiliary + written_term, per_turn.detach()


def _turn_by_turn_loss(
    model: ThoughtDiffusionLM,
    batch: torch.Tensor,
    train: TrainConfig,
    generator: torch.Generator,
    maximum_t: float,
    answer: torch.Tensor | None,
    start: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sequence_loss` a turn at a time: turn k is denoised, then written to the stack that
    turn k + 1 reads."""
    core = model.module if hasattr(model, "module") else model
    config = core.config
    batch_size, num_turns, length = batch.shape
    stack = ThoughtStack.empty(batch_size, config, batch.device) if config.use_thoughts else None
    per_turn = []
    auxiliary = batch.new_zeros((), dtype=torch.float32)
    for turn in range(num_turns):
        tokens = batch[:, turn]
        memory = core.read(stack)
        if train.objective == "autoregressive":
            loss = autoregressive_loss(model, tokens)
        else:
            last = answer if turn == num_turns - 1 else None
            loss, answer_nats = diffusion_terms(
                model, tokens, train.schedule, generator, memory, maximum_t=maximum_t, answer=last
            )
            auxiliary = auxiliary + _answer_term(train, last, answer_nats)
        per_turn.append(loss.mean() / length)
        if stack is not None and turn < num_turns - 1:
            thought, importance, logits = core.write_pass(tokens, memory)
            auxiliary = auxiliary + _written_term(train, logits, tokens) / (num_turns - 1)
            if train.next_thought_weight > 0 and turn > 0:
                newest = stack.thoughts.gather(
                    1,
                    stack.ages.argmin(1)[:, None, None, None, None].expand(
                        -1, 1, *stack.thoughts.shape[2:]
                    ),
                ).squeeze(1)
                auxiliary = auxiliary + train.next_thought_weight * functional.mse_loss(
                    core.next_thought(newest), thought.detach()
                )
            if train.reconstruction_weight > 0:
                alone = ThoughtStack.empty(batch_size, config, batch.device).push(
                    thought, importance
                )
                masked = torch.full_like(tokens, config.mask_id)
                logits, _, _ = model(masked, core.read(alone))
                auxiliary = auxiliary + train.reconstruction_weight * functional.cross_entropy(
                    logits.flatten(0, 1), tokens.flatten()
                )
            stack = stack.push(thought, importance, None if start is None else start <= turn)
    per_turn = torch.stack(per_turn)
    return per_turn.mean() + auxiliary, per_turn.detach()


def training_batch(
    data: TokenData,
    task: FactRecall | None,
    train: TrainConfig,
    generator: torch.Generator,
    split: str = "train",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A (B, T, L) batch, its answer positions (B, L) and where each row's conversation starts
    (B,) (both None without fact recall), laid out for `train.context`: with 'all' every
    sequence becomes one turn of T x L tokens, which starts at the first turn."""
    if task is None:
        batch = data.batch(
            split,
            train.batch_size,
            train.num_turns,
            train.turn_length,
            generator,
            train.recall_probability,
        )
        answer = start = None
    else:
        episodes = task.episodes(
            split,
            train.batch_size,
            generator,
            train.memory_facts,
            probability=train.memory_probability,
            repeat_probability=train.recall_probability,
            history=train.memory_history if train.context == "turn" else "full",
        )
        batch, answer, start = episodes.tokens, episodes.answer, episodes.start
    if train.context == "all":
        batch = batch.flatten(1)[:, None]
        if answer is not None:
            earlier = answer.new_zeros(answer.shape[0], batch.shape[2] - answer.shape[1])
            answer = torch.cat([earlier, answer], 1)
        start = None
    return batch, answer, start


def memory_task(train: TrainConfig, data: TokenData, tokenizer_json: str) -> FactRecall | None:
    """The fact-recall task of a run (None when `memory_probability` is 0)."""
    if train.memory_probability <= 0:
        return None
    tokenizer = tokenizer_from_json(tokenizer_json)
    return FactRecall(tokenizer, data, train.turn_length, train.num_turns)


def memory_reader(model: ThoughtDiffusionLM, train: TrainConfig) -> str:
    """How `model` sees earlier turns in fact recall (`memory.answer_logits`)."""
    if model.config.use_thoughts:
        return "thoughts"
    return "context" if train.context == "all" else "turn"


def training_memory(model_config: ModelConfig, train: TrainConfig, half_precision: bool) -> int:
    r"""Bytes a training step holds at its peak, estimated from the shapes alone.

    $$ 16 P + a N_\text{tok} D (32 w + 2 h (L + M)) + a R M (k w D + 8 C) + 12 N_\text{tok} V $$

    P parameters in fp32 with their gradients and AdamW's two moments (16 bytes each); for
    each of the `depth` (D) blocks, the activations the backward pass keeps per token: about
    32 widths w (three per RMSNorm, q/k/v and their rotations, the attention output, the
    cross-attention's, the SwiGLU's four hidden tensors of 8w/3) and the attention weights of
    h heads over the turn's L tokens and
    the M memory tokens of the stack; each of the R turns' stacks read into keys and values for
    every block (k = 2 widths per memory token for the cross reader; k = 4 for the attention
    reader, which also keeps the normed tokens and the rotated keys; and about 8 channels C
    for the reader itself); the logits
    over V ids with their softmax and gradient.
    N_tok counts the tokens of both passes of a step (the thoughts' write and the denoising);
    a = 2 bytes under bf16/fp16 autocast (`half_precision`), else 4. With gradient
    checkpointing a block keeps only its input (one width per token) and recomputes the rest.

    Arguments:
        model_config: the model (the autoregressive objective drops its thought path).
        train: the batch size, turns and turn length of a step.
        half_precision: activations in 16 bits (bf16/fp16 autocast on CUDA).

    Returns:
        The estimate in bytes; `tests/test_train.py` holds it against a measured peak.
    """
    if train.objective == "autoregressive":
        model_config = ModelConfig.from_dict(
            {**model_config.to_dict(), "causal": True, "use_thoughts": False}
        )
    with torch.device("meta"):
        parameters = ThoughtDiffusionLM(model_config).num_parameters()
    turns, length = train.num_turns, train.turn_length
    if train.context == "all":
        turns, length = 1, train.num_turns * train.turn_length
    tokens = train.batch_size * turns * length
    memory_tokens = 0
    if model_config.use_thoughts:
        tokens += train.batch_size * (turns - 1) * length  # the write pass
        memory_tokens = model_config.stack_size * model_config.thought_tokens
    width, heads = model_config.width, model_config.num_heads
    per_token = 32 * width + 2 * heads * (length + memory_tokens)
    if model_config.gradient_checkpointing:
        per_token = width
    activation = 2 if half_precision else 4
    activations = activation * tokens * model_config.depth * per_token
    if model_config.use_thoughts:  # each turn's stack, read into keys and values per block
        rows = train.batch_size * turns
        channels = model_config.thought_channels
        per_block = 4 if model_config.thought_reader == "attention" else 2
        activations += (
            activation
            * rows
            * memory_tokens
            * (per_block * width * model_config.depth + 8 * channels)
        )
    logits = 12 * tokens * model_config.vocab_size
    return 16 * parameters + activations + logits


def learning_rate(step: int, train: TrainConfig) -> float:
    """Linear warm-up (never longer than the run), then cosine decay to 10% over `train.steps`."""
    warmup = min(train.warmup_steps, train.steps)
    if step < warmup:
        return train.learning_rate * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, train.steps - warmup))
    return train.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def progressive_maximum(step: int, train: TrainConfig) -> float:
    """The largest mask time t allowed at `step` (progressive mask-ratio schedule)."""
    if train.progressive_steps <= 0:
        return 1.0
    fraction = min(1.0, step / train.progressive_steps)
    return train.progressive_start + (1 - train.progressive_start) * fraction


def make_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": train.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=train.learning_rate,
        betas=(0.9, 0.95),
        fused=False,
    )


@torch.no_grad()
def evaluate(
    model: ThoughtDiffusionLM,
    data: TokenData,
    train: TrainConfig,
    num_batches: int,
    seed: int = 1234,
    recall_only: bool = False,
) -> dict[str, float]:
    """Validation bound in nats/token (mean and per turn) with a fixed generator.

    Diffusion models give the MDLM negative-ELBO bound (Monte Carlo over t and masks);
    the autoregressive model its exact negative log-likelihood. Perplexity = exp(nats).
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    totals = []
    for _ in range(num_batches):
        if recall_only:
            batch = data.recall_episodes(
                train.batch_size, train.num_turns, train.turn_length, generator
            )
        else:
            batch = data.batch(
                "validation", train.batch_size, train.num_turns, train.turn_length, generator
            )
            if train.context == "all":
                batch = batch.flatten(1)[:, None]
        _, per_turn = sequence_loss(model, batch.to(device), train, generator)
        totals.append(per_turn.cpu())
    model.train(was_training)
    per_turn = torch.stack(totals).mean(0)
    return {
        "nats_per_token": float(per_turn.mean()),
        "perplexity": float(per_turn.mean().exp()),
        "per_turn_nats": [float(v) for v in per_turn],
    }


def _autocast(precision: str, device: torch.device):
    if device.type == "cuda" and precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def train_model(
    model_config: ModelConfig,
    train: TrainConfig,
    data: TokenData,
    output: str | Path,
    tokenizer_json: str,
    resume: bool = True,
    device: str | None = None,
    progress: bool = True,
    stop: Callable[[], bool] | None = None,
    checkpoint: Checkpoint | None = None,
    run: dict[str, str] | None = None,
) -> tuple[ThoughtDiffusionLM, list[dict]]:
    """Train (or resume from the newest intact checkpoint in `output`) and return the model and
    log rows.

    Arguments:
        resume: continue from `output`'s checkpoint when there is one (`latest_intact`).
        stop: asked after every step; True saves a checkpoint and returns (the command line
            passes its SIGINT/SIGTERM request).
        checkpoint: the checkpoint of `output` to resume from, when the caller has read it
            already (the command line, to check its flags against it).
        run: how the run was started, recorded in every checkpoint.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if device is None:
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if train.objective == "autoregressive":
        model_config = ModelConfig.from_dict(
            {**model_config.to_dict(), "causal": True, "use_thoughts": False}
        )
    torch.manual_seed(train.seed)
    model = ThoughtDiffusionLM(model_config).to(device)
    optimizer = make_optimizer(model, train)
    generator = torch.Generator().manual_seed(train.seed + rank)
    checkpoint_path = output / NEWEST
    if rank == 0:
        remove_leftovers(checkpoint_path)
    if checkpoint is None and resume:
        checkpoint = latest_intact(output)
    step = 0
    if checkpoint is not None:
        _restore(checkpoint, model, optimizer, generator, rank)
        step = checkpoint.step
        logger.info("resumed from %s at step %d", checkpoint.path, step)
    # Resumed from the previous save: the newest is damaged and must not become the previous.
    keep_previous = checkpoint is None or checkpoint.path.name != PREVIOUS
    world_size = torch.distributed.get_world_size() if distributed else 1
    task = memory_task(train, data, tokenizer_json)
    log_path = output / "log.csv"
    fields = ["step", "seconds", "learning_rate", "train_nats", "val_nats", "val_perplexity"]
    fields += ["recall"] if task is not None else []
    if rank == 0 and not log_path.exists():
        with log_path.open("w", newline="") as handle:
            csv.writer(handle).writerow(fields)
    rows: list[dict] = []
    started = time.perf_counter()
    bar = tqdm(total=train.steps, initial=step, disable=not progress or rank != 0, desc="train")
    model.train()
    while step < train.steps:
        rate = learning_rate(step, train)
        for group in optimizer.param_groups:
            group["lr"] = rate
        total = 0.0
        for _ in range(train.accumulation_steps):
            batch, answer, start = training_batch(data, task, train, generator)
            batch = batch.to(device)
            answer = None if answer is None else answer.to(device)
            start = None if start is None else start.to(device)
            with _autocast(train.precision, device):
                loss, _ = sequence_loss(
                    model, batch, train, generator, progressive_maximum(step, train), answer, start
                )
            (loss / train.accumulation_steps).backward()
            total += float(loss.detach()) / train.accumulation_steps
        if distributed:
            average_gradients(model.parameters(), zero_missing=True)
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.gradient_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{total:.3f}")
        out_of_time = (
            train.max_minutes > 0 and time.perf_counter() - started > 60 * train.max_minutes
        )
        stopped = stop is not None and stop()
        if distributed:  # every rank stops together when any runs out of time or is stopped
            flags = torch.tensor([float(out_of_time), float(stopped)], device=device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            out_of_time, stopped = bool(flags[0].item()), bool(flags[1].item())
        last = step == train.steps or out_of_time
        row = {
            "step": step,
            "seconds": round(time.perf_counter() - started, 2),
            "learning_rate": rate,
            "train_nats": total,
        }
        if rank == 0 and (step % train.eval_interval == 0 or last):
            with _autocast(train.precision, device):
                result = evaluate(model, data, train, train.eval_batches)
            row |= {"val_nats": result["nats_per_token"], "val_perplexity": result["perplexity"]}
            logger.info("step %d: validation %.4f nats/token", step, result["nats_per_token"])
            if task is not None:
                with _autocast(train.precision, device):
                    row["recall"] = recall_rate(
                        model, task, memory_reader(model, train), 1, train.num_turns - 1, 256
                    )
                logger.info("step %d: fact recall %.3f", step, row["recall"])
        if step % train.checkpoint_interval == 0 or last or stopped:
            states = None
            if distributed:
                states = [None] * world_size
                torch.distributed.all_gather_object(states, generator.get_state())
            if rank == 0:
                save_checkpoint(
                    checkpoint_path,
                    model,
                    optimizer,
                    step,
                    generator,
                    train,
                    tokenizer_json,
                    states,
                    run,
                    keep_previous,
                )
            keep_previous = True
        if rank == 0:
            with log_path.open("a", newline="") as handle:
                csv.DictWriter(handle, fields, extrasaction="ignore").writerow(row)
        rows.append(row)
        if out_of_time:
            logger.info("time budget of %.1f minutes reached at step %d", train.max_minutes, step)
            break
        if stopped:
            break
    bar.close()
    if distributed:
        torch.distributed.destroy_process_group()
    return model, rows


def _restore(
    checkpoint: Checkpoint,
    model: ThoughtDiffusionLM,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rank: int,
) -> None:
    """Load a checkpoint's model, optimiser and this rank's generator state."""
    if not same_model(checkpoint.model_config, model.config):
        raise ValueError(
            f"resume: {checkpoint.path} holds a model with config {checkpoint.model_config}, "
            f"not {model.config}; use another output folder or the same settings"
        )
    model.load_state_dict(checkpoint.model_state())
    restore_optimizer(optimizer, checkpoint)
    tensors = checkpoint.tensors
    generator.set_state(tensors.get(f"generator.{rank}", tensors["generator"]))


def recall_accuracy(
    model: ThoughtDiffusionLM,
    data: TokenData,
    train: TrainConfig,
    num_batches: int,
    seed: int = 4321,
) -> float:
    """Token accuracy on the verbatim-repeat task (`memory.repeat_accuracy`) over
    `num_batches` batches of `train.batch_size` episodes of `train.num_turns` turns, the earlier
    turns seen as the model was trained to see them (thought stack, context, or not at all)."""
    return repeat_accuracy(
        model,
        data,
        memory_reader(model, train),
        train.num_turns,
        train.turn_length,
        num_batches * train.batch_size,
        train.batch_size,
        seed,
    )
