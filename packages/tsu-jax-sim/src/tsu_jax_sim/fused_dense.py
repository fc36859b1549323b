r"""One block of a dense (bipartite) sweep as a single Pallas kernel: fields, draws and update.

The node-major dense sweep (`node_major`) updates block $k$ with a matrix product
$F = M_k S + h$ and then an elementwise kernel that draws the uniforms and flips the spins:
two kernels per block, and the launches, not the arithmetic, set the speed of an RBM sweep on
a GPU. Here one Triton kernel (through `jax.experimental.pallas`) does both for a tile of
(nodes x chains): the bfloat16 product accumulated in float32, the uniforms, the heat-bath
draw and the clamp.

The uniforms come from Philox-4x32-10 (`philox`) under the block's key, counter
(node, chain // 4), word chain % 4, not from the threefry of the unfused sweep: the kernel's
threads compute them next to the product, so their cost adds to the sweep's, and Philox needs
fewer integer operations per word than threefry's 20 rounds. `FusedDenseSweep.uniforms` gives
the same numbers outside the kernel, so the unfused sweep with those uniforms is a
spin-for-spin reference.

Arrays are padded once per call: rows of every block and chains to multiples of the tile
(`Tiling`, one for all blocks or one per block); padded rows of the matrices are zero, so
padded spins never reach a real field, and padded rows are never updated (they are not free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from tsu_jax_sim.node_major import (
    BlockDenseParameters,
    NodeMajorSweep,
    bipartite_shape,
    uniform_from_bits,
)
from tsu_jax_sim.philox import MulHiLo, mulhilo_portable, mulhilo_ptx, philox_bits


class Tiling(NamedTuple):
    """Tile of one kernel instance: `rows` nodes x `chains` chains, the contraction over
    source nodes in steps of `depth`; Triton's warps and pipeline stages."""

    rows: int = 64
    chains: int = 64
    depth: int = 64
    warps: int = 8
    stages: int = 3


# The fastest tiling of the 784 x 500 RBM sweep among those tried (docs/notes/jax-sim-rbm-sweep.md):
# 8 warps rather than 4; more stages, a deeper contraction step or other tiles were no faster.
# Other shapes may prefer another: `FusedDenseSweep` takes one per block.
DEFAULT_TILING = Tiling()


