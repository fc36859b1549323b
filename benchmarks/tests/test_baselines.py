"""The benchmarks' baselines sample the models they claim to (so their ratios mean something)."""

from __future__ import annotations

import pytest

# `nox -s results` runs these tests with pytest alone.
np = pytest.importorskip("numpy")
pytest.importorskip("tsu_core")
from _baselines import torch_rbm_runner  # noqa: E402

from tsu_core import ExactDistribution, Parameters, Topology  # noqa: E402


def test_plain_torch_rbm_matches_enumeration() -> None:
    """Visible magnetisations of the torch baseline against exact enumeration (4 x 3 RBM,
    asymmetric weights, so a transposed matrix would show), 3 sigma of 20,000 chains."""
    pytest.importorskip("torch")
    generator = np.random.default_rng(0)
    topology = Topology.bipartite(4, 3)
    parameters = Parameters(generator.normal(0, 0.8, 12), generator.normal(0, 0.5, 7))
    chains = 20_000
    run = torch_rbm_runner(parameters.weights, parameters.biases, 4, 3, chains, 30)
    spins = run(1).float().cpu().numpy()
    exact = ExactDistribution.of(topology, parameters, 1.0).node_moments[:4]
    tolerance = 3 * np.sqrt((1 - exact**2) / chains)
    assert np.all(np.abs(spins.mean(0) - exact) < tolerance + 1e-3)
