import numpy as np
import torch

from tsu_core import ExactDistribution, bipartite
from tsu_core.testing.stats import z_threshold
from tsu_torch import ThermalContext
from tsu_torch.rbm import (
    RBM,
    PersistentContrastiveDivergence,
    ais_log_partition,
    exact_log_partition,
    log_likelihood,
)


def _rbm(seed: int = 0) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(6, 4, init_scale=0.6, dtype=torch.float64)
    with torch.no_grad():
        rbm.visible_bias.normal_(0, 0.4)
        rbm.hidden_bias.normal_(0, 0.4)
    return rbm


def _exact(rbm: RBM) -> ExactDistribution:
    topology, parameters = bipartite(
        rbm.weights.detach().numpy(),
        rbm.visible_bias.detach().numpy(),
        rbm.hidden_bias.detach().numpy(),
    )
    assert np.array_equal(topology.edges, rbm.topology.edges)
    return ExactDistribution.of(topology, parameters, rbm.beta)


def test_free_energy_marginalises_the_hidden_units() -> None:
    rbm = _rbm()
    exact = _exact(rbm)
    marginals: dict[tuple[int, ...], float] = {}
    for state, probability in zip(exact.states, exact.probabilities, strict=True):
        visible = tuple(int(value) for value in state[:6])
        marginals[visible] = marginals.get(visible, 0.0) + probability
    visible_states = torch.tensor(list(marginals), dtype=torch.float64)
    with torch.no_grad():
        ours = torch.exp(log_likelihood(rbm, visible_states, exact.log_partition)).numpy()
    np.testing.assert_allclose(ours, np.array(list(marginals.values())), rtol=1e-10)


def test_hidden_enumeration_matches_full_enumeration() -> None:
    rbm = _rbm(4)
    rbm.beta = 0.7
    exact = _exact(rbm).log_partition
    assert abs(exact_log_partition(rbm, chunk=5) - exact) < 1e-9  # chunks of 5: crosses seams
    try:
        exact_log_partition(rbm, max_hidden=3)
    except ValueError as error:
        assert "num_hidden" in str(error)
    else:
        raise AssertionError("expected a ValueError for too many hidden units")


def test_ais_matches_exact_log_partition(context: ThermalContext) -> None:
    rbm = _rbm(1)
    result = ais_log_partition(rbm, context, num_betas=200, num_chains=400)
    exact = _exact(rbm).log_partition
    # delta method: log of a mean of n weights has standard error ~ cv / sqrt(n), bias ~ se^2 / 2
    tolerance = z_threshold() * result.standard_error + result.standard_error**2
    assert abs(result.log_partition - exact) <= tolerance
    assert result.standard_error < 0.05


def test_pcd_increases_the_exact_likelihood(context: ThermalContext) -> None:
    torch.manual_seed(2)
    teacher = _rbm(3)
    exact = _exact(teacher)
    generator = np.random.default_rng(0)
    rows = generator.choice(len(exact.probabilities), size=500, p=exact.probabilities)
    data = torch.from_numpy(exact.states[rows, :6].astype(np.float64))
    student = RBM(6, 4, dtype=torch.float64)
    student.initialise_visible_bias(data)
    trainer = PersistentContrastiveDivergence(student, context, num_chains=100, num_sweeps=5)
    optimiser = torch.optim.Adam(student.parameters(), lr=0.05)

    @torch.no_grad()
    def average_log_likelihood() -> float:
        return float(log_likelihood(student, data, _exact(student).log_partition).mean())

    before = average_log_likelihood()
    for step in range(60):
        batch = data[(step * 50) % 500 : (step * 50) % 500 + 50]
        optimiser.zero_grad()
        trainer.loss(batch).backward()
        optimiser.step()
    after = average_log_likelihood()
    with torch.no_grad():
        teacher_value = float(log_likelihood(teacher, data, exact.log_partition).mean())
    assert after > before + 0.5 * (teacher_value - before)
