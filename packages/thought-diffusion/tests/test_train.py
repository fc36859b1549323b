"""Training: exact resume from a checkpoint, the autoregressive baseline, evaluation."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch

from thought_diffusion import diffusion
from thought_diffusion import train as train_module
from thought_diffusion.checkpoint import load_checkpoint
from thought_diffusion.config import TrainConfig
from thought_diffusion.data import TokenData, generated_text
from thought_diffusion.diffusion import autoregressive_loss
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.thoughts import ThoughtStack
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import evaluate, recall_accuracy, train_model
from tsu_core.testing.memory import ON_LINUX, check_estimate, measure_peak


def _setup(tiny_config, **overrides):
    tokenizer = ByteTokenizer()
    data = TokenData(tokenizer.encode(generated_text(300)))
    config = tiny_config(vocab_size=tokenizer.vocab_size, max_length=16)
    values = dict(
        batch_size=4,
        turn_length=12,
        num_turns=3,
        steps=4,
        warmup_steps=2,
        eval_interval=100,
        eval_batches=1,
        checkpoint_interval=2,
        precision="fp32",
        next_thought_weight=0.1,
        reconstruction_weight=0.1,
        progressive_steps=3,
    )
    values.update(overrides)
    return config, TrainConfig(**values), data, tokenizer.to_json()


def test_resume_is_exact(tiny_config, tmp_path):
    config, train, data, tokenizer = _setup(tiny_config)
    straight, _ = train_model(config, train, data, tmp_path / "straight", tokenizer, progress=False)
    half = TrainConfig(**{**train.__dict__, "steps": 2})
    # Stop after 2 steps (the checkpoint holds step 2), then resume to step 4 in a new call.
    train_model(config, half, data, tmp_path / "resumed", tokenizer, progress=False)
    resumed, _ = train_model(config, train, data, tmp_path / "resumed", tokenizer, progress=False)
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    loaded, extra = load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors")
    assert extra["step"] == 4
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not list((tmp_path / "resumed").glob("*.tmp"))
    with (tmp_path / "resumed" / "log.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [1, 2, 3, 4]


def test_autoregressive_baseline_is_causal_and_trains(tiny_config, tmp_path):
    config, train, data, tokenizer = _setup(
        tiny_config,
        objective="autoregressive",
        steps=2,
        next_thought_weight=0.0,
        reconstruction_weight=0.0,
    )
    model, rows = train_model(config, train, data, tmp_path / "ar", tokenizer, progress=False)
    assert model.config.causal and not model.config.use_thoughts
    tokens = torch.randint(0, 256, (1, 10))
    changed = tokens.clone()
    changed[0, 7] = (changed[0, 7] + 1) % 256
    with torch.no_grad():
        a, _, _ = model(tokens)
        b, _, _ = model(changed)
    assert torch.allclose(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    # The loss is the chain rule: the sum of next-token log-probabilities with a BOS.
    with torch.no_grad():
        loss = autoregressive_loss(model, tokens)
        inputs = torch.cat([torch.full((1, 1), model.config.mask_id), tokens[:, :-1]], 1)
        logits, _, _ = model(inputs)
        expected = -torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).sum()
    assert torch.allclose(loss, expected[None], rtol=1e-5)


def test_evaluate_is_repeatable_and_the_baseline_runs(tiny_config):
    config, train, data, _ = _setup(tiny_config)
    for use_thoughts in (True, False):
        torch.manual_seed(0)
        model = ThoughtDiffusionLM(
            tiny_config(vocab_size=257, max_length=16, use_thoughts=use_thoughts)
        )
        first = evaluate(model, data, train, 1)
        assert first == evaluate(model, data, train, 1)
        assert len(first["per_turn_nats"]) == 3
        accuracy = recall_accuracy(model, data, train, 1)
        assert 0.0 <= accuracy <= 1.0


@pytest.mark.parametrize("written_tokens_weight", [0.0, 0.5])
@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
@pytest.mark.parametrize("use_thoughts", [True, False])
def test_turns_together_match_turn_by_turn(
    tiny_config, monkeypatch, objective, use_thoughts, written_tokens_weight
):
    """The one-call path (thoughts written from their turn alone) gives the loss, per-turn
    bound and gradients of the turn-by-turn path, rows whose conversations start at different
    turns included. t = 1 masks every token, so both paths see the same inputs whatever their
    random draws."""
    monkeypatch.setattr(diffusion, "sample_times", lambda size, *_, **__: torch.ones(size))
    torch.manual_seed(0)
    config = tiny_config(vocab_size=20, max_length=8, use_thoughts=use_thoughts)
    model = ThoughtDiffusionLM(replace(config, write_with_memory=False))
    train = TrainConfig(
        objective=objective,
        batch_size=3,
        turn_length=8,
        num_turns=4,
        written_tokens_weight=written_tokens_weight,
    )
    batch = torch.randint(0, 19, (3, 4, 8), generator=torch.Generator().manual_seed(1))
    answer = torch.zeros(3, 8, dtype=torch.bool)
    answer[:, 2:5] = True
    results = []
    for loss_of in (train_module._all_turns_loss, train_module._turn_by_turn_loss):
        model.zero_grad()
        start = torch.tensor([0, 1, 3])
        loss, per_turn = loss_of(model, batch, train, torch.Generator(), 1.0, answer, start)
        loss.backward()
        gradients = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((loss.detach(), per_turn, gradients))
    (loss, per_turn, gradients), (loss_2, per_turn_2, gradients_2) = results
    assert torch.allclose(loss, loss_2, rtol=1e-5)
    assert torch.allclose(per_turn, per_turn_2, rtol=1e-5)
    assert len(gradients) == len(gradients_2)
    for gradient, gradient_2 in zip(gradients, gradients_2, strict=True):
        assert torch.allclose(gradient, gradient_2, rtol=1e-4, atol=1e-6)
    if use_thoughts and objective == "diffusion":  # the writer is trained through the stack
        assert model.writer.importance.weight.grad.abs().sum() > 0


def test_written_tokens_term_is_the_writing_pass_cross_entropy(tiny_config, monkeypatch):
    """The loss with `written_tokens_weight` w is the loss without it plus w times the
    cross-entropy of turns 1..T-1's own tokens under the model's logits for those clean turns,
    computed here by a separate forward call."""
    monkeypatch.setattr(diffusion, "sample_times", lambda size, *_, **__: torch.ones(size))
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(tiny_config(vocab_size=20, max_length=8))
    batch = torch.randint(0, 19, (3, 4, 8), generator=torch.Generator().manual_seed(1))
    losses = []
    for weight in (0.0, 0.7):
        train = TrainConfig(batch_size=3, turn_length=8, num_turns=4, written_tokens_weight=weight)
        loss, _ = train_module.sequence_loss(model, batch, train, torch.Generator())
        losses.append(loss.detach())
    written = batch[:, :3].flatten(0, 1)
    logits, _, _ = model(written)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), written.flatten())
    assert torch.allclose(losses[1] - losses[0], 0.7 * expected, rtol=1e-4)


@pytest.mark.parametrize("write_with_memory", [False, True])
def test_turns_before_a_conversation_starts_do_not_reach_its_last_turn(
    tiny_config, write_with_memory
):
    """With every row's conversation starting at turn 2, turns 0 and 1 are not pushed: the
    last turn's bound is the same whatever they hold. From turn 0 they reach it."""
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(
        tiny_config(vocab_size=20, max_length=8, write_with_memory=write_with_memory)
    )
    train = TrainConfig(batch_size=3, turn_length=8, num_turns=4)
    batch = torch.randint(0, 19, (3, 4, 8), generator=torch.Generator().manual_seed(1))
    changed = batch.clone()
    changed[:, :2] = torch.randint(0, 19, (3, 2, 8), generator=torch.Generator().manual_seed(2))
    for start, same in ((2, True), (0, False)):
        starts = torch.full((3,), start)
        last = [
            train_module.sequence_loss(
                model, tokens, train, torch.Generator().manual_seed(5), start=starts
            )[1][-1]
            for tokens in (batch, changed)
        ]
        assert torch.equal(last[0], last[1]) == same


