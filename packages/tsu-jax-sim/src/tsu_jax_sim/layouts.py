r"""Interaction layouts: how the local fields of a block are computed on device.

A layout turns a `Topology` (fixed, numpy) into index arrays baked into the compiled program,
and turns `Parameters` (traced, new on every call) into the arrays its sweeps read. Every layout
computes the same quantities, written in `tsu_core.energy`:

* spin nodes: the local field $f_i = h_i + \sum_j J_{ij} s_j$ of each node of a block;
* categorical nodes: the logits $h_i[k] + \sum_{e=(i,j)} W_e[k, x_j] + \sum_{e=(j,i)} W_e[x_j, k]$.

Three spin layouts, chosen from the topology by `choose_layout`:

| layout       | when                                               | fields of a block      |
| ------------ | -------------------------------------------------- | ---------------------- |
| `stencil`    | `structure["kind"] == "lattice_2d"`, even sides     | four `jnp.roll`s        |
| `dense`      | bipartite (RBM), or graphs of mean degree > 64      | a matrix product        |
| `neighbours` | everything else (sparse graphs of bounded degree)   | a gather over padded lists |

Categorical topologies use padded neighbour lists with one oriented K x K matrix per slot.
A layout's `prepare` returns the arrays its sweeps read as one record per kind
(`StencilParameters`, `DenseParameters`, `NeighbourParameters`, `CategoricalParameters`), each
a JAX pytree, built inside the compiled program.
The energy of a state follows from the full fields without a second pass over the edges:
$E = -\sum_i s_i (f_i + h_i) / 2$ (spins) and $E = -\sum_i (\ell_i[x_i] + h_i[x_i]) / 2$
(categorical), since every edge term appears in the fields of both its ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from tsu_core.parameters import Parameters
from tsu_core.topology import Topology
from tsu_jax_sim import gather

DENSE_FRACTION = 0.25  # edges / (N^2 / 2) above which a generic graph uses the dense layout
# Mean degree above which a generic graph uses the dense layout: a matrix product costs about
# N multiply-adds per node, a gather one per edge end, so dense wins only for dense graphs.
# (The maximum degree does not decide: hubs in a sparse graph get their own reduction.)
DENSE_DEGREE = 64
LAYOUTS = ("stencil", "dense", "neighbours")
SEQUENTIAL_BLOCKS = 32  # more blocks than this: loop over blocks on device instead of unrolling


def gather_edges(weights: jax.Array, edge_ids: np.ndarray) -> jax.Array:
    """`weights[edge_ids]` for padded neighbour lists, whose padding slots read edge 0 and are
    masked by the caller; a topology without edges has no edge 0, so its slots read zeros."""
    if weights.shape[0] == 0:
        return jnp.zeros(edge_ids.shape + weights.shape[1:], weights.dtype)
    return weights[edge_ids]


def choose_layout(topology: Topology) -> str:
    """The layout a topology is compiled with (see the module table)."""
    if not topology.is_spin:
        return "neighbours"
    kind = topology.structure.get("kind")
    if kind == "lattice_2d":
        rows, cols = topology.structure["shape"]
        if rows % 2 == 0 and cols % 2 == 0 and len(topology.blocks) == 2:
            return "stencil"
    if kind == "bipartite":
        return "dense"
    pairs = topology.num_nodes * (topology.num_nodes - 1) / 2
    if pairs and (
        topology.num_edges / pairs > DENSE_FRACTION
        or 2 * topology.num_edges / topology.num_nodes > DENSE_DEGREE
    ):
        return "dense"
    return "neighbours"


def _padded_neighbours(topology: Topology) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) neighbour, edge and validity arrays; padding points at node 0 with weight 0."""
    adjacency = topology.adjacency
    degrees = adjacency.degrees()
    width = max(int(degrees.max()) if degrees.size else 0, 1)
    neighbours = np.zeros((topology.num_nodes, width), dtype=np.int32)
    edge_ids = np.zeros((topology.num_nodes, width), dtype=np.int32)
    valid = np.zeros((topology.num_nodes, width), dtype=bool)
    for node in range(topology.num_nodes):
        start, stop = adjacency.offsets[node], adjacency.offsets[node + 1]
        count = stop - start
        neighbours[node, :count] = adjacency.neighbours[start:stop]
        edge_ids[node, :count] = adjacency.edge_ids[start:stop]
        valid[node, :count] = True
    return neighbours, edge_ids, valid


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["biases", "right", "down", "left", "up"],
    meta_fields=[],
)
@dataclass(frozen=True)
class StencilParameters:
    """The arrays a stencil sweep reads: the biases (N,) and, as (rows, cols) grids, each
    node's coupling to its right, lower, left and upper neighbour."""

    biases: jax.Array
    right: jax.Array
    down: jax.Array
    left: jax.Array
    up: jax.Array


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["biases", "matrix", "block_matrices"],
    meta_fields=[],
)
@dataclass(frozen=True)
class DenseParameters:
    """The arrays a dense sweep reads: the biases (N,), the symmetric (N, N) coupling matrix
    and, per block, its (sources, |block|) part (none when the blocks are swept in a loop,
    `SpinLayout.sequential`, which reads the whole matrix)."""

    biases: jax.Array
    matrix: jax.Array
    block_matrices: tuple[jax.Array, ...]


