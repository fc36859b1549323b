r"""The energy convention of the whole stack, written once.

Spin nodes, $s_i \in \{-1, +1\}$:

$$E(s) = -\sum_{(i,j) \in \text{edges}} J_{ij} s_i s_j - \sum_i h_i s_i, \qquad
p(s) \propto e^{-\beta E(s)}.$$

The conditional of one spin given its neighbours is a p-bit with local field
$f_i = h_i + \sum_j J_{ij} s_j$: $P(s_i = +1 \mid \text{rest}) = \sigma(2 \beta f_i)$.

Categorical nodes, $x_i \in \{0, \dots, K-1\}$, with a $K \times K$ matrix $W_e$ per edge
$e = (i, j)$ and a bias vector $h_i$ per node:

$$E(x) = -\sum_{e = (i,j)} W_e[x_i, x_j] - \sum_i h_i[x_i].$$

The conditional of node i is a softmax over its K states with logits
$\beta\,(h_i[k] + \sum_{e=(i,j)} W_e[k, x_j] + \sum_{e=(j,i)} W_e[x_j, k])$.

These numpy functions are the reference implementation; backends compute the same quantities
on their own devices and are checked against these in the conformance suite.
"""

from __future__ import annotations

import numpy as np

from tsu_core.arrays import to_numpy
from tsu_core.parameters import Parameters
from tsu_core.topology import Topology


def energy(topology: Topology, parameters: Parameters, states: np.ndarray) -> np.ndarray:
    """Energy of each state.

    Arguments:
        states: array of shape (..., N): spins in {-1, +1} or category indices in [0, K).

    Returns:
        array of shape (...) of float64 energies.
    """
    states = to_numpy(states)
    weights = to_numpy(parameters.weights, dtype=np.float64)
    biases = to_numpy(parameters.biases, dtype=np.float64)
    first, second = topology.edges[:, 0], topology.edges[:, 1]
    if topology.is_spin:
        spins = states.astype(np.float64)
        pair = (spins[..., first] * spins[..., second]) @ weights
        return -pair - spins @ biases
    states = states.astype(np.int64)
    pair = weights[np.arange(topology.num_edges), states[..., first], states[..., second]].sum(-1)
    single = biases[np.arange(topology.num_nodes), states].sum(-1)
    return -pair - single


def local_fields(topology: Topology, parameters: Parameters, states: np.ndarray) -> np.ndarray:
    """The field each node feels from its neighbours and bias (before multiplying by beta).

    Returns:
        spin topologies: shape (..., N), `f_i = h_i + sum_j J_ij s_j`;
        categorical: shape (..., N, K), the unscaled logits of each node's conditional.
    """
    states = to_numpy(states)
    weights = to_numpy(parameters.weights, dtype=np.float64)
    biases = to_numpy(parameters.biases, dtype=np.float64)
    first, second = topology.edges[:, 0], topology.edges[:, 1]
    if topology.is_spin:
        spins = states.astype(np.float64)
        fields = np.broadcast_to(biases, spins.shape).copy()
        np.add.at(fields.T, first, (weights * spins[..., second]).T)
        np.add.at(fields.T, second, (weights * spins[..., first]).T)
        return fields
    states = states.astype(np.int64)
    logits = np.broadcast_to(biases, states.shape + biases.shape[-1:]).copy()
    edge_index = np.arange(topology.num_edges)
    # W_e[:, x_j] for the first endpoint, W_e[x_i, :] for the second.
    toward_first = weights[edge_index, :, states[..., second]]
    toward_second = weights[edge_index, states[..., first], :]
    moved = np.moveaxis(logits, -2, 0)
    np.add.at(moved, first, np.moveaxis(toward_first, -2, 0))
    np.add.at(moved, second, np.moveaxis(toward_second, -2, 0))
    return logits