def pad_to(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _kernel(
    key_ref,
    beta_ref,
    matrix_ref,
    source_ref,
    bias_ref,
    free_ref,
    current_ref,
    out_ref,
    *,
    depth,
    mulhilo,
):
    # What does not need the product comes first: the small loads are issued and the random
    # bits computed before the contraction loop, so that they overlap its first matrix loads.
    rows, chains = out_ref.shape
    beta, bias, free, current = beta_ref[0], bias_ref[...], free_ref[...], current_ref[...]
    bits = tile_bits(key_ref, rows, chains, mulhilo)
    total = tile_product(matrix_ref, source_ref, depth)
    out_ref[...] = heat_bath(total, bits, beta, bias, free, current)


def tile_product(matrix_ref: Any, source_ref: Any, depth: int) -> jax.Array:
    """The tile's fields before the bias, float32 (rows, chains): its rows of the matrix times
    all source spins, in bfloat16 steps of `depth` source nodes."""
    rows, chains = matrix_ref.shape[0], source_ref.shape[1]

    def accumulate(step, total):
        start = pl.multiple_of(step * depth, depth)
        left = matrix_ref[:, pl.ds(start, depth)]
        right = source_ref[pl.ds(start, depth), :]
        return total + jnp.dot(left, right, preferred_element_type=jnp.float32)

    steps = matrix_ref.shape[1] // depth
    return jax.lax.fori_loop(0, steps, accumulate, jnp.zeros((rows, chains), jnp.float32))


def tile_bits(key_ref: Any, rows: int, chains: int, mulhilo: MulHiLo) -> jax.Array:
    """uint32 random bits of the tile (rows, chains): `philox.philox_bits` at the tile's first
    node and chain."""
    key = (key_ref[0], key_ref[1])
    first_row, first_chain = pl.program_id(0) * rows, pl.program_id(1) * chains
    return philox_bits(key, (rows, chains), first_row, first_chain, mulhilo)


def heat_bath(total, bits, beta, bias, free, current) -> jax.Array:
    """New spins of a tile from its products `total` and random `bits`: up where the uniform
    u is below sigmoid(2 beta f), f = total + bias, tested as u (1 + 2^(-2 beta f / ln 2)) < 1,
    so that the only slow operation is one exp2 (rather than exp, a division and an
    integer-to-float uniform; the spins are the same); clamped rows keep `current`. An infinite
    power gives down (u = 0 too: NaN < 1 is false)."""
    power = jnp.exp2((beta * np.float32(-2.0 / np.log(2.0))) * (total + bias))
    spin = jnp.where(uniform_from_bits(bits) * (1.0 + power) < 1.0, 1.0, -1.0)
    return jnp.where(free > 0, spin, current.astype(jnp.float32)).astype(current.dtype)


@partial(jax.jit, static_argnames=("tiling", "interpret"))
def update_block(
    matrix: jax.Array,
    source: jax.Array,
    bias: jax.Array,
    free: jax.Array,
    current: jax.Array,
    key: jax.Array,
    beta: jax.Array,
    tiling: Tiling = DEFAULT_TILING,
    interpret: bool = False,
) -> jax.Array:
    """New bfloat16 spins of one padded block, (R, C): heat bath at `beta` given the source
    blocks' spins.

    Arguments:
        matrix: (R, K) bfloat16 couplings to the source nodes (R a multiple of `tiling.rows`,
            K of `tiling.depth`).
        source: (K, C) bfloat16 spins of the source nodes (C a multiple of `tiling.chains`).
        bias: (R, 1) float32; free: (R, 1) float32, 1 where the node may change.
        current: (R, C) bfloat16 spins of the block.
        key: (2,) uint32 key of the block's Philox draws; beta: (1,) float32.
    """
    rows, depth = matrix.shape
    chains = source.shape[1]
    if rows % tiling.rows or depth % tiling.depth or chains % tiling.chains:
        raise ValueError(
            f"fused dense update: shapes {matrix.shape} x {source.shape} are not padded to "
            f"{tiling.rows} rows, {tiling.depth} source nodes and {tiling.chains} chains"
        )
    tile = (tiling.rows, tiling.chains)
    whole = lambda i, j: (0,)  # noqa: E731
    mulhilo = mulhilo_portable if interpret else mulhilo_ptx
    return pl.pallas_call(
        partial(_kernel, depth=tiling.depth, mulhilo=mulhilo),
        out_shape=jax.ShapeDtypeStruct((rows, chains), current.dtype),
        grid=(rows // tiling.rows, chains // tiling.chains),
        in_specs=[
            pl.BlockSpec((2,), whole),
            pl.BlockSpec((1,), whole),
            pl.BlockSpec((tiling.rows, depth), lambda i, j: (i, 0)),
            pl.BlockSpec((depth, tiling.chains), lambda i, j: (0, j)),
            pl.BlockSpec((tiling.rows, 1), lambda i, j: (i, 0)),
            pl.BlockSpec((tiling.rows, 1), lambda i, j: (i, 0)),
            pl.BlockSpec(tile, lambda i, j: (i, j)),
        ],
        out_specs=pl.BlockSpec(tile, lambda i, j: (i, j)),
        compiler_params=plgpu.CompilerParams(num_warps=tiling.warps, num_stages=tiling.stages),
        interpret=interpret,
    )(key, beta.reshape(1).astype(jnp.float32), matrix, source, bias, free, current)


def applies(layout: Any, sampler: str) -> bool:
    """True for a heat-bath sweep of a bipartite dense layout in bfloat16 (an RBM)."""
    return (
        getattr(layout, "kind", None) == "dense"
        and layout.precision == "bfloat16"
        and sampler == "gibbs"
        and bipartite_shape(layout.topology) is not None
    )


@dataclass(frozen=True, eq=False)
class FusedDenseSweep(NodeMajorSweep):
    """`NodeMajorSweep` of a bipartite dense layout whose block updates are `update_block`
    kernels. The node-major blocks, matrices and biases are padded (see the module docstring);
    `join` drops the padding again, and the energies read the padded arrays unchanged (padded
    rows have zero fields and biases).

    Arguments:
        layout: a bipartite `dense` layout (`applies`).
        interpret: run the kernels in Pallas's interpreter (the CPU; slow: for tests).
        tiling: one tiling for every block, or one per block.
    """

    interpret: bool = False
    tiling: Tiling | Sequence[Tiling] = DEFAULT_TILING
    # Made by __post_init__: the tiling of each block, the rows each block is padded to, and
    # the multiple the chains are padded to.
    tilings: tuple[Tiling, ...] = field(init=False, repr=False)
    padded_rows: list[int] = field(init=False, repr=False)
    chain_multiple: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        tiling = self.tiling
        tilings = (tiling,) * len(self.blocks) if isinstance(tiling, Tiling) else tuple(tiling)
        if len(tilings) != len(self.blocks):
            raise ValueError(f"{len(tilings)} tilings for {len(self.blocks)} blocks")
        if any(tiling.chains % 4 for tiling in tilings):
            raise ValueError("chain tiles must be multiples of 4 (a Philox call serves 4 chains)")
        object.__setattr__(self, "tilings", tilings)
        # A block is updated in its tiling's rows and read in the depth of each block it feeds.
        padded = []
        for index, block in enumerate(self.blocks):
            readers = [
                tilings[other].depth
                for other, coupled in enumerate(self.sources)
                if index in coupled
            ]
            padded.append(pad_to(block.size, max([tilings[index].rows, *readers])))
        object.__setattr__(self, "padded_rows", padded)
        object.__setattr__(self, "chain_multiple", max(t.chains for t in tilings))

    def uniforms(self, key: jax.Array, shape: tuple[int, int]) -> list[jax.Array]:
        """The kernel's uniforms of a block (rows, words), one array per lane: chain
        `lanes * word + lane` of `philox.philox_bits`."""
        rows, words = shape
        chains = pad_to(words * self.lanes, 4)
        bits = philox_bits((key[0], key[1]), (rows, chains))[:, : words * self.lanes]
        lanes = bits.reshape(rows, words, self.lanes)
        return [uniform_from_bits(lanes[..., lane]) for lane in range(self.lanes)]

    def width(self, rows: int) -> int:
        return pad_to(rows, self.chain_multiple) // self.lanes

    def split(self, states: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(
            jnp.pad(part, ((0, rows - part.shape[0]), (0, 0)), constant_values=1.0)
            for part, rows in zip(super().split(states), self.padded_rows, strict=True)
        )

    def join(self, parts: tuple[jax.Array, ...], rows: int) -> jax.Array:
        trimmed = tuple(part[: block.size] for part, block in zip(parts, self.blocks, strict=True))
        return super().join(trimmed, rows)

    def prepare(self, weights: jax.Array, biases: jax.Array) -> BlockDenseParameters:
        prepared = super().prepare(weights, biases)
        rows = self.padded_rows
        sources = [self.sources[index][0] for index in range(len(rows))]
        matrices = tuple(
            _pad2(matrix, rows[index], rows[sources[index]])
            for index, matrix in enumerate(prepared.matrices)
        )
        padded_biases = tuple(
            _pad2(bias, rows[index], 1) for index, bias in enumerate(prepared.biases)
        )
        return BlockDenseParameters(padded_biases, matrices)

    def block_free(self, free: jax.Array) -> list[jax.Array]:
        return [
            _pad2(part[:, None].astype(jnp.float32), rows, 1)
            for part, rows in zip(super().block_free(free), self.padded_rows, strict=True)
        ]

    def sweep(
        self,
        prepared: BlockDenseParameters,
        parts: tuple[jax.Array, ...],
        keys: jax.Array,
        beta: jax.Array,
        free: list[jax.Array],
        sampler: str,
    ) -> tuple[jax.Array, ...]:
        parts = list(parts)
        for index in range(len(parts)):
            parts[index] = update_block(
                prepared.matrices[index],
                parts[self.sources[index][0]],
                prepared.biases[index],
                free[index],
                parts[index],
                keys[index],
                beta,
                tiling=self.tilings[index],
                interpret=self.interpret,
            )
        return tuple(parts)


def _pad2(array: jax.Array, rows: int, columns: int) -> jax.Array:
    return jnp.pad(array, ((0, rows - array.shape[0]), (0, columns - array.shape[1])))
