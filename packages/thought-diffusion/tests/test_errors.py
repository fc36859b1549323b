"""Bad input gives clear errors."""

from __future__ import annotations

import pytest
import torch

from thought_diffusion.config import ModelConfig, TrainConfig, preset
from thought_diffusion.data import TokenData, read_text
from thought_diffusion.generate import GenerationConfig, generate
from thought_diffusion.model import ThoughtDiffusionLM


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return ThoughtDiffusionLM(tiny_config()).eval()


def test_empty_prompt(model):
    with pytest.raises(ValueError, match="prompt: it is empty"):
        generate(model, [], GenerationConfig(length=4), 0)


def test_over_long_prompt(model):
    with pytest.raises(ValueError, match="exceed the model's max_length 24"):
        generate(model, [1] * 20, GenerationConfig(length=8), 0)
    with pytest.raises(ValueError, match="exceed the model's max_length"):
        model(torch.ones(1, 30, dtype=torch.long))


def test_wrong_vocabulary(model):
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 12\)"):
        generate(model, [1, 2, 300], GenerationConfig(length=4), 0)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 12\)"):
        model(torch.tensor([[1, -1, 2]]))
    with pytest.raises(ValueError, match="mask token"):
        generate(model, [1, model.config.mask_id], GenerationConfig(length=4), 0)


def test_bad_configs(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        GenerationConfig(mode="greedy")
    with pytest.raises(ValueError, match="cache=True needs block_length"):
        GenerationConfig(cache=True)
    with pytest.raises(ValueError, match="must split into"):
        ModelConfig(width=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="gan")
    with pytest.raises(FileNotFoundError, match="pass --data"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="fewer than one sequence"):
        TokenData(list(range(50))).batch("validation", 2, 3, 8, torch.Generator())
