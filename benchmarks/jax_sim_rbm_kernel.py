"""The RBM sweep alone: the fused Pallas block update (`tsu_jax_sim.fused_dense`) at several
tilings (one for both blocks, or one per block) vs the two-kernel node-major sweep, and a floor
of two bfloat16 matrix products per sweep (no random numbers: `sign(M S)`).

Diagnostics run last, each the default tiling with one part of the kernel swapped while it
traces (timing only, wrong samples): the threefry rounds replaced by one multiply-xor, the
product left out, and both left out (what the launches and the heat bath cost). Differences
between them place the time inside the kernel. Experiments follow, variants kept out of the
package because they measured no faster on an H200 (benchmarks/RESULTS.md): the product with
the states tile as the matrix instruction's first operand (same samples); four draws per
threefry call, 16-bit with exact ties (the decision of a 32-bit uniform, but other random
numbers than the package's); both.

Each variant runs S and 4 S sweeps in one jitted `lax.scan` (unrolled 8 deep, as the backend
does on GPUs); the per-sweep time is the slope, so the fixed cost of a call drops out. JSON lines.

    python benchmarks/jax_sim_rbm_kernel.py                    # 784 x 500, 1000 chains (GPU)
    python benchmarks/jax_sim_rbm_kernel.py --quick            # small, CPU (interpreted kernel)
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from tsu_core import Topology
from tsu_jax_sim import fused_dense, node_major
from tsu_jax_sim.bench import emit, time_call
from tsu_jax_sim.fused_dense import FusedDenseSweep, Tiling
from tsu_jax_sim.layouts import make_layout

DEFAULT = Tiling(64, 64, 64, 8, 3)
TILINGS = [  # one tiling for both blocks, or (visible, hidden)
    DEFAULT,
    (Tiling(64, 128, 64, 8, 3), DEFAULT),
    (Tiling(64, 128, 64, 4, 3), DEFAULT),
    (Tiling(64, 128, 64, 8, 4), DEFAULT),
    (Tiling(128, 64, 64, 8, 3), DEFAULT),
    (Tiling(32, 128, 64, 4, 3), DEFAULT),
    (Tiling(64, 128, 64, 8, 3), Tiling(64, 64, 64, 4, 3)),
    Tiling(64, 64, 64, 4, 3),
    Tiling(64, 128, 64, 8, 3),
]


def per_sweep_seconds(run: Any, sweeps: int) -> float:
    short = time_call(lambda: run(sweeps), repeats=5)
    long = time_call(lambda: run(4 * sweeps), repeats=5)
    return max(long - short, 1e-12) / (3 * sweeps)


def sweep_runner(plan: Any, weights: jax.Array, biases: jax.Array, states: jax.Array) -> Any:
    num_nodes = states.shape[1]
    prepared = jax.jit(plan.prepare)(weights, biases)
    parts = jax.jit(plan.split)(states)
    free = plan.block_free(jnp.ones(num_nodes, bool))
    compiled = {}

    def run(sweeps: int) -> Any:
        if sweeps not in compiled:
            keys = node_major.block_keys(jax.random.key(1), sweeps, len(parts))

            @jax.jit
            def loop(prepared: Any, parts: Any, keys: jax.Array) -> Any:
                def body(parts: Any, block_keys: jax.Array) -> Any:
                    return plan.sweep(prepared, parts, block_keys, 1.0, free, "gibbs"), None

                return jax.lax.scan(body, parts, keys, unroll=8)[0]

            compiled[sweeps] = (loop, keys)
        loop, keys = compiled[sweeps]
        return loop(prepared, parts, keys)

    return run


def cheap_bits(key0: Any, key1: Any, x0: Any, x1: Any) -> tuple[Any, Any]:
    """One multiply-xor per word instead of threefry's 20 rounds (wrong randomness)."""
    return (x0 * np.uint32(0x9E3779B9)) ^ key0, (x1 * np.uint32(0x85EBCA6B)) ^ key1


