"""Generation: deterministic for a fixed key, complete, draws through the backend primitive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tsu_core
from thought_diffusion.compiled import compile_for_generation
from thought_diffusion.generate import GenerationConfig, choose_commits, draw, generate, remember
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.thoughts import ThoughtStack
from tsu_core.testing.stats import empirical_distribution, total_variation, total_variation_bound

MODES = {
    "one_per_step": GenerationConfig(length=8, mode="low_confidence"),
    "low_confidence_4_steps": GenerationConfig(length=8, mode="low_confidence", steps=4, top_k=3),
    "threshold": GenerationConfig(length=8, mode="threshold", threshold=0.2),
    "blocks_cached": GenerationConfig(length=8, mode="threshold", block_length=3, cache=True),
    "blocks": GenerationConfig(length=8, mode="low_confidence", block_length=4, steps=4),
}


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    model = ThoughtDiffusionLM(tiny_config()).eval()
    with torch.no_grad():
        model.head.weight.mul_(20)
    return model


@pytest.mark.parametrize("name", sorted(MODES))
def test_fixed_key_is_deterministic_and_complete(model, name):
    config = MODES[name]
    prompt = [1, 2, 3]
    stack = ThoughtStack.empty(1, model.config)
    first, counts = generate(model, prompt, config, tsu_core.Key(7), stack)
    second, _ = generate(model, prompt, config, tsu_core.Key(7), stack)
    assert torch.equal(first, second)
    assert first.shape == (1, 8)
    assert bool((first != model.config.mask_id).all())
    assert int(first.max()) < model.config.mask_id
    if name == "one_per_step":
        assert counts["model_calls"] == 8
    if name == "low_confidence_4_steps":
        assert counts["model_calls"] == 4
    others = {tuple(generate(model, prompt, config, key, stack)[0][0].tolist()) for key in range(8)}
    assert len(others) > 1  # the key matters


def test_prefix_cache_matches_the_full_forward(model):
    tokens = torch.randint(0, model.config.mask_id, (2, 12))
    start = 7
    memory = model.read(ThoughtStack.empty(2, model.config))
    with torch.no_grad():
        full, _, cache = model(tokens, memory, cache_length=start)
        block, _, _ = model(tokens[:, start:], memory, prefix=cache)
    assert torch.allclose(full[:, start:], block, atol=1e-5)


def test_draw_follows_the_tempered_softmax():
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5, -torch.inf]]).expand(20_000, -1)
    temperature = 0.7
    tokens, confidence = draw(logits, tsu_core.Key(3), temperature, top_k=None)
    expected = torch.softmax(logits[0] / temperature, -1).double().numpy()
    observed = empirical_distribution(tokens.numpy(), 5)
    assert observed[4] == 0.0  # -inf (the mask token) is never drawn
    assert total_variation(observed, expected) < total_variation_bound(expected, 20_000)
    assert torch.allclose(confidence, torch.softmax(logits, -1).gather(1, tokens[:, None])[:, 0])


def test_draw_top_k_and_greedy():
    logits = torch.randn(500, 9, generator=torch.Generator().manual_seed(0))
    tokens, _ = draw(logits, tsu_core.Key(1), 1.0, top_k=2)
    top_two = logits.topk(2, -1).indices
    assert bool((tokens[:, None] == top_two).any(1).all())
    greedy, _ = draw(logits, tsu_core.Key(1), 0.0, top_k=None)
    assert torch.equal(greedy, logits.argmax(-1))
    assert np.unique(tokens.numpy()).size > 1


def test_remember_pushes_a_thought(model):
    stack = ThoughtStack.empty(1, model.config)
    turn = torch.randint(0, model.config.mask_id, (1, 10))
    stack = remember(model, turn, stack)
    assert int(stack.count()[0]) == 1


def test_draw_batches_positions_with_their_own_distributions():
    # One backend call for (draws, rows, positions, V): each position follows its own softmax.
    rows = torch.tensor(
        [[[2.0, 0.0, -1.0, -torch.inf], [0.0, 0.0, 0.0, -torch.inf]], [[-1.0, 1.0, 0.5, 0.0]] * 2]
    )
    num_draws = 20_000
    logits = rows.expand(num_draws, -1, -1, -1)
    tokens, confidence = draw(logits, tsu_core.Key(5), 1.0, top_k=None)
    assert tokens.shape == confidence.shape == (num_draws, 2, 2)
    probabilities = torch.softmax(rows, -1).double()
    bound = max(
        total_variation_bound(p.numpy(), num_draws, alpha=1e-6 / 4)
        for p in probabilities.view(-1, 4)
    )
    for row in range(2):
        for position in range(2):
            observed = empirical_distribution(tokens[:, row, position].numpy(), 4)
            assert total_variation(observed, probabilities[row, position].numpy()) < bound
    expected = probabilities.float()[None].expand_as(logits).gather(-1, tokens[..., None])
    assert torch.allclose(confidence, expected[..., 0], atol=1e-6)


def _commits_one_row_at_a_time(scores, still, config, count):
    # The loop `generate` ran before it chose every row's commits at once.
    scores = torch.where(still, scores, torch.full_like(scores, -1.0))
    commit = torch.zeros_like(still)
    for row in range(scores.shape[0]):
        if int(still[row].sum()) == 0:
            continue
        if config.mode == "threshold":
            count = max(1, int((scores[row] > config.threshold).sum()))
        commit[row, scores[row].topk(count).indices] = True
    return commit & still


@pytest.mark.parametrize("mode", ["low_confidence", "threshold"])
def test_choose_commits_matches_the_per_row_rule(mode):
    generator = torch.Generator().manual_seed(0)
    config = GenerationConfig(length=12, mode=mode, threshold=0.6)
    for trial in range(200):
        scores = torch.rand(4, 12, generator=generator)
        still = torch.rand(4, 12, generator=generator) < 0.7
        still[trial % 4] = trial % 3 != 0  # some rows finished, some fully masked
        remaining = int(still.sum(1).min())
        count = 1 + trial % max(1, remaining)
        commit = choose_commits(scores, still, config, count)
        assert torch.equal(commit, _commits_one_row_at_a_time(scores, still, config, count))
        if mode == "threshold":
            has_masked = still.any(1)
            assert bool((commit.sum(1)[has_masked] >= 1).all())
            assert bool((commit | ~(still & (scores > 0.6))).all())


def test_batched_threshold_generation_completes(model):
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    config = GenerationConfig(length=8, mode="threshold", threshold=0.5, block_length=3, cache=True)
    tokens, counts = generate(model, prompt, config, tsu_core.Key(2))
    assert tokens.shape == (2, 8)
    assert bool((tokens != model.config.mask_id).all())
    assert not tokens.is_inference()  # usable with autograd after generation
    assert 3 <= counts["model_calls"] <= 8


def test_projected_memory_matches_the_memory_and_the_cache_holds_with_it(model):
    generator = torch.Generator().manual_seed(1)
    stack = ThoughtStack.empty(2, model.config)
    c = model.config
    for _ in range(2):
        shape = (2, c.thought_height, c.thought_width, c.thought_channels)
        thought = torch.randn(shape, generator=generator)
        stack = stack.push(thought, torch.randn(2, generator=generator))
    tokens = torch.randint(0, c.mask_id, (2, 12), generator=generator)
    start = 5
    with torch.no_grad():
        memory = model.read(stack)
        projected = model.project(memory)
        full, _, _ = model(tokens, memory)
        reused, _, cache = model(tokens, projected, cache_length=start)
        block, _, _ = model(tokens[:, start:], projected, prefix=cache)
    assert torch.allclose(full, reused, atol=1e-5)
    assert torch.allclose(full[:, start:], block, atol=1e-5)


def test_compile_for_generation_rejects_unknown_modes(model):
    with pytest.raises(ValueError, match="mode"):
        compile_for_generation(model, "fastest")
    assert "forward" not in vars(model)
