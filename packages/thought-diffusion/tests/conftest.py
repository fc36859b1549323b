"""Shared fixtures: tiny models built in milliseconds."""

from __future__ import annotations

import pytest
import torch

from thought_diffusion.config import ModelConfig


def _tiny_config(**overrides) -> ModelConfig:
    values = dict(
        vocab_size=12,
        max_length=24,
        width=32,
        depth=2,
        num_heads=2,
        thought_height=2,
        thought_width=3,
        thought_channels=4,
        stack_size=3,
    )
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config():
    """A function building a tiny ModelConfig with fields overridden."""
    return _tiny_config
