"""Small random models with known exact answers, shared by the conformance suite and tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsu_core.parameters import Parameters
from tsu_core.topology import Topology


def _connected_random_edges(
    generator: np.random.Generator, num_nodes: int, edge_probability: float
) -> np.ndarray:
    """Erdos-Renyi edges plus the path 0-1-...-(N-1), so the graph is connected."""
    rows, cols = np.triu_indices(num_nodes, k=1)
    keep = generator.random(rows.size) < edge_probability
    keep[np.flatnonzero(cols == rows + 1)] = True
    return np.stack([rows[keep], cols[keep]], axis=1)


def random_spin_model(
    seed: int,
    num_nodes: int,
    edge_probability: float = 0.6,
    weight_scale: float = 0.5,
    bias_scale: float = 0.3,
) -> tuple[Topology, Parameters]:
    """A connected Erdos-Renyi spin glass with Gaussian weights and biases."""
    generator = np.random.default_rng(seed)
    topology = Topology(num_nodes, _connected_random_edges(generator, num_nodes, edge_probability))
    parameters = Parameters(
        generator.normal(0, weight_scale, topology.num_edges),
        generator.normal(0, bias_scale, num_nodes),
    )
    return topology, parameters


def random_categorical_model(
    seed: int,
    num_nodes: int,
    num_categories: int,
    edge_probability: float = 0.6,
    weight_scale: float = 0.5,
    bias_scale: float = 0.3,
) -> tuple[Topology, Parameters]:
    """A connected Potts-like model with a random K x K matrix per edge."""
    generator = np.random.default_rng(seed)
    edges = _connected_random_edges(generator, num_nodes, edge_probability)
    topology = Topology(num_nodes, edges, num_categories=num_categories)
    parameters = Parameters(
        generator.normal(0, weight_scale, (topology.num_edges, num_categories, num_categories)),
        generator.normal(0, bias_scale, (num_nodes, num_categories)),
    )
    return topology, parameters


def frustrated_model(seed: int, num_nodes: int = 12) -> tuple[Topology, Parameters]:
    """A fully connected +-1 spin glass (Sherrington-Kirkpatrick with binary couplings):
    frustrated, with a ground state found by enumeration."""
    generator = np.random.default_rng(seed)
    topology = Topology.complete(num_nodes)
    weights = generator.choice([-1.0, 1.0], size=topology.num_edges)
    return topology, Parameters(weights, np.zeros(num_nodes))


def ring_model(num_nodes: int, coupling: float) -> tuple[Topology, Parameters]:
    """A ferromagnetic ring with no field; its spin correlations are known in closed form."""
    nodes = np.arange(num_nodes)
    topology = Topology(num_nodes, np.stack([nodes, (nodes + 1) % num_nodes], axis=1))
    return topology, Parameters(np.full(num_nodes, coupling), np.zeros(num_nodes))


def ring_correlations(num_nodes: int, coupling: float, beta: float) -> np.ndarray:
    """<s_i s_j> on the periodic ring: (t^d + t^(N-d)) / (1 + t^N), t = tanh(beta J)."""
    t = np.tanh(beta * coupling)
    distance = np.abs(np.subtract.outer(np.arange(num_nodes), np.arange(num_nodes)))
    return (t**distance + t ** (num_nodes - distance)) / (1 + t**num_nodes)


def edgeless_model(
    seed: int, num_nodes: int, num_categories: int = 2, bias_scale: float = 0.8
) -> tuple[Topology, Parameters]:
    """Independent nodes with random biases and no edges: a layer of p-bits (spins when
    `num_categories` is 2, categorical nodes otherwise)."""
    generator = np.random.default_rng(seed)
    edges = np.zeros((0, 2), dtype=np.int64)
    if num_categories == 2:
        topology = Topology(num_nodes, edges)
        return topology, Parameters(np.zeros(0), generator.normal(0, bias_scale, num_nodes))
    topology = Topology(num_nodes, edges, num_categories=num_categories)
    weights = np.zeros((0, num_categories, num_categories))
    biases = generator.normal(0, bias_scale, (num_nodes, num_categories))
    return topology, Parameters(weights, biases)


@dataclass(frozen=True)
class IndependentSpins:
    r"""Closed-form moments of spins without edges: $\langle s_i \rangle = \tanh(\beta h_i)$,
    $E = -\sum_i h_i s_i$, so $\langle E \rangle = -\sum_i h_i \tanh(\beta h_i)$ and
    $\mathrm{Var}\,E = \sum_i h_i^2 (1 - \tanh^2(\beta h_i))$. Has the attributes of
    `ExactDistribution` that `stats.assert_moments_match` reads, without enumerating."""

    topology: Topology
    biases: np.ndarray
    beta: float

    @property
    def node_moments(self) -> np.ndarray:
        return np.tanh(self.beta * self.biases)

    @property
    def edge_moments(self) -> np.ndarray:
        return np.zeros(0)

    @property
    def energies(self) -> np.ndarray:
        """The lowest and highest energies (all that `np.ptp` needs)."""
        extreme = float(np.abs(self.biases).sum())
        return np.array([-extreme, extreme])

    @property
    def mean_energy(self) -> float:
        return float(-(self.biases * self.node_moments).sum())

    @property
    def energy_variance(self) -> float:
        return float((self.biases**2 * (1 - self.node_moments**2)).sum())
