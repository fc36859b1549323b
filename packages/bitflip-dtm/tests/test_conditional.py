"""Class-conditional sampling: a reverse step with the label bits clamped against the exact
conditional, computed by enumerating one colour of a small torus and summing out the other."""

import numpy as np
import pytest
import torch

import tsu_core
from bitflip_dtm.config import preset
from bitflip_dtm.data import label_spins
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import compile_program, reverse_step, sample
from tsu_core.exact import all_states
from tsu_core.testing.stats import total_variation, total_variation_bound

NUM_DRAWS = 20000
SWEEPS = 60
# A 6x6 torus of degree 4 holding a 2x2 image and one copy of the 10 label bits on one colour:
# with the labels and x_t clamped, 4 image bits and 4 latents are free on that colour and the
# 18 latents of the other colour are summed out in closed form.
CONFIG = preset(
    "tiny", graph="torus", grid_size=6, grid_degree=4, image_size=2, label_copies=1, num_steps=2,
    steps_per_iteration=2, dataset="digits",
)  # fmt: skip


def _program(model: DTM, backend: tsu_core.Backend) -> tsu_core.Program:
    """The model's program, or a skip where the backend takes fewer nodes (the exact backend)."""
    limit = backend.capabilities.max_nodes
    if limit is not None and model.graph.topology.num_nodes > limit:
        pytest.skip(f"{backend.name} samples at most {limit} nodes")
    return compile_program(model, backend)


def _model(seed: int = 0, scale: float = 0.7) -> DTM:
    model = DTM(CONFIG)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for step in model.steps:
            for parameter in step.parameters():
                parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
    return model


def _exact_image_distribution(model: DTM, t: int, spins_t: torch.Tensor, label: int) -> np.ndarray:
    """p(image bits of x_{t-1} | labels of x_{t-1} = label, x_t) over the 16 image states."""
    graph, image_bits = model.graph, CONFIG.num_image_bits
    first, second = graph.topology.blocks
    latent0 = np.setdiff1d(first, graph.visible)  # latents on the visible bits' colour
    latent1 = np.intersect1d(second, graph.latent)  # the other colour's: summed out
    free = np.concatenate([np.arange(image_bits), latent0])
    configurations = torch.from_numpy(1 - 2 * all_states(free.size, 2).astype(np.int8))
    states = torch.zeros(configurations.shape[0], graph.topology.num_nodes, dtype=torch.int8)
    states[:, free] = configurations
    states[:, image_bits : graph.num_bits] = label_spins(torch.tensor([label]), CONFIG)
    states[:, graph.noisy] = spins_t
    with torch.no_grad():
        fields = model.local_fields(t, states).double()[:, latent1]
        log_weights = -model.energy(t, states).double() + torch.log(2 * torch.cosh(fields)).sum(1)
    # all_states puts the image bits in the leading digits: 16 image states x 16 latent states.
    marginal = torch.logsumexp(log_weights.reshape(2**image_bits, -1), dim=1)
    return torch.softmax(marginal, 0).numpy()


def _index(image: np.ndarray) -> np.ndarray:
    bits = (image < 0).astype(np.int64)
    return bits @ (1 << np.arange(image.shape[1] - 1, -1, -1))


@pytest.mark.parametrize("t, label", [(1, 3), (2, 8)])
def test_conditional_reverse_step_matches_exact_enumeration(backend, t, label):
    model = _model(seed=t)
    program = _program(model, backend)
    generator = torch.Generator().manual_seed(t)
    spins_t = (2 * torch.randint(0, 2, (CONFIG.num_bits,), generator=generator) - 1).to(torch.int8)
    classes = torch.full((NUM_DRAWS,), label)
    state = reverse_step(
        model, program, t, spins_t.expand(NUM_DRAWS, -1).clone(), tsu_core.Key(5), SWEEPS, classes
    )
    labels = label_spins(torch.tensor([label]), CONFIG)[0]
    assert torch.equal(
        state[:, CONFIG.num_image_bits : CONFIG.num_bits], labels.expand(NUM_DRAWS, -1)
    )
    assert torch.equal(state[:, model.graph.noisy], spins_t.expand(NUM_DRAWS, -1))
    exact = _exact_image_distribution(model, t, spins_t, label)
    image = state[:, : CONFIG.num_image_bits].numpy()
    empirical = np.bincount(_index(image), minlength=exact.size) / NUM_DRAWS
    bound = total_variation_bound(exact, NUM_DRAWS)
    assert total_variation(empirical, exact) < bound
    # The test can fail: the conditional given another class is far outside the bound.
    other = _exact_image_distribution(model, t, spins_t, (label + 1) % 10)
    assert total_variation(other, exact) > 2 * bound


def test_sample_for_classes_keeps_them_and_refuses_bad_input(backend):
    model = _model()
    program = _program(model, backend)
    classes = torch.arange(12) % 10
    result = sample(model, program, 12, key=1, sweeps=3, classes=classes)
    expected = label_spins(classes, CONFIG)
    assert torch.equal(result.spins[:, CONFIG.num_image_bits :], expected)
    with pytest.raises(ValueError, match="12 class indices"):
        sample(model, program, 12, key=1, sweeps=3, classes=torch.full((12,), 10))
    with pytest.raises(ValueError, match="12 class indices"):
        sample(model, program, 12, key=1, sweeps=3, classes=torch.zeros(5))
    unlabelled = DTM(preset("tiny"))
    with pytest.raises(ValueError, match="no label bits"):
        sample(unlabelled, compile_program(unlabelled, backend), 4, key=1, classes=torch.zeros(4))
