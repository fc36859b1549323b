"""Models (topology and parameters together) from the forms people already have them in."""

from __future__ import annotations

from typing import Any

import numpy as np

from tsu_core.errors import InvalidModel, describe
from tsu_core.parameters import Parameters
from tsu_core.topology import Topology


def from_dense_matrix(couplings: Any, biases: Any = None) -> tuple[Topology, Parameters]:
    """A spin model from a symmetric N x N coupling matrix (edges where it is non-zero).

    The diagonal must be zero: `s_i * s_i = 1`, so a self-coupling only shifts the energy.
    """
    matrix = np.asarray(couplings, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InvalidModel(f"couplings: expected a square matrix, got {describe(matrix)}")
    if not np.allclose(matrix, matrix.T):
        raise InvalidModel("couplings: expected a symmetric matrix (J_ij = J_ji)")
    if np.any(np.diag(matrix) != 0):
        raise InvalidModel("couplings: expected a zero diagonal (self-loops are not edges)")
    rows, cols = np.nonzero(np.triu(matrix, k=1))
    topology = Topology(matrix.shape[0], np.stack([rows, cols], axis=1))
    biases = np.zeros(matrix.shape[0]) if biases is None else np.asarray(biases, dtype=np.float64)
    return topology, Parameters(matrix[rows, cols], biases).validate(topology)


def from_edge_list(
    num_nodes: int, edges: Any, weights: Any = None, biases: Any = None, num_categories: int = 0
) -> tuple[Topology, Parameters]:
    """A model from an edge list, with zero weights and biases where none are given."""
    topology = Topology(num_nodes, np.asarray(edges), num_categories=num_categories)
    zero = Parameters.zeros(topology)
    parameters = Parameters(
        zero.weights if weights is None else weights, zero.biases if biases is None else biases
    )
    return topology, parameters.validate(topology)


def lattice_2d(
    rows: int, cols: int | None = None, coupling: float = 1.0, field: float = 0.0
) -> tuple[Topology, Parameters]:
    """The periodic square-lattice Ising model with uniform coupling and field."""
    topology = Topology.lattice_2d(rows, cols)
    parameters = Parameters(
        np.full(topology.num_edges, float(coupling)), np.full(topology.num_nodes, float(field))
    )
    return topology, parameters.validate(topology)


def bipartite(
    weights: Any, visible_biases: Any = None, hidden_biases: Any = None
) -> tuple[Topology, Parameters]:
    """A restricted Boltzmann machine (spin units) from its V x H weight matrix."""
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidModel(f"weights: expected a V x H matrix, got {describe(matrix)}")
    num_visible, num_hidden = matrix.shape
    topology = Topology.bipartite(num_visible, num_hidden)
    visible = np.zeros(num_visible) if visible_biases is None else np.asarray(visible_biases)
    hidden = np.zeros(num_hidden) if hidden_biases is None else np.asarray(hidden_biases)
    if visible.shape != (num_visible,) or hidden.shape != (num_hidden,):
        raise InvalidModel(
            f"biases: expected ({num_visible},) visible and ({num_hidden},) hidden biases, got "
            f"{visible.shape} and {hidden.shape}"
        )
    parameters = Parameters(matrix.reshape(-1), np.concatenate([visible, hidden]))
    return topology, parameters.validate(topology)


def from_networkx(
    graph: Any, weight: str = "weight", bias: str = "bias"
) -> tuple[Topology, Parameters, list[Any]]:
    """A spin model from a networkx graph.

    Node i of the topology is the i-th node of `graph.nodes`; edge attributes `weight` and node
    attributes `bias` give J and h (1 and 0 when absent).

    Returns:
        the topology, its parameters, and the list of graph nodes in topology order.
    """
    nodes = list(graph.nodes)
    index = {node: position for position, node in enumerate(nodes)}
    edges = [(index[a], index[b]) for a, b in graph.edges]
    weights = [float(data.get(weight, 1.0)) for _, _, data in graph.edges(data=True)]
    biases = [float(graph.nodes[node].get(bias, 0.0)) for node in nodes]
    topology = Topology(len(nodes), np.asarray(edges, dtype=np.int64).reshape(-1, 2))
    parameters = Parameters(np.asarray(weights), np.asarray(biases)).validate(topology)
    return topology, parameters, nodes
