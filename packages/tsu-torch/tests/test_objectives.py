import numpy as np
import pytest
import torch

from tsu_core import ExactDistribution, Parameters, Topology, energy, local_fields
from tsu_core.testing.stats import (
    empirical_distribution,
    mean_tolerance,
    total_variation,
    total_variation_bound,
)
from tsu_torch import ThermalContext
from tsu_torch.ising import IsingModel
from tsu_torch.objectives import (
    ContrastiveDivergence,
    TSUNegativeSampler,
    conditional_fields,
    denoising_score_matching,
    flip_noise,
    info_nce,
    info_nce_loss,
)

NUM_NODES = 5


def _model(seed: int = 0, beta: float = 1.0) -> IsingModel:
    generator = np.random.default_rng(seed)
    topology = Topology.complete(NUM_NODES)
    return IsingModel(
        topology,
        generator.normal(0, 0.3, topology.num_edges),
        generator.normal(0, 0.3, NUM_NODES),
        beta=beta,
        dtype=torch.float64,
    )


class EnergyModule(torch.nn.Module):
    """An Ising energy seen only as a black-box module (to exercise the generic path)."""

    def __init__(self, model: IsingModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.model.energy(states)


def _dataset(num_rows: int = 40, seed: int = 1) -> torch.Tensor:
    generator = np.random.default_rng(seed)
    return torch.from_numpy(generator.choice([-1.0, 1.0], size=(num_rows, NUM_NODES)))


def _exact_gradient(
    model: IsingModel, data: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, ExactDistribution]:
    """d NLL / d(J, h) = -beta (<.>_data - <.>_model), from exact enumeration."""
    exact = ExactDistribution.of(
        model.topology,
        Parameters(model.weights.detach().numpy(), model.biases.detach().numpy()),
        model.beta,
    )
    spins = data.numpy()
    edges = model.topology.edges
    data_edges = (spins[:, edges[:, 0]] * spins[:, edges[:, 1]]).mean(0)
    grad_weights = -model.beta * (data_edges - exact.edge_moments)
    grad_biases = -model.beta * (spins.mean(0) - exact.node_moments)
    return grad_weights, grad_biases, exact


def _check_gradient(
    model: IsingModel, loss: torch.Tensor, data: torch.Tensor, num_chains: int, num_calls: int = 1
) -> None:
    grad_weights, grad_biases, exact = _exact_gradient(model, data)
    tests = model.topology.num_edges + NUM_NODES
    edge_tolerance = model.beta * mean_tolerance(
        1 - exact.edge_moments**2, num_chains * num_calls, tests
    )
    node_tolerance = model.beta * mean_tolerance(
        1 - exact.node_moments**2, num_chains * num_calls, tests
    )
    assert np.all(np.abs(model.weights.grad.numpy() - grad_weights) <= edge_tolerance)
    assert np.all(np.abs(model.biases.grad.numpy() - grad_biases) <= node_tolerance)


def test_torch_energy_and_fields_match_tsu_core() -> None:
    model = _model()
    states = _dataset(10)
    parameters = Parameters(model.weights.detach().numpy(), model.biases.detach().numpy())
    np.testing.assert_allclose(
        model.energy(states).detach().numpy(), energy(model.topology, parameters, states.numpy())
    )
    np.testing.assert_allclose(
        model.fields(states).detach().numpy(),
        local_fields(model.topology, parameters, states.numpy()),
    )
    # the generic flip-based fields of a black-box energy agree
    torch.testing.assert_close(
        conditional_fields(EnergyModule(model), states), model.fields(states)
    )


def test_cd_gradient_matches_exact_enumeration(context: ThermalContext) -> None:
    model = _model(beta=0.9)
    data = _dataset()
    repeats = 50
    objective = ContrastiveDivergence(model, num_steps=25, context=context)
    objective(data.repeat(repeats, 1)).backward()
    _check_gradient(model, None, data, num_chains=data.shape[0] * repeats)


def test_pcd_keeps_chains_and_matches_exact_gradient(
    context: ThermalContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(2)
    data = _dataset(seed=3)
    num_chains, num_calls = 1000, 4
    objective = ContrastiveDivergence(
        model, num_steps=5, persistent=True, num_chains=num_chains, context=context
    )
    starts: list[torch.Tensor] = []
    original = model.sample

    def recording(*args, **options):  # noqa: ANN002, ANN003
        starts.append(options["initial_state"].clone())
        return original(*args, **options)

    monkeypatch.setattr(model, "sample", recording)
    outputs = []
    for _ in range(num_calls):
        objective(data).backward()  # gradients accumulate over the calls
        outputs.append(objective.chains.clone())
    assert starts[0].shape == (num_chains, NUM_NODES)
    torch.testing.assert_close(starts[0].double(), data[torch.arange(num_chains) % data.shape[0]])
    for start, previous in zip(starts[1:], outputs[:-1], strict=True):
        torch.testing.assert_close(start.double(), previous.double())
    model.weights.grad /= num_calls
    model.biases.grad /= num_calls
    # the first call starts at the data, so a 5-sweep chain is not yet at equilibrium; the
    # average over calls is still within the bound for the (correlated) chains of one call
    _check_gradient(model, None, data, num_chains=num_chains)


def test_cd_for_an_energy_module_uses_pbit_gibbs(context: ThermalContext) -> None:
    model = _model(4)
    data = _dataset(seed=5)
    repeats = 40
    objective = ContrastiveDivergence(
        EnergyModule(model), num_steps=15, beta=model.beta, context=context
    )
    objective(data.repeat(repeats, 1)).backward()
    _check_gradient(model, None, data, num_chains=data.shape[0] * repeats)


def test_pseudo_likelihood_is_stationary_at_the_true_model() -> None:
    """At flip probability 0 the population loss (exact expectation over the model's own
    distribution) has zero gradient at the true parameters, and not elsewhere."""
    model = _model(6)
    exact = ExactDistribution.of(
        model.topology, Parameters(model.weights.detach().numpy(), model.biases.detach().numpy())
    )
    states = torch.from_numpy(exact.states.astype(np.float64))
    weights = torch.from_numpy(exact.probabilities)
    (denoising_score_matching(model, states, 0.0, reduction="none") @ weights).backward()
    assert float(model.weights.grad.abs().max()) < 1e-10
    assert float(model.biases.grad.abs().max()) < 1e-10
    with torch.no_grad():
        model.weights.add_(0.2)
    model.zero_grad()
    (denoising_score_matching(model, states, 0.0, reduction="none") @ weights).backward()
    assert float(model.weights.grad.abs().max()) > 1e-3
    # the generic path (a black-box energy) gives the same loss
    torch.testing.assert_close(
        denoising_score_matching(EnergyModule(model), states, 0.0, beta=1.0, reduction="none"),
        denoising_score_matching(model, states, 0.0, reduction="none"),
    )


def test_flip_noise_rate(context: ThermalContext) -> None:
    states = torch.ones(300, 50)
    noisy = flip_noise(states, 0.2, context)
    flipped = float((noisy == -1).float().mean())
    assert abs(flipped - 0.2) <= mean_tolerance(0.16, states.numel(), spread=1.0)
    loss = denoising_score_matching(_model(), _dataset().double(), 0.2, context=context)
    assert torch.isfinite(loss)


def test_negative_sampler_distributions(context: ThermalContext) -> None:
    sampler = TSUNegativeSampler(num_negatives=4000, beta=0.7, context=context)
    positives = torch.tensor([0, 3])
    uniform = sampler.sample(5, positives)
    assert uniform.shape == (2, 4000)
    assert not torch.any(uniform == positives.view(-1, 1))
    scores = torch.tensor([[0.0, 1.0, -1.0, 2.0, 0.5], [1.0, 1.0, 0.0, 3.0, -2.0]])
    hard = sampler.sample(5, positives, scores=scores)
    for row in range(2):
        for draws, logits in ((uniform[row], torch.zeros(5)), (hard[row], 0.7 * scores[row])):
            logits = logits.clone()
            logits[positives[row]] = float("-inf")
            probabilities = torch.softmax(logits, 0).numpy()
            frequencies = empirical_distribution(draws.numpy(), 5)
            assert total_variation(frequencies, probabilities) <= total_variation_bound(
                probabilities, 4000, alpha=1e-6 / 4
            )


def test_info_nce_loss_is_cross_entropy(context: ThermalContext) -> None:
    positive, negative = torch.randn(6), torch.randn(6, 3)
    logits = torch.cat([positive.unsqueeze(1), negative], 1)
    torch.testing.assert_close(
        info_nce_loss(positive, negative),
        torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long)),
    )


def test_info_nce_training_aligns_pairs(context: ThermalContext) -> None:
    torch.manual_seed(0)
    inputs = torch.randn(32, 6)
    targets = inputs @ torch.randn(6, 6)
    encoder = torch.nn.Linear(6, 6)
    sampler = TSUNegativeSampler(num_negatives=8, context=context)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=0.05)

    def accuracy() -> float:
        with torch.no_grad():
            scores = (
                torch.nn.functional.normalize(encoder(inputs), dim=-1)
                @ torch.nn.functional.normalize(targets, dim=-1).T
            )
        return float((scores.argmax(1) == torch.arange(32)).float().mean())

    before = accuracy()
    for _ in range(150):
        optimiser.zero_grad()
        info_nce(encoder(inputs), targets, sampler).backward()
        optimiser.step()
    assert accuracy() >= 0.9 > before