def test_a_thought_written_alone_ignores_the_stack(tiny_config):
    torch.manual_seed(0)
    turn = torch.randint(0, 11, (2, 8))
    for write_with_memory in (True, False):
        model = ThoughtDiffusionLM(tiny_config(write_with_memory=write_with_memory)).eval()
        empty = ThoughtStack.empty(2, model.config)
        held = model.remember(torch.randint(0, 11, (2, 8)), empty)
        alone = model.thought_of(turn, model.read(empty))[0]
        after = model.thought_of(turn, model.read(held))[0]
        assert torch.equal(alone, after) == (not write_with_memory)


@pytest.mark.skipif(not ON_LINUX, reason="reads /proc; ru_maxrss in KiB")
def test_the_memory_estimate_is_within_a_factor_of_a_measured_step(tmp_path):
    """A real step's peak is at least the estimate and at most three times it plus 256 MiB: the
    process's own cost of a first step (thread pools, kernels' workspaces, the allocator's
    slack) is not part of the estimate, and varies with the machine's load (peaks of 450 MiB to
    816 MiB measured against an estimate of 336 MiB on a 2-core machine)."""
    setup = """
import torch
from thought_diffusion.config import TrainConfig, preset
from thought_diffusion.data import TokenData, generated_text
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import train_model, training_memory

config = preset("tiny")
train = TrainConfig(batch_size=48, num_turns=2, turn_length=64, steps=1, warmup_steps=1,
                    eval_interval=1000, eval_batches=1, checkpoint_interval=1000, precision="fp32")
tokenizer = ByteTokenizer()
data = TokenData(tokenizer.encode(generated_text(2000)))
torch.set_num_threads(1)
"""
    work = f"""train_model(config, train, data, {str(tmp_path)!r}, tokenizer.to_json(), device="cpu",
            progress=False)"""
    estimate = "training_memory(config, train, half_precision=False)"
    # The reference backend: no backend loading JAX midway.
    measured = measure_peak(setup, work, estimate, {"TSU_BACKEND": "reference"})
    check_estimate(*measured, factor=3, slack=256 * 2**20, least=256 * 2**20)


def test_the_memory_estimate_grows_with_the_batch_and_shrinks_with_checkpointing(tiny_config):
    config = tiny_config()
    train = TrainConfig(batch_size=8)
    base = train_module.training_memory(config, train, half_precision=False)
    assert train_module.training_memory(config, TrainConfig(batch_size=16), False) > 1.8 * base
    assert train_module.training_memory(config, train, half_precision=True) < base
    checkpointed = replace(config, gradient_checkpointing=True)
    assert train_module.training_memory(checkpointed, train, False) < base / 2
