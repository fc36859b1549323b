r"""The sweep of the `neighbours` and `dense` spin layouts, with states held per block, node-major.

Inside the sweep loop the spins of block $k$ are one array with a row per node and the chains
along the row, so the fields of a block read whole, contiguous rows of the blocks coupled to
it ("sources"; for a bipartite graph, the other block only):

* neighbours: $f_{b,c} = h_b + \sum_d w_{b,d}\, s_{n(b,d),c}$, one gather of rows per padded
  neighbour slot $d$. Spins are packed `LANES` chains to a byte (bit $j$ set: chain $4p + j$
  is down), so a gather moves 2 bits per spin and every thread updates 4 chains. In blocks
  with nodes of more than `UNROLL_SLOTS` slots (hubs, such as the latents of a DTM joined to a
  whole patch) the nodes of more than `NARROW_SLOTS` come first and are summed by one gather
  of all their slots and a reduction; the compiled program stays small for any degree;
* dense: $F_k = M_k S_{\text{sources}(k)}$, one matrix product per block. Spins are bfloat16
  (+-1 is exact); the weights are cast once per call, before the loop.

Random numbers: the uniforms of block $k$ in sweep $t$ come from the threefry-2x32 block cipher
(`jax.extend.random.threefry2x32_p`, JAX's own) under the key
`fold_in(fold_in(key, t), k)`, counter (node, chain word, half); both 32-bit output words are
used, each turned into a uniform in [0, 1) with 23 random mantissa bits exactly as
`jax.random.uniform` does (`NodeMajorSweep.uniforms`; the fused RBM kernel of `fused_dense`
draws Philox instead, under the same keys). They are computed inside the fused block update,
never written to memory, and every key of the run is derived once before the loop. Each
uniform is used for one update, so the chain is the heat-bath (or Metropolis) kernel of
`sweep.update_block`, with other random numbers; the counters do not depend on how chains are
split over devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

from tsu_jax_sim import gather
from tsu_jax_sim.layouts import SpinLayout, bfloat16_product, gather_edges

LANES = {"neighbours": 4, "dense": 2}  # chains per packed word (one threefry call per 2)
# A block whose nodes have at most UNROLL_SLOTS neighbour slots sums them by unrolled gathers
# (one fused pass). In a wider block, nodes of more than NARROW_SLOTS slots take one reduction
# instead, so neither the compiled program nor the padding grows with a hub's degree.
UNROLL_SLOTS = 32
NARROW_SLOTS = 8
_BFLOAT16_ONE = 0x3F80  # bfloat16 +1.0; -1.0 adds the sign bit (1 << 15)


def applies(layout: Any, num_replicas: int) -> bool:
    """True for a spin layout this module sweeps: `neighbours` or `dense` (blocks unrolled),
    without replica exchange (tempering keeps the chain-major sweep of `sweep.py`)."""
    return (
        num_replicas == 1
        and getattr(layout, "kind", None) in LANES
        and layout.topology.is_spin
        and not layout.sequential
    )


class Tier(NamedTuple):
    """Nodes `first:stop` of a block (in `NodeMajorSweep.blocks` order) and their padded slots,
    (D, stop - first) each: the source rows, edge ids and validity; summed by unrolled gathers
    or by one reduction."""

    first: int
    stop: int
    unrolled: bool
    rows: np.ndarray
    edges: np.ndarray
    valid: np.ndarray


@partial(jax.tree_util.register_dataclass, data_fields=["biases", "slot_weights"], meta_fields=[])
@dataclass(frozen=True)
class BlockNeighbourParameters:
    """The arrays a node-major sweep of the `neighbours` layout reads, per block (in
    `NodeMajorSweep.blocks` order): the biases (|B|, 1) and, per tier, the (D, |tier|, 1)
    weights of its padded slots (0 at padding)."""

    biases: tuple[jax.Array, ...]
    slot_weights: tuple[tuple[jax.Array, ...], ...]


@partial(jax.tree_util.register_dataclass, data_fields=["biases", "matrices"], meta_fields=[])
@dataclass(frozen=True)
class BlockDenseParameters:
    """The arrays a node-major sweep of the `dense` layout reads, per block (in
    `NodeMajorSweep.blocks` order): the biases (|B|, 1) and the (|B|, sources) couplings to
    the nodes of its source blocks (None for a block coupled to none)."""

    biases: tuple[jax.Array, ...]
    matrices: tuple[jax.Array | None, ...]


BlockParameters = BlockNeighbourParameters | BlockDenseParameters


@dataclass(frozen=True, eq=False)
class NodeMajorSweep:
    """Index arrays (numpy, baked into the program) of a node-major sweep of `layout`."""

    layout: SpinLayout
    # Made from the layout by __post_init__: the node order inside each block (hubs first),
    # chains per packed word, the permutation from that order back to the topology's (None
    # when it is the same), and per block the blocks it reads ("sources").
    blocks: list[np.ndarray] = field(init=False, repr=False)
    lanes: int = field(init=False, repr=False)
    inverse: np.ndarray | None = field(init=False, repr=False)
    sources: list[tuple[int, ...]] = field(init=False, repr=False)
    # neighbours: per block, its tiers.
    tiers: list[list[Tier]] | None = field(init=False, repr=False, default=None)
    # dense: per block, the nodes of its source blocks, concatenated (None: no source).
    source_nodes: list[np.ndarray | None] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        layout = self.layout
        topology = layout.topology
        wide = _wide_nodes(layout)
        blocks = [_hubs_first(block, wide) for block in layout.blocks]
        object.__setattr__(self, "blocks", blocks)
        owner = np.zeros(topology.num_nodes, np.int32)
        position = np.zeros(topology.num_nodes, np.int32)
        for index, block in enumerate(blocks):
            owner[block] = index
            position[block] = np.arange(block.size)
        order = np.concatenate(blocks)
        object.__setattr__(self, "lanes", LANES[layout.kind])
        object.__setattr__(self, "inverse", None if _is_range(order) else np.argsort(order))
        adjacency = np.zeros((topology.num_nodes, len(blocks)), bool)
        adjacency[topology.edges[:, 0], owner[topology.edges[:, 1]]] = True
        adjacency[topology.edges[:, 1], owner[topology.edges[:, 0]]] = True
        sources = [tuple(np.flatnonzero(adjacency[block].any(0))) for block in blocks]
        object.__setattr__(self, "sources", sources)
        # Offset of each source block inside the concatenation a block reads.
        starts = []
        for coupled in sources:
            sizes = [blocks[source].size for source in coupled]
            offsets = np.zeros(len(blocks), np.int64)
            offsets[list(coupled)] = np.cumsum([0] + sizes[:-1]) if coupled else []
            starts.append(offsets)
        if layout.kind == "neighbours":
            # Per block, its tiers: consecutive ranges of its nodes, each summed one way.
            tiers = []
            for index, block in enumerate(blocks):
                hubs = int(wide[block].sum())
                bounds = [(0, hubs, False), (hubs, block.size, True)]
                tiers.append([])
                for first, stop, unrolled in bounds:
                    if stop == first:
                        continue
                    nodes = block[first:stop]
                    neighbours, present = layout.neighbours[nodes], layout.valid[nodes]
                    width = max(int(present.sum(1).max()), 1)
                    local = starts[index][owner[neighbours]] + position[neighbours]
                    rows = np.where(present, local, 0)[:, :width].T.astype(np.int32)
                    edges = layout.edge_ids[nodes][:, :width].T
                    tiers[-1].append(Tier(first, stop, unrolled, rows, edges, present[:, :width].T))
            object.__setattr__(self, "tiers", tiers)
        else:
            columns = [
                np.concatenate([blocks[source] for source in coupled]) if coupled else None
                for coupled in sources
            ]
            object.__setattr__(self, "source_nodes", columns)

    # -- conversions -----------------------------------------------------------------------------
    def width(self, rows: int) -> int:
        """Packed words per node row for `rows` chains (padded up to a multiple of the lanes)."""
        return -(-rows // self.lanes)

    def split(self, states: jax.Array) -> tuple[jax.Array, ...]:
        """(rows, N) spins -> one node-major (|B_k|, words) array per block."""
        rows = states.shape[0]
        padded = self.width(rows) * self.lanes
        if padded != rows:  # a spare chain (a copy of the last) fills the last word
            states = jnp.concatenate([states, jnp.repeat(states[-1:], padded - rows, 0)])
        parts = []
        for block in self.blocks:
            spins = gather.columns(states, block).T  # (|B|, padded)
            if self.layout.kind == "dense":
                parts.append(spins.astype(jnp.bfloat16))
                continue
            down = (spins < 0).reshape(block.size, -1, self.lanes).astype(jnp.uint8)
            shifts = jnp.arange(self.lanes, dtype=jnp.uint8)
            parts.append(jnp.sum(down << shifts, axis=-1, dtype=jnp.uint8))
        return tuple(parts)

    def join(self, parts: tuple[jax.Array, ...], rows: int) -> jax.Array:
        """The inverse of `split`: (rows, N) float32 spins."""
        spins = [self._interleave(self._spin_lanes(part)) for part in parts]
        stacked = jnp.concatenate(spins, axis=0)
        if self.inverse is not None:
            stacked = stacked[self.inverse]
        return stacked[:, :rows].T

    def _spin_lanes(self, part: jax.Array) -> list[jax.Array]:
        """The L lanes of a block's spins, float32 (|B|, words) each."""
        if self.layout.kind == "dense":
            pairs = part.astype(jnp.float32).reshape(part.shape[0], -1, self.lanes)
            return [pairs[..., lane] for lane in range(self.lanes)]
        return [1.0 - 2.0 * ((part >> lane) & 1).astype(jnp.float32) for lane in range(self.lanes)]

    def _interleave(self, lanes: list[jax.Array]) -> jax.Array:
        """Lanes (..., words) -> (..., words * L): chain L p + j is lane j of word p."""
        stacked = jnp.stack(lanes, axis=-1)
        return stacked.reshape(stacked.shape[:-2] + (-1,))

    def _pack(self, down: list[jax.Array]) -> jax.Array:
        """Lanes of booleans (True: spin -1) -> one block's packed array."""
        if self.layout.kind == "neighbours":
            word = down[0].astype(jnp.uint8)
            for lane in range(1, self.lanes):
                word = word | (down[lane].astype(jnp.uint8) << lane)
            return word
        halves = [_BFLOAT16_ONE | (flag.astype(jnp.uint32) << 15) for flag in down]
        word = halves[0] | (halves[1] << 16)  # little-endian: chain 2p in the low half
        pairs = jax.lax.bitcast_convert_type(word, jnp.bfloat16)  # (|B|, words, 2)
        return pairs.reshape(word.shape[0], -1)

    def block_free(self, free: jax.Array) -> list[jax.Array]:
        """(N,) bool, False at clamped nodes -> per block, the mask `sweep` takes."""
        return [free[block] for block in self.blocks]

    # -- parameters ------------------------------------------------------------------------------
    def prepare(self, weights: jax.Array, biases: jax.Array) -> BlockParameters:
        """Per-block arrays built from the (traced) float32 parameters once per call."""
        layout = self.layout
        blocks = self.blocks
        block_biases = tuple(biases[block][:, None] for block in blocks)
        if layout.kind == "neighbours":
            slot_weights = tuple(
                tuple(
                    jnp.where(tier.valid, gather_edges(weights, tier.edges), 0.0)[..., None]
                    for tier in tiers
                )
                for tiers in self.tiers
            )
            return BlockNeighbourParameters(block_biases, slot_weights)
        dtype = jnp.bfloat16 if layout.precision == "bfloat16" else jnp.float32
        bipartite = bipartite_shape(layout.topology)
        if bipartite is not None:
            matrix = weights.reshape(bipartite)  # edge v * H + h joins v and V + h
            return BlockDenseParameters(
                block_biases, (matrix.astype(dtype), matrix.T.astype(dtype))
            )
        topology = layout.topology
        full = jnp.zeros((topology.num_nodes, topology.num_nodes), jnp.float32)
        full = full.at[topology.edges[:, 0], topology.edges[:, 1]].set(weights)
        full = full.at[topology.edges[:, 1], topology.edges[:, 0]].set(weights)
        matrices = tuple(
            None if columns is None else full[np.ix_(block, columns)].astype(dtype)
            for block, columns in zip(blocks, self.source_nodes, strict=True)
        )
        return BlockDenseParameters(block_biases, matrices)

    # -- fields and updates ----------------------------------------------------------------------
    def field_lanes(
        self, prepared: BlockParameters, parts: tuple[jax.Array, ...], index: int
    ) -> list[jax.Array]:
        """Local fields of block `index`, float32 (|B|, words) per lane."""
        bias = prepared.biases[index]
        shape = (bias.shape[0], parts[index].shape[1])
        coupled = self.sources[index]
        if not coupled:
            fields = jnp.broadcast_to(bias, shape)
            return self._split_lanes(fields) if self._dense else [fields] * self.lanes
        source = parts[coupled[0]]
        if len(coupled) > 1:
            source = jnp.concatenate([parts[block] for block in coupled], axis=0)
        if self._dense:
            matrix = prepared.matrices[index]
            if self.layout.precision == "bfloat16":
                product = bfloat16_product(matrix, source)
            else:
                product = jnp.matmul(
                    matrix, source.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST
                )
            return self._split_lanes(product + bias)
        # Per tier, the fields of its nodes; the tiers are consecutive ranges of the block.
        fields = [
            (_unrolled_fields if tier.unrolled else _reduced_fields)(
                source, tier.rows, weights, bias[tier.first : tier.stop], self.lanes
            )
            for tier, weights in zip(self.tiers[index], prepared.slot_weights[index], strict=True)
        ]
        if len(fields) == 1:
            return fields[0]
        return [jnp.concatenate(lane, axis=0) for lane in zip(*fields, strict=True)]

    def uniforms(self, key: jax.Array, shape: tuple[int, int]) -> list[jax.Array]:
        """Uniforms of one block update, (rows, words) for each lane: threefry (`_uniforms`)."""
        return _uniforms(key, shape, self.lanes)

    @property
    def _dense(self) -> bool:
        return self.layout.kind == "dense"

    def _split_lanes(self, fields: jax.Array) -> list[jax.Array]:
        pairs = fields.reshape(fields.shape[0], -1, self.lanes)
        return [pairs[..., lane] for lane in range(self.lanes)]

    def sweep(
        self,
        prepared: BlockParameters,
        parts: tuple[jax.Array, ...],
        keys: jax.Array,
        beta: jax.Array,
        free: list[jax.Array],
        sampler: str,
    ) -> tuple[jax.Array, ...]:
        """Update every block once, in the topology's block order.

        Arguments:
            keys: (num_blocks, 2) uint32, the threefry key of each block in this sweep.
            beta: the inverse temperature of this sweep (scalar).
            free: per block, (|B_k|,) bool, False at clamped nodes.
        """
        parts = list(parts)
        for index in range(len(parts)):
            fields = self.field_lanes(prepared, parts, index)
            current = self._spin_lanes(parts[index])
            uniforms = self.uniforms(keys[index], current[0].shape)
            keep = ~free[index][:, None]
            down = []
            for local_field, spin, uniform in zip(fields, current, uniforms, strict=True):
                if sampler == "gibbs":
                    flag = uniform >= jax.nn.sigmoid(2.0 * beta * local_field)
                else:
                    flip = uniform < jnp.exp(-2.0 * beta * spin * local_field)
                    flag = flip == (spin > 0)
                down.append(jnp.where(keep, spin < 0, flag))
            parts[index] = self._pack(down)
        return tuple(parts)

    def energies(self, prepared: BlockParameters, parts: tuple[jax.Array, ...], rows: int) -> Any:
        """E(s) = -sum_i s_i (f_i + h_i) / 2 for each chain, (rows,)."""
        total = 0.0
        for index, bias in enumerate(prepared.biases):
            # Lanes stacked and contracted over nodes in one einsum: summing each lane's
            # products on its own makes XLA recompute the gathered fields per lane.
            fields = jnp.stack(self.field_lanes(prepared, parts, index))  # (L, |B|, words)
            spins = jnp.stack(self._spin_lanes(parts[index]))
            per_chain = jnp.einsum(
                "lbw,lbw->wl", fields + bias, spins, precision=jax.lax.Precision.HIGHEST
            )
            total = total + per_chain.reshape(-1)  # chain L p + j is lane j of word p
        return -0.5 * total[:rows]