@partial(jax.tree_util.register_dataclass, data_fields=["biases", "slot_weights"], meta_fields=[])
@dataclass(frozen=True)
class NeighbourParameters:
    """The arrays a neighbour-list sweep reads: the biases (N,) and the (N, D) weight of each
    padded neighbour slot (0 at padding)."""

    biases: jax.Array
    slot_weights: jax.Array


SpinParameters = StencilParameters | DenseParameters | NeighbourParameters


@partial(jax.tree_util.register_dataclass, data_fields=["biases", "oriented"], meta_fields=[])
@dataclass(frozen=True)
class CategoricalParameters:
    """The arrays a categorical sweep reads: the biases (N, K) and the (N, D, K, K) matrix of
    each padded neighbour slot, rows indexed by the node's own state (0 at padding)."""

    biases: jax.Array
    oriented: jax.Array


LayoutParameters = SpinParameters | CategoricalParameters


@dataclass(frozen=True, eq=False)
class SpinLayout:
    """The spin-model fields of one topology in one of the three layouts.

    Arguments:
        kind: "stencil", "dense" or "neighbours".
        precision: matrix-product precision of the dense layout: "highest" (float32, exact
            to rounding) or "bfloat16" (bfloat16 weights, float32 accumulation; faster on
            tensor cores, weights rounded to 8 bits of mantissa).
    """

    topology: Topology
    kind: str
    precision: str = "highest"
    # Index arrays made from the topology by __post_init__. Every kind: the blocks, a mask
    # (num_blocks, N) of each, and the blocks padded with index N to one width.
    blocks: list[np.ndarray] = field(init=False, repr=False)
    block_masks: np.ndarray = field(init=False, repr=False)
    padded_blocks: np.ndarray = field(init=False, repr=False)
    # neighbours: (N, D) padded neighbour lists, their edge ids and validity.
    neighbours: np.ndarray | None = field(init=False, repr=False, default=None)
    edge_ids: np.ndarray | None = field(init=False, repr=False, default=None)
    valid: np.ndarray | None = field(init=False, repr=False, default=None)
    # dense: per block, the nodes coupled to it.
    sources: list[np.ndarray] | None = field(init=False, repr=False, default=None)
    # stencil: the lattice's (rows, cols).
    shape: tuple[int, int] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        topology = self.topology
        blocks = [np.asarray(block, dtype=np.int32) for block in topology.blocks]
        object.__setattr__(self, "blocks", blocks)
        masks = np.zeros((len(blocks), topology.num_nodes), dtype=bool)
        for index, block in enumerate(blocks):
            masks[index, block] = True
        object.__setattr__(self, "block_masks", masks)
        width = max(block.size for block in blocks)
        padded = np.full((len(blocks), width), topology.num_nodes, dtype=np.int32)
        for index, block in enumerate(blocks):
            padded[index, : block.size] = block
        object.__setattr__(self, "padded_blocks", padded)
        if self.kind == "neighbours":
            neighbours, edge_ids, valid = _padded_neighbours(topology)
            object.__setattr__(self, "neighbours", neighbours)
            object.__setattr__(self, "edge_ids", edge_ids)
            object.__setattr__(self, "valid", valid)
        elif self.kind == "dense":
            # For each block, the nodes coupled to it ("sources"): a bipartite block reads only
            # the other side, so the matrix product has exactly the edges' cost.
            dense = np.zeros((topology.num_nodes, topology.num_nodes), dtype=bool)
            dense[topology.edges[:, 0], topology.edges[:, 1]] = True
            dense[topology.edges[:, 1], topology.edges[:, 0]] = True
            sources = []
            for block in blocks:
                coupled = np.flatnonzero(dense[:, block].any(axis=1)).astype(np.int32)
                sources.append(coupled if coupled.size else np.zeros(1, dtype=np.int32))
            object.__setattr__(self, "sources", sources)
        elif self.kind == "stencil":
            rows, cols = topology.structure["shape"]
            object.__setattr__(self, "shape", (int(rows), int(cols)))
        else:
            raise ValueError(f"layout: expected one of {LAYOUTS}, got {self.kind!r}")

    @property
    def sequential(self) -> bool:
        """True when the blocks are many (e.g. a complete graph: one node per block): a sweep
        then loops over them on device (`fori_loop`) instead of unrolling one update each."""
        return self.kind == "dense" and len(self.blocks) > SEQUENTIAL_BLOCKS

    def padded_block_fields(
        self, prepared: DenseParameters, spins: jax.Array, nodes: jax.Array
    ) -> jax.Array:
        """Fields (C, width) at the (traced) padded node indices of one block (dense layout);
        padding (index N) reads node 0 and is never written."""
        safe = jnp.minimum(nodes, self.topology.num_nodes - 1)
        columns = jnp.take(prepared.matrix, safe, axis=1)
        return self._matmul(spins, columns) + prepared.biases[safe]

    @property
    def masked_update(self) -> bool:
        """True when a block is updated by computing every node and keeping the block's
        (the stencil); False when the block's nodes are gathered and scattered."""
        return self.kind == "stencil"

    # -- parameters ------------------------------------------------------------------------------
    def prepare(self, weights: jax.Array, biases: jax.Array) -> SpinParameters:
        """The arrays a sweep reads, built from the (traced) parameters once per call."""
        topology = self.topology
        if self.kind == "neighbours":
            slot_weights = jnp.where(self.valid, gather_edges(weights, self.edge_ids), 0.0)
            return NeighbourParameters(biases, slot_weights)
        if self.kind == "dense":
            matrix = jnp.zeros((topology.num_nodes, topology.num_nodes), weights.dtype)
            matrix = matrix.at[topology.edges[:, 0], topology.edges[:, 1]].set(weights)
            matrix = matrix.at[topology.edges[:, 1], topology.edges[:, 0]].set(weights)
            dtype = jnp.bfloat16 if self.precision == "bfloat16" else weights.dtype
            block_matrices = ()
            if not self.sequential:
                block_matrices = tuple(
                    matrix[np.ix_(sources, block)].astype(dtype)
                    for sources, block in zip(self.sources, self.blocks, strict=True)
                )
            return DenseParameters(biases, matrix.astype(dtype), block_matrices)
        rows, cols = self.shape
        pair = weights.reshape(2, rows, cols)
        left = jnp.roll(pair[0], 1, axis=1)  # R(r, c-1)
        up = jnp.roll(pair[1], 1, axis=0)  # D(r-1, c)
        return StencilParameters(biases, right=pair[0], down=pair[1], left=left, up=up)

    # -- fields ----------------------------------------------------------------------------------
    def _matmul(self, spins: jax.Array, matrix: jax.Array) -> jax.Array:
        if self.precision == "bfloat16":
            return bfloat16_product(spins, matrix)
        return jnp.matmul(spins, matrix, precision=jax.lax.Precision.HIGHEST)

    def block_fields(self, prepared: SpinParameters, spins: jax.Array, index: int) -> jax.Array:
        """Local fields (C, |block|) of block `index` (all nodes, (C, N), for the stencil)."""
        if self.kind == "stencil":
            return self.all_fields(prepared, spins)
        block = self.blocks[index]
        if self.kind == "neighbours":
            # Node-major gather: each gathered row holds one node's spin in every chain
            # (contiguous, coalesced), stored as bfloat16 (+-1 is exact) to halve the bytes.
            node_major = spins.T.astype(jnp.bfloat16)
            gathered = node_major[self.neighbours[block]].astype(jnp.float32)  # (B, D, C)
            weights = prepared.slot_weights[block]
            coupling = (gathered * weights[..., None]).sum(1).T
        else:
            sources = self.sources[index]
            coupling = self._matmul(gather.columns(spins, sources), prepared.block_matrices[index])
        return coupling + prepared.biases[block]

    def all_fields(self, prepared: SpinParameters, spins: jax.Array) -> jax.Array:
        """Local fields (C, N) of every node."""
        if self.kind == "neighbours":
            gathered = spins[:, self.neighbours]
            return (gathered * prepared.slot_weights).sum(-1) + prepared.biases
        if self.kind == "dense":
            return self._matmul(spins, prepared.matrix) + prepared.biases
        rows, cols = self.shape
        grid = spins.reshape(-1, rows, cols)
        # f(r,c) = R(r,c) s(r,c+1) + R(r,c-1) s(r,c-1) + D(r,c) s(r+1,c) + D(r-1,c) s(r-1,c) + h
        fields = (
            prepared.right * jnp.roll(grid, -1, axis=2)
            + prepared.left * jnp.roll(grid, 1, axis=2)
            + prepared.down * jnp.roll(grid, -1, axis=1)
            + prepared.up * jnp.roll(grid, 1, axis=1)
        )
        return fields.reshape(spins.shape) + prepared.biases

    def energies(self, prepared: SpinParameters, spins: jax.Array) -> jax.Array:
        """E(s) = -sum_i s_i (f_i + h_i) / 2 for each chain, (C,)."""
        fields = self.all_fields(prepared, spins).astype(jnp.float32)
        return -0.5 * (spins * (fields + prepared.biases)).sum(-1)

    def edge_products(self, spins: jax.Array) -> jax.Array:
        """sum over chains of s_i s_j for every edge, (E,)."""
        structure = self.topology.structure
        if structure.get("kind") == "bipartite":
            visible = structure["num_visible"]
            product = jnp.matmul(
                spins[:, :visible].T, spins[:, visible:], precision=jax.lax.Precision.HIGHEST
            )
            return product.reshape(-1)
        edges = self.topology.edges
        return (spins[:, edges[:, 0]] * spins[:, edges[:, 1]]).sum(0)


