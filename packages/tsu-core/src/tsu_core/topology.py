"""The fixed wiring of a model: nodes, undirected edges and the colouring into blocks.

A topology is what a chip is wired as. It never changes during training, so a backend compiles
it once (`backend.compile(topology)`) and then re-runs the program with new `Parameters`.

Nodes are numbered `0 .. num_nodes - 1`. A topology is either a *spin* topology (every node takes
values in {-1, +1}) or a *categorical* topology (every node takes one of `num_categories` states,
numbered `0 .. K - 1`). Edges are unordered pairs; for categorical edges the orientation `(i, j)`
fixes which axis of the edge's K x K weight matrix belongs to which node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from tsu_core.errors import InvalidModel, describe


@dataclass(frozen=True, eq=False)
class Adjacency:
    """Neighbour lists in compressed form: the neighbours of node i are
    `neighbours[offsets[i]:offsets[i + 1]]`, reached through edges `edge_ids[...]`."""

    offsets: np.ndarray
    neighbours: np.ndarray
    edge_ids: np.ndarray

    def degrees(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True, eq=False)
class Topology:
    """Nodes, edges and block colouring of a pairwise model.

    Arguments:
        num_nodes: number of nodes N.
        edges: integer array of shape (E, 2), each row an undirected edge (i, j) with i != j.
        num_categories: 0 for spin nodes (+-1); K >= 2 for categorical nodes with K states.
        blocks: the colouring, a sequence of integer arrays that partition the nodes with no edge
            inside a block. Computed by greedy colouring when omitted, verified when given.
        structure: an optional description of a regular structure that backends may exploit,
            e.g. `{"kind": "lattice_2d", "shape": (L, M)}` or
            `{"kind": "bipartite", "num_visible": V, "num_hidden": H}`. Set by the constructors.

    Raises:
        InvalidModel: an edge to a missing node, a self-loop, a duplicate edge, or a colouring that
            is not a partition or has an edge inside a block.
    """

    num_nodes: int
    edges: np.ndarray
    num_categories: int = 0
    blocks: tuple[np.ndarray, ...] = ()
    structure: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        num_nodes = self.num_nodes
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
            raise InvalidModel(f"num_nodes: expected a positive integer, got {describe(num_nodes)}")
        if num_nodes < 1:
            raise InvalidModel(f"num_nodes: expected a positive integer, got {num_nodes}")
        object.__setattr__(self, "num_nodes", int(num_nodes))
        categories = self.num_categories
        if isinstance(categories, bool) or not isinstance(categories, (int, np.integer)):
            raise InvalidModel(
                "num_categories: expected an integer, 0 (spin nodes) or K >= 2 (categorical "
                f"nodes), got {describe(categories)}"
            )
        object.__setattr__(self, "num_categories", int(categories))
        if self.num_categories == 1 or self.num_categories < 0:
            raise InvalidModel(
                "num_categories: expected 0 (spin nodes) or K >= 2 (categorical nodes), "
                f"got {self.num_categories}"
            )
        object.__setattr__(self, "edges", _checked_edges(self.edges, self.num_nodes))
        if len(self.blocks) == 0:
            blocks = greedy_colouring(self.num_nodes, self.edges)
        else:
            blocks = _checked_blocks(self.blocks, self.num_nodes, self.edges)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "structure", dict(self.structure))

    # -- what backends read ----------------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def is_spin(self) -> bool:
        return self.num_categories == 0

    @property
    def node_kind(self) -> str:
        """'spin' or 'categorical'."""
        return "spin" if self.is_spin else "categorical"

    @property
    def num_states(self) -> int:
        """States per node: 2 for spins, K for categorical nodes."""
        return 2 if self.is_spin else self.num_categories

    @cached_property
    def adjacency(self) -> Adjacency:
        """Neighbour lists of every node (each edge appears in both endpoints' lists)."""
        return _adjacency(self.num_nodes, self.edges)

    @property
    def max_degree(self) -> int:
        degrees = self.adjacency.degrees()
        return int(degrees.max()) if degrees.size else 0

    @cached_property
    def block_of_node(self) -> np.ndarray:
        """The index of the block that holds each node."""
        owner = np.empty(self.num_nodes, dtype=np.int64)
        for index, block in enumerate(self.blocks):
            owner[block] = index
        return owner

    def copies(self, count: int) -> Topology:
        """`count` disjoint copies of this topology in one: a program that samples `count`
        independent models (one parameter set each) in a single call.

        Copy k holds nodes `k * N .. (k + 1) * N - 1` and edges `k * E .. (k + 1) * E - 1`, so
        per-copy parameters of shape (count, E) and (count, N) flatten row-major into the
        weights and biases, and moments reshape back the same way. Block b of the result is
        block b of every copy, so a sweep updates all copies together.
        """
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise InvalidModel(f"copies: expected an integer count >= 1, got {describe(count)}")
        count = int(count)
        node_offsets = self.num_nodes * np.arange(count)
        edges = (self.edges[None] + node_offsets[:, None, None]).reshape(-1, 2)
        blocks = tuple((block[None] + node_offsets[:, None]).ravel() for block in self.blocks)
        return Topology(
            self.num_nodes * count, edges, num_categories=self.num_categories, blocks=blocks
        )

    def __repr__(self) -> str:
        kind = "spin" if self.is_spin else f"categorical(K={self.num_categories})"
        extra = f", structure={self.structure['kind']}" if self.structure else ""
        return (
            f"Topology({kind}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"num_blocks={len(self.blocks)}{extra})"
        )

    # -- constructors of common wirings ----------------------------------------------------------
    @classmethod
    def lattice_2d(cls, rows: int, cols: int | None = None) -> Topology:
        """A periodic rows x cols square lattice (a torus).

        Node `r * cols + c` sits at row r, column c. Edge `k < N` joins node k to its right
        neighbour and edge `N + k` joins it to the neighbour below, so the weights of a lattice
        reshape to `(2, rows, cols)`. Even sizes are coloured as a checkerboard.
        """
        cols = rows if cols is None else cols
        if rows < 3 or cols < 3:
            raise InvalidModel(
                f"lattice_2d: expected rows, cols >= 3 for a periodic lattice, got {rows}x{cols}"
            )
        index = np.arange(rows * cols).reshape(rows, cols)
        right = np.stack([index.ravel(), np.roll(index, -1, axis=1).ravel()], axis=1)
        down = np.stack([index.ravel(), np.roll(index, -1, axis=0).ravel()], axis=1)
        blocks: tuple[np.ndarray, ...] = ()
        if rows % 2 == 0 and cols % 2 == 0:
            parity = (np.add.outer(np.arange(rows), np.arange(cols)) % 2).ravel()
            blocks = (np.flatnonzero(parity == 0), np.flatnonzero(parity == 1))
        return cls(
            rows * cols,
            np.concatenate([right, down]),
            blocks=blocks,
            structure={"kind": "lattice_2d", "shape": (rows, cols)},
        )

    @classmethod
    def bipartite(cls, num_visible: int, num_hidden: int, num_categories: int = 0) -> Topology:
        """A complete bipartite graph (an RBM).

        Visible nodes are `0 .. V-1`, hidden nodes `V .. V+H-1`; edge `v * H + h` joins visible v
        to hidden h, so a V x H weight matrix flattens (row-major) into the weights.
        """
        if num_visible < 1 or num_hidden < 1:
            raise InvalidModel(
                f"bipartite: expected num_visible, num_hidden >= 1, got {num_visible}, {num_hidden}"
            )
        visible = np.repeat(np.arange(num_visible), num_hidden)
        hidden = num_visible + np.tile(np.arange(num_hidden), num_visible)
        return cls(
            num_visible + num_hidden,
            np.stack([visible, hidden], axis=1),
            num_categories=num_categories,
            blocks=(np.arange(num_visible), num_visible + np.arange(num_hidden)),
            structure={"kind": "bipartite", "num_visible": num_visible, "num_hidden": num_hidden},
        )

    @classmethod
    def complete(cls, num_nodes: int, num_categories: int = 0) -> Topology:
        """Every pair of nodes joined (a dense model); one node per block."""
        rows, cols = np.triu_indices(num_nodes, k=1)
        return cls(num_nodes, np.stack([rows, cols], axis=1), num_categories=num_categories)