def _unrolled_fields(
    source: jax.Array, rows: jax.Array, weights: jax.Array, bias: jax.Array, lanes: int
) -> list[jax.Array]:
    """Fields per lane of nodes whose slots are few: one gather of whole source rows per slot,
    fused by XLA into one pass. A set bit j means chain j of the word is down, so it adds -w."""
    shape = (bias.shape[0], source.shape[1])
    fields = [jnp.broadcast_to(bias, shape)] * lanes
    for slot in range(rows.shape[0]):
        gathered = source[rows[slot]]
        weight = weights[slot]
        fields = [
            field + jnp.where(gathered & (1 << lane) != 0, -weight, weight)
            for lane, field in enumerate(fields)
        ]
    return fields


def _reduced_fields(
    source: jax.Array, rows: jax.Array, weights: jax.Array, bias: jax.Array, lanes: int
) -> list[jax.Array]:
    """Fields per lane of nodes with many slots: all slots gathered at once, (D, |tier|,
    words), and summed over the slots (a compiled size that does not grow with D) by an einsum,
    which XLA compiles to a faster loop on the CPU than a multiply followed by a sum."""
    gathered = source[rows]
    down = (gathered[..., None] >> jnp.arange(lanes, dtype=jnp.uint8)) & 1
    signs = 1.0 - 2.0 * down.astype(jnp.float32)  # (D, |tier|, words, L)
    fields = jnp.einsum("dbwl,db->bwl", signs, weights[..., 0], precision=jax.lax.Precision.HIGHEST)
    return [fields[..., lane] + bias for lane in range(lanes)]