@dataclass(frozen=True, eq=False)
class CategoricalLayout:
    """Padded neighbour lists for categorical nodes, with the K x K matrix of each slot
    oriented so that its rows are indexed by the node's own state."""

    topology: Topology
    kind: ClassVar[str] = "neighbours"
    masked_update: ClassVar[bool] = False
    # Index arrays made from the topology by __post_init__: the blocks; (N, D) padded neighbour
    # lists, their edge ids, validity, and whether the node is the edge's first endpoint.
    blocks: list[np.ndarray] = field(init=False, repr=False)
    neighbours: np.ndarray = field(init=False, repr=False)
    edge_ids: np.ndarray = field(init=False, repr=False)
    valid: np.ndarray = field(init=False, repr=False)
    is_first: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        topology = self.topology
        blocks = [np.asarray(block, dtype=np.int32) for block in topology.blocks]
        object.__setattr__(self, "blocks", blocks)
        neighbours, edge_ids, valid = _padded_neighbours(topology)
        if topology.num_edges:
            first = topology.edges[edge_ids, 0] == np.arange(topology.num_nodes)[:, None]
        else:  # only padding slots, which are masked
            first = np.zeros(edge_ids.shape, dtype=bool)
        object.__setattr__(self, "neighbours", neighbours)
        object.__setattr__(self, "edge_ids", edge_ids)
        object.__setattr__(self, "valid", valid)
        object.__setattr__(self, "is_first", first)

    def prepare(self, weights: jax.Array, biases: jax.Array) -> CategoricalParameters:
        """The arrays a sweep reads, built from the (traced) parameters once per call."""
        slot = gather_edges(weights, self.edge_ids)  # (N, D, K, K), rows: first endpoint's state
        oriented = jnp.where(self.is_first[..., None, None], slot, jnp.swapaxes(slot, -1, -2))
        oriented = jnp.where(self.valid[..., None, None], oriented, 0.0)
        return CategoricalParameters(biases, oriented)

    def _logits(self, prepared: CategoricalParameters, states: jax.Array, nodes: Any) -> jax.Array:
        num_categories = self.topology.num_categories
        neighbour_states = states[:, self.neighbours[nodes]]  # (C, B, D)
        one_hot = jax.nn.one_hot(neighbour_states, num_categories, dtype=jnp.float32)
        coupling = jnp.einsum(
            "cbdl,bdkl->cbk",
            one_hot,
            prepared.oriented[nodes],
            precision=jax.lax.Precision.HIGHEST,
        )
        return coupling + prepared.biases[nodes]

    def block_fields(
        self, prepared: CategoricalParameters, states: jax.Array, index: int
    ) -> jax.Array:
        """Logits (C, |block|, K) of block `index`."""
        return self._logits(prepared, states, self.blocks[index])

    def all_fields(self, prepared: CategoricalParameters, states: jax.Array) -> jax.Array:
        return self._logits(prepared, states, np.arange(self.topology.num_nodes))

    def energies(self, prepared: CategoricalParameters, states: jax.Array) -> jax.Array:
        """E(x) = -sum_i (l_i[x_i] + h_i[x_i]) / 2 for each chain, (C,)."""
        logits = self.all_fields(prepared, states) + prepared.biases
        picked = jnp.take_along_axis(logits, states[..., None], axis=-1)[..., 0]
        return -0.5 * picked.sum(-1)

    def edge_products(self, states: jax.Array) -> jax.Array:
        """sum over chains of the joint one-hot [x_i = k][x_j = l] per edge, (E, K, K)."""
        num_categories = self.topology.num_categories
        edges = self.topology.edges
        first = jax.nn.one_hot(states[:, edges[:, 0]], num_categories, dtype=jnp.float32)
        second = jax.nn.one_hot(states[:, edges[:, 1]], num_categories, dtype=jnp.float32)
        return jnp.einsum("cek,cel->ekl", first, second)


