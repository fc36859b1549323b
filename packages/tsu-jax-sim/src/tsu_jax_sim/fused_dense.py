r"""One block of a dense (bipartite) sweep as a single Pallas kernel: fields, draws and update.

The node-major dense sweep (`node_major`) updates block $k$ with a matrix product
$F = M_k S + h$ and then an elementwise kernel that draws the uniforms and flips the spins:
two kernels per block, and the launches, not the arithmetic, set the speed of an RBM sweep on
a GPU. Here one Triton kernel (through `jax.experimental.pallas`) does both for a tile of
(nodes x chains): the bfloat16 product accumulated in float32, the threefry-2x32 uniforms of
`node_major._uniforms` (the same key, counter (node, chain // 2) and output word chain % 2, so
the same key gives the same uniforms), the heat-bath draw and the clamp.

Arrays are padded once per call: rows of every block and chains to multiples of the tile
(`Tiling`, one for all blocks or one per block); padded rows of the matrices are zero, so
padded spins never reach a real field, and padded rows are never updated (they are not free).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from tsu_jax_sim.node_major import NodeMajorSweep, bipartite_shape, uniform_from_bits


class Tiling(NamedTuple):
    """Tile of one kernel instance: `rows` nodes x `chains` chains, the contraction over
    source nodes in steps of `depth`; Triton's warps and pipeline stages."""

    rows: int = 64
    chains: int = 64
    depth: int = 64
    warps: int = 8
    stages: int = 3


# 784 x 500 RBM, 1000 chains, H200 (benchmarks/jax_sim_rbm_kernel.py, seven runs): 8 warps
# 13.8-15.2 us a sweep, 0.6-2.3 us less than 4 warps in each run; 64 x 128 chains 18-21 us,
# 64 x 32 17-18 us; blocks held as int8 (converted in the kernel) 21-35 us; 4 pipeline stages
# or contraction steps of 128 no faster; another tiling for the visible block (64 x 128,
# 128 x 64, 32 x 128) 14.2-15.5 us against 13.8 in the same run.
DEFAULT_TILING = Tiling()
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def pad_to(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def threefry2x32(
    key0: jax.Array, key1: jax.Array, x0: jax.Array, x1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), the block cipher of `jax.random`,
    written with uint32 adds, shifts and xors only, so that it runs inside a Triton kernel."""
    schedule = (key0, key1, key0 ^ key1 ^ np.uint32(_PARITY))
    x0, x1 = x0 + schedule[0], x1 + schedule[1]
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(rotation)) | (x1 >> np.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _kernel(
    key_ref, beta_ref, matrix_ref, source_ref, bias_ref, free_ref, current_ref, out_ref, *, depth
):
    # What does not need the product comes first: the small loads are issued and the random
    # bits computed before the contraction loop, so that they overlap its first matrix loads
    # (0.5-0.75 us less of a 14-15 us RBM sweep on an H200, benchmarks/jax_sim_rbm_kernel.py).
    rows, chains = out_ref.shape
    beta, bias, free, current = beta_ref[0], bias_ref[...], free_ref[...], current_ref[...]
    bits = tile_bits(key_ref, rows, chains)
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


def tile_bits(key_ref: Any, rows: int, chains: int) -> jax.Array:
    """uint32 random bits of the tile, those of `node_major._uniforms`: threefry at counter
    (node, chain // 2), output word chain % 2. One call serves two chains: the calls run on a
    (rows, chains / 2) array and their two words are interleaved along the chains."""
    half = chains // 2
    node = pl.program_id(0) * rows + jax.lax.broadcasted_iota(jnp.int32, (rows, half), 0)
    pair = pl.program_id(1) * half + jax.lax.broadcasted_iota(jnp.int32, (rows, half), 1)
    words = threefry2x32(key_ref[0], key_ref[1], node.astype(jnp.uint32), pair.astype(jnp.uint32))
    return jnp.stack(words, axis=-1).reshape(rows, chains)


def heat_bath(total, bits, beta, bias, free, current) -> jax.Array:
    """New spins of a tile from its products `total` and random `bits`: down where the
    uniform is at least sigmoid(2 beta (total + bias)); clamped rows keep `current`."""
    up = 1.0 / (1.0 + jnp.exp(-2.0 * beta * (total + bias)))
    spin = jnp.where(uniform_from_bits(bits) >= up, -1.0, 1.0)
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
        key: (2,) uint32 threefry key; beta: (1,) float32.
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
    return pl.pallas_call(
        partial(_kernel, depth=tiling.depth),
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


class FusedDenseSweep(NodeMajorSweep):
    """`NodeMajorSweep` of a bipartite dense layout whose block updates are `update_block`
    kernels. The node-major blocks, matrices and biases are padded (see the module docstring);
    `join` drops the padding again, and the energies read the padded arrays unchanged (padded
    rows have zero fields and biases)."""

    def __init__(
        self,
        layout: Any,
        interpret: bool = False,
        tiling: Tiling | Sequence[Tiling] = DEFAULT_TILING,
    ) -> None:
        super().__init__(layout)
        tilings = (tiling,) * len(self.blocks) if isinstance(tiling, Tiling) else tuple(tiling)
        if len(tilings) != len(self.blocks):
            raise ValueError(f"{len(tilings)} tilings for {len(self.blocks)} blocks")
        object.__setattr__(self, "interpret", interpret)
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

    def prepare(self, weights: jax.Array, biases: jax.Array) -> dict[str, Any]:
        prepared = super().prepare(weights, biases)
        rows = self.padded_rows
        sources = [self.sources[index][0] for index in range(len(rows))]
        prepared["matrices"] = [
            _pad2(matrix, rows[index], rows[sources[index]])
            for index, matrix in enumerate(prepared["matrices"])
        ]
        prepared["biases"] = [
            _pad2(bias, rows[index], 1) for index, bias in enumerate(prepared["biases"])
        ]
        return prepared

    def block_free(self, free: jax.Array) -> list[jax.Array]:
        return [
            _pad2(part[:, None].astype(jnp.float32), rows, 1)
            for part, rows in zip(super().block_free(free), self.padded_rows, strict=True)
        ]

    def sweep(
        self,
        prepared: dict[str, Any],
        parts: tuple[jax.Array, ...],
        keys: jax.Array,
        beta: jax.Array,
        free: list[jax.Array],
        sampler: str,
    ) -> tuple[jax.Array, ...]:
        parts = list(parts)
        for index in range(len(parts)):
            parts[index] = update_block(
                prepared["matrices"][index],
                parts[self.sources[index][0]],
                prepared["biases"][index],
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
