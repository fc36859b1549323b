r"""The block-sparse graph of one reverse step, built once and shared by every step.

Nodes, with D visible bits per image (the image's, then any label bits) and H latent spins:

| nodes              | what                                                   |
| ------------------ | ------------------------------------------------------ |
| `0 .. D-1`         | $x_{t-1}$, the bits being sampled (visible)            |
| `D .. D+H-1`       | latent spins z                                         |
| `D+H .. 2D+H-1`    | $x_t$, the current noisy bits, always clamped          |

Two wirings (`config.graph`). The learned edges come first and the D coupling edges
$x_{t-1,i}$ -- $x_{t,i}$, weighted by the forward coupling $\gamma_t$, last.

**"torus"**, the DTM paper's: a `grid_size` x `grid_size` torus whose nodes are the visible bits
and the latents. Each node is joined to the nodes at the quarter-turn rotations of a few offsets
(`config.GRID_OFFSETS`: degree 12 is (0, 1), (4, 1) and (10, 9)); every offset has an odd
coordinate sum, so the two checkerboard colours are the two blocks. The visible bits sit at
random nodes of one colour (`graph_seed`), so no two visible bits are joined and all structure
goes through the latents: edges are "latent" (visible -- latent) or "hidden" (latent -- latent).

**"patches"**, for images that have no grid of their own. Edges, in this order:

1. local: bits of the same plane whose pixels lie within `window_radius` (Chebyshev) inside one
   `block_size` x `block_size` patch, and all planes of one pixel;
2. skip: `skip_edges_per_node` random long-range edges per visible bit, between patches;
3. latent: each latent joined to every bit of its patch (grown by `latent_halo` pixels);
4. coupling: $x_{t-1,i}$ -- $x_{t,i}$, one per bit, weighted by the forward coupling $\gamma_t$.

Blocks: visible bits are coloured by (row mod (r+1), col mod (r+1), plane) with r the window
radius; latents and the $x_t$ nodes touch only visible bits, so they form one more block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import tsu_core
from bitflip_dtm.config import GRID_OFFSETS, Config

log = logging.getLogger(__name__)

KINDS = ("local", "skip", "latent", "coupling", "hidden")


@dataclass(frozen=True, eq=False)
class ReverseGraph:
    """The topology of a reverse step and where its parts live.

    Arguments:
        topology: the compiled-once `tsu_core.Topology`.
        num_bits: D.
        num_latents: H.
        edge_kind: (E,) index into `KINDS` for every edge.
    """

    topology: tsu_core.Topology
    num_bits: int
    num_latents: int
    edge_kind: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        return np.arange(self.num_bits)

    @property
    def latent(self) -> np.ndarray:
        return self.num_bits + np.arange(self.num_latents)

    @property
    def noisy(self) -> np.ndarray:
        """The $x_t$ nodes (clamped)."""
        return self.num_bits + self.num_latents + np.arange(self.num_bits)

    @property
    def num_learned_edges(self) -> int:
        """Edges with learned weights (all but the D coupling edges, which come last)."""
        return self.topology.num_edges - self.num_bits

    @cached_property
    def statistics(self) -> dict[str, float | int]:
        """Exact sparsity and degrees, over all nodes and over the model part (x_{t-1} and z)."""
        topology = self.topology
        nodes = topology.num_nodes
        pairs = nodes * (nodes - 1) // 2
        degrees = topology.adjacency.degrees()
        model_nodes = self.num_bits + self.num_latents
        model_pairs = model_nodes * (model_nodes - 1) // 2
        model_edges = self.num_learned_edges
        result: dict[str, float | int] = {
            "num_nodes": nodes,
            "num_edges": topology.num_edges,
            "num_bits": self.num_bits,
            "num_latents": self.num_latents,
            "possible_pairs": pairs,
            "sparsity": 1 - topology.num_edges / pairs,
            "model_sparsity": 1 - model_edges / model_pairs if model_pairs else 0.0,
            "mean_degree": float(degrees.mean()),
            "max_degree": int(degrees.max()),
            "visible_mean_degree": float(degrees[: self.num_bits].mean()),
            "latent_mean_degree": float(degrees[self.latent].mean()) if self.num_latents else 0.0,
            "num_blocks": len(topology.blocks),
        }
        for index, kind in enumerate(KINDS):
            result[f"{kind}_edges"] = int((self.edge_kind == index).sum())
        return result


def _bit(rows: np.ndarray, cols: np.ndarray, planes: np.ndarray, size: int, count: int):
    return (rows * size + cols) * count + planes


def build_graph(config: Config) -> ReverseGraph:
    """The reverse-step graph of a config (deterministic given `config.graph_seed`)."""
    graph = _torus_graph(config) if config.graph == "torus" else _patch_graph(config)
    log.info("reverse-step graph: %s", graph.statistics)
    return graph


def torus_edges(size: int, degree: int) -> np.ndarray:
    """The undirected edges (E, 2) of a `size` x `size` torus wired with `GRID_OFFSETS[degree]`;
    node `row * size + col`. Each offset and its quarter turns give four neighbours per node."""
    rows, cols = np.divmod(np.arange(size * size), size)
    pairs = []
    for dr, dc in GRID_OFFSETS[degree]:
        for turn_r, turn_c in ((dr, dc), (-dc, dr), (-dr, -dc), (dc, -dr)):
            other = ((rows + turn_r) % size) * size + (cols + turn_c) % size
            pairs.append(np.stack([np.minimum(rows * size + cols, other),
                                   np.maximum(rows * size + cols, other)], axis=1))  # fmt: skip
    return np.unique(np.concatenate(pairs), axis=0)


def _torus_graph(config: Config) -> ReverseGraph:
    size, num_bits = config.grid_size, config.num_bits
    grid = torus_edges(size, config.grid_degree)
    colour = np.add(*np.divmod(np.arange(size * size), size)) % 2
    generator = np.random.default_rng(config.graph_seed)
    visible_sites = generator.permutation(np.flatnonzero(colour == 0))[:num_bits]
    is_visible = np.zeros(size * size, dtype=bool)
    is_visible[visible_sites] = True
    hidden_sites = np.flatnonzero(~is_visible)
    node_of_site = np.empty(size * size, dtype=np.int64)
    node_of_site[visible_sites] = np.arange(num_bits)
    node_of_site[hidden_sites] = num_bits + np.arange(hidden_sites.size)
    num_latents = hidden_sites.size
    edges = node_of_site[grid]
    edges.sort(axis=1)  # a visible node (index < D) comes first
    touches_visible = edges[:, 0] < num_bits
    learned = np.concatenate([edges[touches_visible], edges[~touches_visible]])
    bits = np.arange(num_bits)
    coupling_edges = np.stack([bits, num_bits + num_latents + bits], axis=1)
    kinds = np.concatenate([
        np.full(int(touches_visible.sum()), KINDS.index("latent")),
        np.full(int((~touches_visible).sum()), KINDS.index("hidden")),
        np.full(num_bits, KINDS.index("coupling")),
    ])  # fmt: skip
    node_colour = np.empty(2 * num_bits + num_latents, dtype=np.int64)
    node_colour[node_of_site] = colour
    node_colour[num_bits + num_latents :] = 1  # x_t touches only visible bits (colour 0)
    blocks = (np.flatnonzero(node_colour == 0), np.flatnonzero(node_colour == 1))
    topology = tsu_core.Topology(
        2 * num_bits + num_latents, np.concatenate([learned, coupling_edges]), blocks=blocks
    )
    return ReverseGraph(topology, num_bits, num_latents, kinds.astype(np.int8))


def _patch_graph(config: Config) -> ReverseGraph:
    size, block, radius = config.image_size, config.block_size, config.window_radius
    planes = config.bits_per_pixel
    num_bits = config.num_bits
    rows, cols, plane = np.meshgrid(
        np.arange(size), np.arange(size), np.arange(planes), indexing="ij"
    )
    rows, cols, plane = rows.ravel(), cols.ravel(), plane.ravel()
    bit = _bit(rows, cols, plane, size, planes)
    assert np.array_equal(bit, np.arange(num_bits))

    # 1. local window edges: same plane, other pixel within the radius, same patch.
    local = []
    for dr in range(0, radius + 1):
        for dc in range(-radius, radius + 1):
            if dr == 0 and dc <= 0:
                continue
            other_rows, other_cols = rows + dr, cols + dc
            keep = (
                (other_rows < size)
                & (other_cols >= 0)
                & (other_cols < size)
                & (other_rows // block == rows // block)
                & (other_cols // block == cols // block)
            )
            other = _bit(other_rows[keep], other_cols[keep], plane[keep], size, planes)
            local.append(np.stack([bit[keep], other], axis=1))
    # ... and every pair of planes of one pixel.
    for first in range(planes):
        for second in range(first + 1, planes):
            pixel = np.arange(size * size)
            local.append(np.stack([pixel * planes + first, pixel * planes + second], axis=1))
    local_edges = np.concatenate(local) if local else np.zeros((0, 2), np.int64)

    # Colouring of visible bits: no two bits of one window (or one pixel) share a colour.
    period = radius + 1
    colour = ((rows % period) * period + cols % period) * planes + plane

    # 2. skip edges: random partners in another patch and of another colour.
    generator = np.random.default_rng(config.graph_seed)
    patch = (rows // block) * ((size + block - 1) // block) + cols // block
    skip = []
    for _ in range(config.skip_edges_per_node):
        partner = generator.integers(0, num_bits, size=num_bits)
        keep = (patch[partner] != patch) & (colour[partner] != colour)
        skip.append(np.stack([bit[keep], partner[keep]], axis=1))
    skip_edges = np.concatenate(skip) if skip else np.zeros((0, 2), np.int64)
    if len(skip_edges):
        low, high = skip_edges.min(1), skip_edges.max(1)
        _, unique = np.unique(low * num_bits + high, return_index=True)
        skip_edges = np.stack([low, high], axis=1)[np.sort(unique)]

    # 3. latent edges: each latent sees its patch plus a halo.
    patches_per_side = (size + block - 1) // block
    latent_edges = []
    latent = num_bits
    for patch_row in range(patches_per_side):
        for patch_col in range(patches_per_side):
            low_row = max(patch_row * block - config.latent_halo, 0)
            high_row = min((patch_row + 1) * block + config.latent_halo, size)
            low_col = max(patch_col * block - config.latent_halo, 0)
            high_col = min((patch_col + 1) * block + config.latent_halo, size)
            inside = (rows >= low_row) & (rows < high_row) & (cols >= low_col) & (cols < high_col)
            seen = bit[inside]
            for _ in range(config.latents_per_patch):
                latent_edges.append(np.stack([seen, np.full_like(seen, latent)], axis=1))
                latent += 1
    num_latents = latent - num_bits
    latent_edges = np.concatenate(latent_edges) if latent_edges else np.zeros((0, 2), np.int64)

    # 4. coupling edges x_{t-1,i} -- x_{t,i}.
    coupling_edges = np.stack([bit, num_bits + num_latents + bit], axis=1)

    parts = [local_edges, skip_edges, latent_edges, coupling_edges]
    edges = np.concatenate(parts).astype(np.int64)
    edge_kind = np.concatenate([np.full(len(part), index) for index, part in enumerate(parts)])
    visible_blocks = [bit[colour == value] for value in np.unique(colour)]
    rest = np.arange(num_bits, 2 * num_bits + num_latents)
    topology = tsu_core.Topology(2 * num_bits + num_latents, edges, blocks=(*visible_blocks, rest))
    return ReverseGraph(topology, num_bits, num_latents, edge_kind.astype(np.int8))