def _checked_edges(edges: Any, num_nodes: int) -> np.ndarray:
    array = np.asarray(edges)
    if array.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidModel(
            f"edges: expected an integer array of shape (E, 2), got {describe(array)}"
        )
    if array.dtype.kind not in "iuf" or (
        array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0))
    ):
        raise InvalidModel(f"edges: expected integer node indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    bad = np.flatnonzero((array < 0).any(axis=1) | (array >= num_nodes).any(axis=1))
    if bad.size:
        edge = tuple(array[bad[0]].tolist())
        raise InvalidModel(
            f"edges[{bad[0]}] = {edge}: node index out of range; expected nodes in "
            f"[0, {num_nodes - 1}] for num_nodes={num_nodes}"
        )
    loops = np.flatnonzero(array[:, 0] == array[:, 1])
    if loops.size:
        raise InvalidModel(
            f"edges[{loops[0]}] = {tuple(array[loops[0]].tolist())}: self-loop; expected two distinct nodes "
            "(a self-coupling of a spin is a constant: fold it into nothing, or a bias)"
        )
    low, high = np.minimum(array[:, 0], array[:, 1]), np.maximum(array[:, 0], array[:, 1])
    pair_code = low * num_nodes + high
    _, first, counts = np.unique(pair_code, return_index=True, return_counts=True)
    if (counts > 1).any():
        duplicate_code = pair_code[first[np.argmax(counts > 1)]]
        positions = np.flatnonzero(pair_code == duplicate_code)
        raise InvalidModel(
            f"edges[{positions[1]}] = {tuple(array[positions[1]].tolist())} duplicates edges[{positions[0]}]"
            f" = {tuple(array[positions[0]].tolist())}; expected each pair of nodes at most once "
            "(add the weights into one edge)"
        )
    array.setflags(write=False)
    return array


def _adjacency(num_nodes: int, edges: np.ndarray) -> Adjacency:
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    others = np.concatenate([edges[:, 1], edges[:, 0]])
    edge_ids = np.concatenate([np.arange(len(edges)), np.arange(len(edges))])
    order = np.argsort(ends, kind="stable")
    offsets = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=num_nodes), out=offsets[1:])
    return Adjacency(offsets, others[order], edge_ids[order])


