"""Small random models with known exact answers, shared by the conformance suite and tests."""

from __future__ import annotations

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
