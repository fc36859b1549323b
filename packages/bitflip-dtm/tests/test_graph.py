"""The reverse-step graph: exact edge counts, sparsity, a valid colouring."""

import numpy as np
import pytest

from bitflip_dtm.config import preset
from bitflip_dtm.graph import build_graph


def test_tiny_graph_counts():
    graph = build_graph(preset("tiny"))
    stats = graph.statistics
    # 3x3 king's graph: 6 horizontal + 6 vertical + 8 diagonal edges; 4 latents x 9 bits; 9 couplings.
    assert (stats["local_edges"], stats["latent_edges"], stats["coupling_edges"]) == (20, 36, 9)
    assert stats["num_nodes"] == 22 and stats["num_edges"] == 65
    assert stats["sparsity"] == pytest.approx(1 - 65 / 231)
    noisy = graph.noisy
    coupling = graph.topology.edges[graph.num_learned_edges :]
    assert np.array_equal(coupling[:, 0], graph.visible) and np.array_equal(coupling[:, 1], noisy)


@pytest.mark.parametrize("name", ["mnist28", "rgb64"])
def test_presets_are_at_least_90_percent_sparse(name):
    config = preset(name)
    graph = build_graph(config)
    stats = graph.statistics
    assert stats["sparsity"] >= 0.9 and stats["model_sparsity"] >= 0.9
    assert stats["num_bits"] == config.num_bits
    degrees = graph.topology.adjacency.degrees()
    assert stats["max_degree"] == degrees.max()
    # Local edges stay inside one patch.
    local = graph.topology.edges[graph.edge_kind == 0]
    pixel = local // config.bits_per_pixel
    rows, cols = pixel // config.image_size, pixel % config.image_size
    block = config.block_size
    assert np.all(rows[:, 0] // block == rows[:, 1] // block)
    assert np.all(cols[:, 0] // block == cols[:, 1] // block)
    # Skip edges join different patches.
    skip = graph.topology.edges[graph.edge_kind == 1] // config.bits_per_pixel
    assert len(skip) > 0
    patch = (skip // config.image_size) // block * 100 + (skip % config.image_size) // block
    assert np.all(patch[:, 0] != patch[:, 1])


def test_graph_is_deterministic():
    first, second = build_graph(preset("mnist28")), build_graph(preset("mnist28"))
    assert np.array_equal(first.topology.edges, second.topology.edges)


def test_paper_torus_wiring():
    """The paper preset's graph: a 70x70 torus of degree 12, visible bits on one colour only,
    so every visible bit has 12 latent neighbours and one x_t partner."""
    config = preset("paper")
    graph = build_graph(config)
    stats = graph.statistics
    assert stats["num_bits"] == 784 + 100 and stats["num_latents"] == 70 * 70 - 884
    assert stats["latent_edges"] + stats["hidden_edges"] == 70 * 70 * 12 // 2
    degrees = graph.topology.adjacency.degrees()
    assert np.all(degrees[: graph.num_bits] == 13) and np.all(degrees[graph.latent] == 12)
    assert np.all(degrees[graph.noisy] == 1)
    learned = graph.topology.edges[: graph.num_learned_edges]
    assert not np.any((learned[:, 0] < graph.num_bits) & (learned[:, 1] < graph.num_bits))
    assert len(graph.topology.blocks) == 2  # the checkerboard; x_t joins the other colour


@pytest.mark.parametrize("degree", [4, 8, 12, 16, 20])
def test_torus_offsets_are_rotations_of_the_table(degree):
    from bitflip_dtm.config import GRID_OFFSETS
    from bitflip_dtm.graph import torus_edges

    size = 24
    edges = torus_edges(size, degree)
    assert len(edges) == size * size * degree // 2
    rows, cols = np.divmod(edges, size)
    steps = zip(rows[:, 1] - rows[:, 0], cols[:, 1] - cols[:, 0], strict=True)
    delta = {(int(dr) % size, int(dc) % size) for dr, dc in steps}
    expected = set()
    for dr, dc in GRID_OFFSETS[degree]:
        for a, b in ((dr, dc), (-dc, dr), (-dr, -dc), (dc, -dr)):
            expected |= {(a % size, b % size), (-a % size, -b % size)}
    assert delta <= expected
    assert np.all((rows.sum(1) + cols.sum(1)) % 2 == 1)  # every edge joins the two colours


def test_visible_placement_follows_the_graph_seed():
    config = preset("tiny", graph="torus", grid_size=6, grid_degree=8)
    first, again = build_graph(config), build_graph(config)
    other = build_graph(config.replace(graph_seed=1))
    assert np.array_equal(first.topology.edges, again.topology.edges)
    assert not np.array_equal(first.topology.edges, other.topology.edges)
