"""Generation: deterministic for a fixed key, complete, draws through the backend primitive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tsu_core
from thought_diffusion.generate import GenerationConfig, draw, generate, remember
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
