"""Shared fixtures: a seeded context on whichever backend TSU_BACKEND names."""

import pytest
import torch

from tsu_torch import ThermalContext


@pytest.fixture
def context() -> ThermalContext:
    torch.manual_seed(0)
    return ThermalContext(seed=1234)
