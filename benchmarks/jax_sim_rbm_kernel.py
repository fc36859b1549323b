"""The RBM sweep alone: the fused Pallas block update (`tsu_jax_sim.fused_dense`) at several
tilings vs the two-kernel node-major sweep, and a floor of two bfloat16 matrix products per
sweep (no random numbers: `sign(M S)`).

Diagnostics run last, each the default tiling with one part of the kernel swapped while it
traces (timing only, wrong samples): the threefry rounds replaced by one multiply-xor, the
product left out, and both left out (what the launches and the heat bath cost). Differences
between them place the time inside the kernel. Experiments (correct samples, not yet in the
package) follow: the blocks held as int8, and the product computed with the states tile as
the first operand of the matrix instruction.

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

TILINGS = [
    Tiling(64, 64, 64, 8, 3),  # the default
    Tiling(64, 64, 64, 4, 3),
    Tiling(64, 64, 128, 8, 3),
    Tiling(64, 64, 64, 8, 4),
    Tiling(64, 32, 64, 8, 3),
    Tiling(64, 128, 64, 8, 3),
    Tiling(128, 64, 64, 8, 3),
    Tiling(32, 64, 64, 4, 3),
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


class Int8Blocks(FusedDenseSweep):
    """Experiment: the blocks held as int8 between kernels (half the bytes of the states a
    tile reads; the kernel converts them to bfloat16)."""

    def split(self, states: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(part.astype(jnp.int8) for part in super().split(states))


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


EXPERIMENTS = {  # name -> (plan class, module attributes swapped while the kernel traces)
    "int8 blocks": (Int8Blocks, {}),
    "int8 blocks, states as the first operand": (
        Int8Blocks,
        {"tile_product": states_as_a_operand},
    ),
    "bfloat16 blocks, states as the first operand": (
        FusedDenseSweep,
        {"tile_product": states_as_a_operand},
    ),
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
    arguments = parser.parse_args()
    visible, hidden, chains = (64, 32, 128) if arguments.quick else (784, 500, 1000)
    sweeps = 4 if arguments.quick else arguments.sweeps
    tilings = TILINGS[:2] if arguments.quick else TILINGS
    topology = Topology.bipartite(visible, hidden)
    layout = make_layout(topology, "dense", "bfloat16")
    generator = np.random.default_rng(0)
    weights = jnp.asarray(generator.normal(0, 0.05, topology.num_edges), jnp.float32)
    biases = jnp.asarray(generator.normal(0, 0.1, topology.num_nodes), jnp.float32)
    states = jnp.where(jnp.asarray(generator.random((chains, topology.num_nodes))) < 0.5, 1.0, -1.0)
    interpret = jax.devices()[0].platform == "cpu"
    variants = {"two kernels (XLA matmul + fused update)": node_major.NodeMajorSweep(layout)}
    for tiling in tilings:
        variants[f"fused Pallas {tuple(tiling)}"] = FusedDenseSweep(layout, interpret, tiling)
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
    for name, (kind, swaps) in EXPERIMENTS.items():
        plan = kind(layout, interpret, tilings[0])
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