def no_product(matrix_ref: Any, source_ref: Any, depth: int) -> Any:
    return jnp.zeros((matrix_ref.shape[0], source_ref.shape[1]), jnp.float32)


DIAGNOSTICS = {  # name -> the module attributes swapped while the kernel traces
    "threefry replaced by a multiply-xor": {"threefry2x32": cheap_bits},
    "product left out": {"tile_product": no_product},
    "product left out, threefry replaced": {
        "tile_product": no_product,
        "threefry2x32": cheap_bits,
    },
}


def states_as_a_operand(matrix_ref: Any, source_ref: Any, depth: int) -> Any:
    """Experiment: the product as (S^T M^T)^T, so that the states tile (converted in registers
    when it is int8) is the first operand, which Hopper's wgmma may take from registers."""
    rows, chains = matrix_ref.shape[0], source_ref.shape[1]

    def accumulate(step: Any, total: Any) -> Any:
        start = pl.multiple_of(step * depth, depth)
        left = source_ref[pl.ds(start, depth), :].astype(jnp.bfloat16).T
        right = matrix_ref[:, pl.ds(start, depth)].T
        return total + jnp.dot(left, right, preferred_element_type=jnp.float32)

    steps = matrix_ref.shape[1] // depth
    zeros = jnp.zeros((chains, rows), jnp.float32)
    return jax.lax.fori_loop(0, steps, accumulate, zeros).T


def down_16_bit(key_ref: Any, up: Any) -> Any:
    """Experiment: four draws per threefry call. The top 16 bits of a 32-bit uniform U decide
    U >= up unless they equal floor(up 2^16); only then (about 1 spin in 65,536, a tile in
    16) a second threefry call gives U's low 16 bits: exactly a 32-bit uniform's decision.
    Counter (node, chain // 4) of the (rows, chains) tile; the halves interleaved along it."""
    rows, chains = up.shape
    quarter = chains // 4
    node = pl.program_id(0) * rows + jax.lax.broadcasted_iota(jnp.int32, (rows, quarter), 0)
    group = pl.program_id(1) * quarter + jax.lax.broadcasted_iota(jnp.int32, (rows, quarter), 1)
    node, group = node.astype(jnp.uint32), group.astype(jnp.uint32)

    def halves(x0: Any, x1: Any) -> Any:
        mask, shift = np.uint32(0xFFFF), np.uint32(16)
        pairs = (
            jnp.stack((x0 >> shift, x1 >> shift), axis=-1),
            jnp.stack((x0 & mask, x1 & mask), axis=-1),
        )
        stacked = jnp.stack(pairs, axis=-1).reshape(rows, chains)  # Triton: 2-way stacks only
        return stacked.astype(jnp.int32).astype(jnp.float32)

    high = halves(*fused_dense.threefry2x32(key_ref[0], key_ref[1], node, group))
    scaled = up * 65536.0
    level = jnp.floor(scaled)
    tie = high == level

    def low_bits() -> Any:
        marked = node | np.uint32(0x80000000)
        return halves(*fused_dense.threefry2x32(key_ref[0], key_ref[1], marked, group))

    any_tie = jnp.max(tie.astype(jnp.int32)) > 0
    low = jax.lax.cond(any_tie, low_bits, lambda: jnp.zeros((rows, chains), jnp.float32))
    return (high > level) | (tie & (low >= (scaled - level) * 65536.0))


EXPERIMENTS = {  # name -> module attributes swapped while the kernel traces
    "states as the first operand": {"tile_product": states_as_a_operand},
    "16-bit draws, exact ties": {"tile_down": down_16_bit},
    "both": {"tile_product": states_as_a_operand, "tile_down": down_16_bit},
}


def patched(run: Any, swaps: dict[str, Any]) -> Any:
    """`run` with `fused_dense`'s attributes `swaps` replaced while it traces (the caller
    clears JAX's caches first, so the kernels are traced anew)."""

    def call(sweeps: int) -> Any:
        originals = {name: getattr(fused_dense, name) for name in swaps}
        for name, value in swaps.items():
            setattr(fused_dense, name, value)
        try:
            return run(sweeps)
        finally:
            for name, value in originals.items():
                setattr(fused_dense, name, value)

    return call