def bfloat16_model(parameters: Parameters) -> Parameters:
    """The model the dense layout samples exactly with `precision="bfloat16"`: the weights
    rounded to bfloat16 (an 8-bit mantissa), the biases as given (added in float32)."""
    rounded = jnp.asarray(parameters.weights, jnp.float32).astype(jnp.bfloat16)
    return Parameters(np.asarray(rounded.astype(jnp.float32)), parameters.biases)


def make_layout(topology: Topology, kind: str | None = None, precision: str = "highest") -> Any:
    """The layout for a topology: `kind` forces one of the spin layouts (for tests)."""
    if not topology.is_spin:
        return CategoricalLayout(topology)
    chosen = choose_layout(topology) if kind is None else kind
    if chosen == "stencil" and choose_layout(topology) != "stencil":
        raise ValueError("layout: the stencil needs a lattice_2d topology with even sides")
    return SpinLayout(topology, chosen, precision)


def bfloat16_product(left: jax.Array, right: jax.Array) -> jax.Array:
    """`left @ right` in the "bfloat16" precision: bfloat16 operands, float32 accumulation.

    XLA's CPU runtime has no bfloat16 x bfloat16 -> float32 dot for the products it does not
    rewrite (seen with jax 0.10.2: `UNIMPLEMENTED ... DotThunk` once sweeps were unrolled), so
    on the CPU the bfloat16 operands are widened first: the same products, exact in float32."""
    left, right = left.astype(jnp.bfloat16), right.astype(jnp.bfloat16)
    return jax.lax.platform_dependent(
        left,
        right,
        cpu=lambda a, b: jnp.matmul(
            a.astype(jnp.float32), b.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST
        ),
        default=lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32),
    )
