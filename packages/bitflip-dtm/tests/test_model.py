"""The reverse-step conditional sampled through the backend against exact enumeration."""

import numpy as np
import pytest
import torch

import tsu_core
from bitflip_dtm.config import preset
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import compile_program, reverse_step
from tsu_core.exact import all_states
from tsu_core.testing.stats import mean_tolerance, total_variation, total_variation_bound

NUM_DRAWS = 20000
SWEEPS = 60  # for MCMC backends; the reference backend draws exactly


def _random_model(scale: float = 0.6, seed: int = 0) -> DTM:
    model = DTM(preset("tiny"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for step in model.steps:
            for parameter in step.parameters():
                parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
    return model


def test_torch_energy_and_fields_match_tsu_core():
    model = _random_model()
    generator = torch.Generator().manual_seed(0)
    states = (2 * torch.randint(0, 2, (1000, 22), generator=generator) - 1).to(torch.int8)
    for t in (1, 3):
        parameters = model.parameters_for(t)
        expected = tsu_core.energy(model.graph.topology, parameters, states.numpy())
        assert np.allclose(model.energy(t, states).detach().double().numpy(), expected, atol=1e-4)
        fields = tsu_core.local_fields(model.graph.topology, parameters, states.numpy())
        assert np.allclose(model.local_fields(t, states).detach().numpy(), fields, atol=1e-4)


def _exact_visible_distribution(model: DTM, t: int, spins_t: torch.Tensor) -> np.ndarray:
    """p(x_{t-1} | x_t) over the 512 visible states, summing exp(-E) over the 16 latent states
    (row r of `all_states(9)` is visible state r)."""
    visible = torch.from_numpy(1 - 2 * all_states(9, 2).astype(np.int8))
    latent = torch.from_numpy(1 - 2 * all_states(4, 2).astype(np.int8))
    states = torch.cat(
        [visible.repeat_interleave(16, 0), latent.repeat(512, 1), spins_t.expand(512 * 16, 9)], 1
    )
    with torch.no_grad():
        energies = model.energy(t, states).double().reshape(512, 16)
    weights = torch.logsumexp(-energies, dim=1)
    return torch.softmax(weights, 0).numpy()


def _index(visible: np.ndarray) -> np.ndarray:
    bits = (visible < 0).astype(np.int64)  # all_states puts +1 first (digit 0)
    return bits @ (1 << np.arange(8, -1, -1))


@pytest.mark.parametrize("t", [1, 3])
def test_reverse_step_matches_exact_enumeration(backend, t):
    model = _random_model(seed=t)
    program = compile_program(model, backend)
    spins_t = torch.tensor([1, -1, 1, 1, -1, -1, 1, -1, 1], dtype=torch.int8)
    exact = _exact_visible_distribution(model, t, spins_t)
    state = reverse_step(
        model, program, t, spins_t.expand(NUM_DRAWS, 9).clone(), tsu_core.Key(7), sweeps=SWEEPS
    )
    assert torch.equal(state[:, 13:], spins_t.expand(NUM_DRAWS, 9))  # x_t stayed clamped
    visible = state[:, :9].numpy()
    empirical = np.bincount(_index(visible), minlength=512) / NUM_DRAWS
    bound = total_variation_bound(exact, NUM_DRAWS)
    assert total_variation(empirical, exact) < bound
    # Per-bit means, Bernstein-bounded.
    states = 1 - 2 * all_states(9, 2)
    mean = exact @ states
    tolerance = mean_tolerance(1 - mean**2, NUM_DRAWS, num_tests=9)
    assert np.all(np.abs(visible.mean(0) - mean) < tolerance)
    # The test can fail: the model with the x_t coupling's sign reversed is far outside the bound.
    reversed_model = _random_model(seed=t)
    wrong = _exact_visible_distribution(reversed_model, t, -spins_t)
    assert total_variation(wrong, exact) > 2 * bound
