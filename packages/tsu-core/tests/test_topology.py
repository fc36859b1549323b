import numpy as np
import pytest

from tsu_core import InvalidModel, Parameters, Topology, from_dense_matrix, from_networkx
from tsu_core.constructors import bipartite, from_edge_list, lattice_2d
from tsu_core.parameters import dense_coupling_matrix


def _proper(topology: Topology) -> bool:
    owner = topology.block_of_node
    edges = topology.edges
    covered = np.sort(np.concatenate(topology.blocks))
    return np.array_equal(covered, np.arange(topology.num_nodes)) and not np.any(
        owner[edges[:, 0]] == owner[edges[:, 1]]
    )


@pytest.mark.parametrize("seed", range(5))
def test_greedy_colouring_is_proper(seed):
    generator = np.random.default_rng(seed)
    rows, cols = np.triu_indices(30, 1)
    keep = generator.random(rows.size) < 0.2
    topology = Topology(30, np.stack([rows[keep], cols[keep]], 1))
    assert _proper(topology)
    assert len(topology.blocks) <= topology.max_degree + 1


def test_lattice_layout_and_checkerboard():
    topology = Topology.lattice_2d(4, 6)
    assert topology.num_edges == 48 and len(topology.blocks) == 2 and _proper(topology)
    # edge k joins node k to its right neighbour, edge N + k to the one below
    assert tuple(topology.edges[5]) == (5, 0) and tuple(topology.edges[24 + 20]) == (20, 2)
    assert topology.adjacency.degrees().tolist() == [4] * 24
    odd = Topology.lattice_2d(5)
    assert len(odd.blocks) <= 5 and _proper(odd)  # greedy: at most degree + 1


def test_bipartite_layout_matches_matrix():
    weights = np.arange(6.0).reshape(2, 3)
    topology, parameters = bipartite(weights, [1, 2], [3, 4, 5])
    dense = dense_coupling_matrix(topology, parameters)
    assert np.array_equal(dense[:2, 2:], weights) and np.array_equal(dense[2:, :2], weights.T)
    assert topology.structure == {"kind": "bipartite", "num_visible": 2, "num_hidden": 3}


def test_dense_matrix_round_trip():
    generator = np.random.default_rng(0)
    matrix = np.triu(generator.normal(size=(7, 7)), 1)
    matrix[0, 3] = 0
    matrix = matrix + matrix.T
    topology, parameters = from_dense_matrix(matrix, np.ones(7))
    assert topology.num_edges == 20
    assert np.allclose(dense_coupling_matrix(topology, parameters), matrix)
    with pytest.raises(InvalidModel, match="symmetric"):
        from_dense_matrix(np.triu(np.ones((3, 3)), 1))
    with pytest.raises(InvalidModel, match="diagonal"):
        from_dense_matrix(np.eye(3))


def test_networkx_graph():
    networkx = pytest.importorskip("networkx")
    graph = networkx.cycle_graph(["a", "b", "c", "d"])
    graph.edges["a", "b"]["weight"] = -2.0
    graph.nodes["c"]["bias"] = 0.5
    topology, parameters, nodes = from_networkx(graph)
    assert nodes == ["a", "b", "c", "d"] and topology.num_edges == 4
    dense = dense_coupling_matrix(topology, parameters)
    assert dense[0, 1] == -2.0 and dense[1, 2] == 1.0 and parameters.biases[2] == 0.5


def test_edge_list_defaults_and_categorical_shapes():
    topology, parameters = from_edge_list(3, [[0, 1], [1, 2]], num_categories=4)
    assert parameters.weights.shape == (2, 4, 4) and parameters.biases.shape == (3, 4)
    with pytest.raises(InvalidModel, match=r"weights: expected shape \(2, 4, 4\)"):
        Parameters(np.zeros(2), np.zeros((3, 4))).validate(topology)


def test_given_colouring_is_verified_and_kept():
    topology = Topology(4, [[0, 1], [2, 3]], blocks=[[0, 2], [1, 3]])
    assert [block.tolist() for block in topology.blocks] == [[0, 2], [1, 3]]
    with pytest.raises(InvalidModel, match="more than one block"):
        Topology(3, [[0, 1]], blocks=[[0, 1], [1, 2]])


def test_topology_is_immutable():
    topology = lattice_2d(4)[0]
    with pytest.raises(ValueError):
        topology.edges[0, 0] = 3


def test_copies_are_independent_models_with_stacked_parameters():
    """The exact distribution of three copies is the product of each copy's own: moments of
    the stacked model reshape to each copy's exact moments under its own parameters."""
    from tsu_core import ExactDistribution

    generator = np.random.default_rng(3)
    one = Topology(4, [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2)])
    stacked = one.copies(3)
    assert stacked.num_nodes == 12 and stacked.num_edges == 15 and _proper(stacked)
    assert len(stacked.blocks) == len(one.blocks)
    weights = generator.normal(size=(3, one.num_edges))
    biases = generator.normal(size=(3, one.num_nodes))
    joint = ExactDistribution.of(stacked, Parameters(weights.ravel(), biases.ravel()), beta=0.7)
    for k in range(3):
        alone = ExactDistribution.of(one, Parameters(weights[k], biases[k]), beta=0.7)
        assert np.allclose(joint.node_moments.reshape(3, -1)[k], alone.node_moments)
        assert np.allclose(joint.edge_moments.reshape(3, -1)[k], alone.edge_moments)
    # Per-copy parameters really differ: copy 0's moments under copy 1's parameters do not match.
    other = ExactDistribution.of(one, Parameters(weights[1], biases[1]), beta=0.7)
    assert not np.allclose(joint.node_moments.reshape(3, -1)[0], other.node_moments)
    with pytest.raises(InvalidModel, match="copies"):
        one.copies(0)