def greedy_colouring(num_nodes: int, edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Colour nodes greedily, highest degree first; each colour class becomes one block."""
    adjacency = _adjacency(num_nodes, edges)
    degrees = adjacency.degrees()
    colour = np.full(num_nodes, -1, dtype=np.int64)
    for node in np.argsort(-degrees, kind="stable"):
        neighbours = adjacency.neighbours[adjacency.offsets[node] : adjacency.offsets[node + 1]]
        taken = set(colour[neighbours][colour[neighbours] >= 0].tolist())
        chosen = 0
        while chosen in taken:
            chosen += 1
        colour[node] = chosen
    return tuple(np.flatnonzero(colour == c) for c in range(int(colour.max()) + 1))


def _checked_blocks(
    blocks: Sequence[Any], num_nodes: int, edges: np.ndarray
) -> tuple[np.ndarray, ...]:
    owner = np.full(num_nodes, -1, dtype=np.int64)
    checked = []
    for index, block in enumerate(blocks):
        nodes = np.asarray(block, dtype=np.int64).ravel()
        if nodes.size == 0:
            raise InvalidModel(f"blocks[{index}]: expected a non-empty list of nodes, got none")
        if (nodes < 0).any() or (nodes >= num_nodes).any():
            raise InvalidModel(
                f"blocks[{index}]: node index out of range; expected nodes in [0, {num_nodes - 1}]"
            )
        already = nodes[owner[nodes] >= 0]
        if already.size or np.unique(nodes).size != nodes.size:
            node = int(already[0]) if already.size else int(nodes[0])
            raise InvalidModel(
                f"blocks[{index}]: node {node} is in more than one block; expected a partition"
            )
        owner[nodes] = index
        nodes.setflags(write=False)
        checked.append(nodes)
    missing = np.flatnonzero(owner < 0)
    if missing.size:
        raise InvalidModel(
            f"blocks: node {missing[0]} is in no block; expected every node in exactly one block"
        )
    inside = np.flatnonzero(owner[edges[:, 0]] == owner[edges[:, 1]]) if len(edges) else []
    if len(inside):
        edge = inside[0]
        raise InvalidModel(
            f"blocks: edges[{edge}] = {tuple(edges[edge].tolist())} joins two nodes of blocks["
            f"{owner[edges[edge, 0]]}]; expected no edge inside a block (nodes updated together "
            "must be conditionally independent); omit blocks to colour greedily"
        )
    return tuple(checked)
