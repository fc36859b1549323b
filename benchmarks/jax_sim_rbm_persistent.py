"""Experiment: every sweep of the RBM in ONE Pallas Triton kernel, against one kernel per block
per sweep (the package's `fused_dense.update_block` in a `lax.scan`). Does removing the 2 kernel
boundaries per sweep pay for the barriers that replace them?

Kernel instance (c, k) owns chain tile c and the k-th, (k + P)-th, ... row tiles of each block;
after each block update the P instances of a chain tile meet at a barrier: each publishes the
number of block updates it has finished in its slot of a global array (an atomic max after a
CTA barrier, so that every thread's stores are released) and polls its group's slots with
atomics (acquire) until all have arrived. Chains are independent, so there is no barrier across
chain tiles. All instances must be resident at once (P x chain tiles <= what the GPU holds;
true here); Pallas's interpreter runs instances one after another, so on the CPU the script
only lowers the kernel for CUDA (a smoke test of the code).

The arithmetic, counters and tiles are those of `update_block`, so the spins are identical
(the first line reports the fraction that differ after 7 sweeps). The per-sweep time is the
slope from 200 to 800 sweeps (`jax_sim_rbm_kernel.per_sweep_seconds`). JSON lines.

    python benchmarks/jax_sim_rbm_persistent.py          # 784 x 500, 1000 chains (GPU)
    python benchmarks/jax_sim_rbm_persistent.py --quick  # CPU: lower for CUDA only
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax_sim_rbm_kernel import per_sweep_seconds, sweep_runner

from tsu_core import Topology
from tsu_jax_sim import node_major
from tsu_jax_sim.fused_dense import DEFAULT_TILING, FusedDenseSweep, heat_bath
from tsu_jax_sim.layouts import make_layout
from tsu_jax_sim.philox import mulhilo_ptx, philox_bits

ROWS, CHAINS, DEPTH = DEFAULT_TILING.rows, DEFAULT_TILING.chains, DEFAULT_TILING.depth


def _barrier(slots: Any, group: Any, me: Any, size: int, arrived: Any) -> None:
    """Wait until the `size` instances of `group` have each finished `arrived` updates."""
    plgpu.debug_barrier()  # every thread of this instance has stored its part of the tile
    plgpu.atomic_max(slots, me, arrived)
    lanes = 1 << (size - 1).bit_length()  # Triton arrays: power-of-2 sizes
    lane = jax.lax.broadcasted_iota(jnp.int32, (lanes,), 0)

    def poll(_: Any) -> Any:
        seen = plgpu.atomic_or(
            slots, pl.ds(group * size, lanes), jnp.zeros((lanes,), jnp.int32), mask=lane < size
        )
        return jnp.min(jnp.where(lane < size, seen, arrived))

    jax.lax.while_loop(lambda least: least < arrived, poll, jnp.int32(0))
    plgpu.debug_barrier()


def _tile(matrix, bias, free, out, source, key0, key1, beta, row0, chain0) -> None:
    """`fused_dense._kernel` on the tile at (row0, chain0) of a whole-array block `out`: the
    small loads and the random bits first, then the product and the heat bath."""
    bias, free = bias[pl.ds(row0, ROWS), :], free[pl.ds(row0, ROWS), :]
    current = out[pl.ds(row0, ROWS), pl.ds(chain0, CHAINS)]
    bits = philox_bits((key0, key1), (ROWS, CHAINS), row0, chain0, mulhilo_ptx)

    def accumulate(step: Any, total: Any) -> Any:
        start = pl.multiple_of(step * DEPTH, DEPTH)
        left = matrix[pl.ds(row0, ROWS), pl.ds(start, DEPTH)]
        right = source[pl.ds(start, DEPTH), pl.ds(chain0, CHAINS)]
        return total + jnp.dot(left, right, preferred_element_type=jnp.float32)

    steps = matrix.shape[1] // DEPTH
    total = jax.lax.fori_loop(0, steps, accumulate, jnp.zeros((ROWS, CHAINS), jnp.float32))
    new = heat_bath(total, bits, beta, bias, free, current)
    out[pl.ds(row0, ROWS), pl.ds(chain0, CHAINS)] = new


def _row_tiles(block: tuple, keys: tuple, beta: Any, group: Any, rank: Any, size: int, tiles: int):
    """This instance's row tiles of one block (rank, rank + size, ...) in its chain tile."""
    matrix, bias, free, out, source = block

    def tile(step: Any, carry: Any) -> Any:
        row_tile = rank + step * size

        @pl.when(row_tile < tiles)
        def _() -> None:
            row0 = pl.multiple_of(row_tile * ROWS, ROWS)
            _tile(matrix, bias, free, out, source, *keys, beta, row0, group * CHAINS)

        return carry

    jax.lax.fori_loop(0, -(-tiles // size), tile, 0)


def _kernel(keys, betas, m0, m1, b0, f0, b1, f1, _p0, _p1, _slots, p0, p1, slots, *, size, tiles):
    me = pl.program_id(0)
    group, rank = me // size, me % size
    blocks = ((m0, b0, f0, p0, p1), (m1, b1, f1, p1, p0))  # (matrix, bias, free, out, source)

    def one_sweep(sweep: Any, carry: Any) -> Any:
        for index, block in enumerate(blocks):
            block_keys = (keys[4 * sweep + 2 * index], keys[4 * sweep + 2 * index + 1])
            _row_tiles(block, block_keys, betas[sweep], group, rank, size, tiles[index])
            _barrier(slots, group, me, size, 2 * sweep + index + 1)
        return carry

    jax.lax.fori_loop(0, betas.shape[0], one_sweep, 0)


@partial(jax.jit, static_argnames=("size", "warps"))
def run_persistent(prepared, free, parts, keys, betas, size: int, warps: int = 8) -> Any:
    """All `keys.shape[0]` sweeps of a `FusedDenseSweep`'s padded blocks in one kernel, with
    `size` instances per chain tile."""
    (m0, m1), (b0, b1), (f0, f1), (p0, p1) = (
        prepared["matrices"],
        prepared["biases"],
        free,
        parts,
    )
    tiles = (m0.shape[0] // ROWS, m1.shape[0] // ROWS)
    count = p0.shape[1] // CHAINS * size
    slots = jnp.zeros((count + size,), jnp.int32)  # room for the last group's padded poll
    args = (keys.reshape(-1), betas.astype(jnp.float32), m0, m1, b0, f0, b1, f1, p0, p1, slots)

    def whole(array: Any) -> pl.BlockSpec:
        return pl.BlockSpec(array.shape, lambda i: (0,) * array.ndim)

    out = pl.pallas_call(
        partial(_kernel, size=size, tiles=tiles),
        out_shape=tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (p0, p1, slots)),
        grid=(count,),
        in_specs=[whole(array) for array in args],
        out_specs=tuple(whole(array) for array in (p0, p1, slots)),
        input_output_aliases={8: 0, 9: 1, 10: 2},
        compiler_params=plgpu.CompilerParams(num_warps=warps, num_stages=DEFAULT_TILING.stages),
    )(*args)
    return out[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    visible, hidden, chains = (100, 70, 130) if arguments.quick else (784, 500, 1000)
    topology = Topology.bipartite(visible, hidden)
    generator = np.random.default_rng(0)
    weights = jnp.asarray(generator.normal(0, 0.05, topology.num_edges), jnp.float32)
    biases = jnp.asarray(generator.normal(0, 0.1, topology.num_nodes), jnp.float32)
    states = jnp.where(jnp.asarray(generator.random((chains, topology.num_nodes))) < 0.5, 1.0, -1.0)
    on_cpu = jax.devices()[0].platform == "cpu"
    plan = FusedDenseSweep(make_layout(topology, "dense", "bfloat16"), interpret=on_cpu)
    prepared, parts = plan.prepare(weights, biases), plan.split(states)
    clamped = jnp.ones(topology.num_nodes, bool).at[5].set(False)
    free = plan.block_free(clamped)
    tiles = [rows // ROWS for rows in plan.padded_rows]
    config = {"visible": visible, "hidden": hidden, "chains": chains}

    def persistent(size: int, warps: int = 8) -> Any:
        def run(sweeps: int) -> Any:
            keys = node_major.block_keys(jax.random.key(1), sweeps, 2)
            return run_persistent(prepared, free, parts, keys, jnp.ones(sweeps), size, warps)

        return run

    if on_cpu:  # instances run one at a time in the interpreter: lower for CUDA only
        keys = node_major.block_keys(jax.random.key(1), 3, 2)
        lowered = run_persistent.trace(
            prepared, free, parts, keys, jnp.ones(3), size=max(tiles)
        ).lower(lowering_platforms=("cuda",))
        emit_jax("lowered for CUDA (bytes of StableHLO)", config, len(lowered.as_text()), "bytes")
        return

    per_block = sweep_runner(plan, weights, biases, states, clamped)
    reference = [np.asarray(part) for part in per_block(7)]
    ours = [np.asarray(part) for part in persistent(max(tiles))(7)]
    differ = np.mean([np.mean(a != b) for a, b in zip(ours, reference, strict=True)])
    emit_jax(
        "persistent vs per-block kernels: spins that differ after 7 sweeps", config, differ, ""
    )
    variants = {
        "one kernel per block per sweep (lax.scan)": per_block,
        f"persistent, {max(tiles)} instances per chain tile, 8 warps": persistent(max(tiles)),
        f"persistent, {max(tiles)} instances per chain tile, 4 warps": persistent(max(tiles), 4),
        f"persistent, {min(tiles)} instances per chain tile, 8 warps": persistent(min(tiles)),
    }
    updates = topology.num_nodes * chains
    for name, run in variants.items():
        seconds = per_sweep_seconds(run, 200)
        emit_jax("microseconds per sweep", {**config, "impl": name}, seconds * 1e6, "us")
        emit_jax(
            "updates per ns (per sweep)", {**config, "impl": name}, updates / seconds / 1e9, ""
        )


if __name__ == "__main__":
    main()
