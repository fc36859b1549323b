"""Shared fixtures: the backend under test is whatever TSU_BACKEND names (reference by default)."""

import os

import pytest
import torch

import tsu_core
from bitflip_dtm.config import preset

torch.set_num_threads(1)

# One small training configuration shared by the tests that train, so that a JIT backend
# compiles its programs once per session: 3x3 images, 2 steps, 2 latents (20 nodes).
TINY_TRAINING = preset(
    "tiny",
    num_steps=2,
    latents_per_patch=2,
    fantasy_chains=8,
    batch_size=8,
    learning_rate=0.15,
    steps_per_iteration=2,
)


@pytest.fixture(scope="session")
def backend():
    return tsu_core.get_backend(os.environ.get("TSU_BACKEND") or "reference")


@pytest.fixture(scope="session")
def tiny_training():
    return TINY_TRAINING
