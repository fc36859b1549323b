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