def matmul_floor(weights: jax.Array, visible: int, hidden: int, chains: int) -> Any:
    matrix = weights.reshape(visible, hidden).astype(jnp.bfloat16)
    spins = jnp.ones((visible, chains), jnp.bfloat16)

    @jax.jit
    def loop(sweeps_array: jax.Array) -> Any:
        def body(v: jax.Array, _: Any) -> Any:
            h = jnp.sign(jnp.matmul(matrix.T, v, preferred_element_type=jnp.float32))
            v = jnp.sign(
                jnp.matmul(matrix, h.astype(jnp.bfloat16), preferred_element_type=jnp.float32)
            )
            return v.astype(jnp.bfloat16), None

        return jax.lax.scan(body, spins, sweeps_array, unroll=8)[0]

    return lambda sweeps: loop(jnp.zeros(sweeps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument(
        "--tilings", type=int, default=len(TILINGS), help="time the first N tilings only"
    )
    arguments = parser.parse_args()
    visible, hidden, chains = (64, 32, 128) if arguments.quick else (784, 500, 1000)
    sweeps = 4 if arguments.quick else arguments.sweeps
    tilings = TILINGS[: 2 if arguments.quick else max(arguments.tilings, 1)]
    topology = Topology.bipartite(visible, hidden)
    layout = make_layout(topology, "dense", "bfloat16")
    generator = np.random.default_rng(0)
    weights = jnp.asarray(generator.normal(0, 0.05, topology.num_edges), jnp.float32)
    biases = jnp.asarray(generator.normal(0, 0.1, topology.num_nodes), jnp.float32)
    states = jnp.where(jnp.asarray(generator.random((chains, topology.num_nodes))) < 0.5, 1.0, -1.0)
    interpret = jax.devices()[0].platform == "cpu"
    variants = {"two kernels (XLA matmul + fused update)": node_major.NodeMajorSweep(layout)}
    for tiling in tilings:
        name = tuple(tiling) if isinstance(tiling, Tiling) else tuple(map(tuple, tiling))
        variants[f"fused Pallas {name}"] = FusedDenseSweep(layout, interpret, tiling)
    config = {"visible": visible, "hidden": hidden, "chains": chains, "sweeps": sweeps}
    updates = topology.num_nodes * chains
    runners = {name: sweep_runner(plan, weights, biases, states) for name, plan in variants.items()}
    runners["floor: two bf16 matmuls + sign, no random numbers"] = matmul_floor(
        weights, visible, hidden, chains
    )
    for name, swaps in DIAGNOSTICS.items():
        plan = FusedDenseSweep(layout, interpret, tilings[0])
        runners[f"diagnostic: fused {tuple(tilings[0])}, {name}"] = patched(
            sweep_runner(plan, weights, biases, states), swaps
        )
    for name, swaps in EXPERIMENTS.items():
        plan = FusedDenseSweep(layout, interpret, tilings[0])
        runners[f"experiment: fused {tuple(tilings[0])}, {name}"] = patched(
            sweep_runner(plan, weights, biases, states), swaps
        )
    for name, run in runners.items():
        if name.startswith(("diagnostic", "experiment")):
            jax.clear_caches()
        try:
            seconds = per_sweep_seconds(run, sweeps)
        except Exception as error:  # a tiling Triton cannot compile: report it, go on
            emit("sweep failed", {**config, "impl": name, "error": repr(error)[:300]}, 0, "")
            continue
        emit("microseconds per sweep", {**config, "impl": name}, seconds * 1e6, "us")
        emit(
            "updates per ns (per sweep)",
            {**config, "impl": name},
            updates / seconds / 1e9,
            "updates/ns",
        )


if __name__ == "__main__":
    main()