def _wide_nodes(layout: Any) -> np.ndarray:
    """(N,) bool: the nodes summed by a reduction: those of more than `NARROW_SLOTS` slots in
    blocks with a node of more than `UNROLL_SLOTS` (neighbours layout only)."""
    wide = np.zeros(layout.topology.num_nodes, bool)
    if layout.kind != "neighbours":
        return wide
    slots = layout.valid.sum(1)
    for block in layout.blocks:
        if slots[block].max(initial=0) > UNROLL_SLOTS:
            wide[block] = slots[block] > NARROW_SLOTS
    return wide


def _hubs_first(block: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """The block's nodes with its wide ones first (each part in the topology's order)."""
    hubs = wide[block]
    if not hubs.any():
        return block
    return np.concatenate([block[hubs], block[~hubs]])


def _uniforms(key: jax.Array, shape: tuple[int, int], lanes: int) -> list[jax.Array]:
    """`lanes` arrays of uniforms in [0, 1), from lanes / 2 threefry calls per element."""
    node = jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    word = jax.lax.broadcasted_iota(jnp.uint32, shape, 1)
    uniforms = []
    for half in range(lanes // 2):
        counter = word * np.uint32(lanes // 2) + np.uint32(half)
        for bits in threefry2x32_p.bind(key[0], key[1], node, counter):
            uniforms.append(uniform_from_bits(bits))
    return uniforms


def uniform_from_bits(bits: jax.Array) -> jax.Array:
    """uint32 random bits -> float32 uniforms in [0, 1): the top 23 bits as the mantissa of a
    float in [1, 2), minus 1, as `jax.random.uniform` does. Integer operations and a bitcast,
    so it also runs inside a Triton kernel (where an integer-to-float conversion is slower)."""
    mantissa = (bits >> np.uint32(9)) | np.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)


def block_keys(key: jax.Array, num_sweeps: int, num_blocks: int) -> jax.Array:
    """(num_sweeps, num_blocks, 2) uint32: the data of fold_in(fold_in(key, t), k)."""

    def per_sweep(step: jax.Array) -> jax.Array:
        sweep_key = jax.random.fold_in(key, step)
        blocks = jnp.arange(num_blocks, dtype=jnp.uint32)
        return jax.vmap(lambda b: jax.random.key_data(jax.random.fold_in(sweep_key, b)))(blocks)

    return jax.vmap(per_sweep)(jnp.arange(num_sweeps, dtype=jnp.uint32))


def bipartite_shape(topology: Any) -> tuple[int, int] | None:
    """(V, H) when the edges are `Topology.bipartite`'s (v * H + h) and its two blocks."""
    structure = topology.structure
    if structure.get("kind") != "bipartite" or len(topology.blocks) != 2:
        return None
    visible, hidden = structure["num_visible"], structure["num_hidden"]
    edges = topology.edges
    if (
        edges.shape[0] != visible * hidden
        or not _is_range(np.asarray(topology.blocks[0]))
        or not _is_range(np.asarray(topology.blocks[1]) - visible)
        or not np.array_equal(edges[:, 0], np.repeat(np.arange(visible), hidden))
        or not np.array_equal(edges[:, 1], visible + np.tile(np.arange(hidden), visible))
    ):
        return None
    return visible, hidden


def _is_range(indices: np.ndarray) -> bool:
    return bool(np.array_equal(indices, np.arange(indices.size)))
