"""The RBM sweep alone: the fused Pallas block update (`tsu_jax_sim.fused_dense`) at several
tilings (one for both blocks, or one per block) vs the two-kernel node-major sweep, and a floor
of two bfloat16 matrix products per sweep (no random numbers: `sign(M S)`).

Diagnostics run last, each the default tiling with one part of the kernel swapped while it
traces: the kernel as it was until 2026-12 (threefry-2x32-20 bits; and also its heat bath
with exp and a division), and, timing only with wrong samples, Philox replaced by one
multiply-xor, the product left out, and both left out (what the launches and the heat bath
cost). Differences between them place the time inside the kernel. (Variants that were tried
here and measured no faster are listed, with their figures and the commit that held them, in
the records of benchmarks/results/tsu-jax-sim.jsonl.)

Each variant runs S and 4 S sweeps in one jitted `lax.scan` (unrolled 8 deep, as the backend
does on GPUs); the per-sweep time is the slope, so the fixed cost of a call drops out. JSON lines.

    python benchmarks/jax_sim_rbm_kernel.py                    # 784 x 500, 1000 chains (GPU)
    python benchmarks/jax_sim_rbm_kernel.py --tilings 1 --rounds 5   # default tile, 5 rounds
    python benchmarks/jax_sim_rbm_kernel.py --quick            # small, CPU (interpreted kernel)
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from _timing import time_call
from jax.experimental import pallas as pl

from tsu_core import Topology
from tsu_jax_sim import fused_dense, node_major
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


def sweep_runner(
    plan: Any, weights: jax.Array, biases: jax.Array, states: jax.Array, free: Any = None
) -> Any:
    """A function sweeps -> the plan's blocks after that many sweeps from `states` (key 1,
    beta 1; `free`: (N,) bool, False at clamped nodes, default none clamped)."""
    prepared = jax.jit(plan.prepare)(weights, biases)
    parts = jax.jit(plan.split)(states)
    free = plan.block_free(jnp.ones(states.shape[1], bool) if free is None else free)
    compiled = {}

    def run(sweeps: int) -> Any:
        if sweeps not in compiled:
            keys = node_major.block_keys(jax.random.key(1), sweeps, len(parts))

            @jax.jit
            def loop(prepared: Any, parts: Any, keys: jax.Array) -> Any:
                def body(parts: Any, block_keys: jax.Array) -> Any:
                    return plan.sweep(prepared, parts, block_keys, 1.0, free, "gibbs"), None

                return jax.lax.scan(body, parts, keys, unroll=8)[0]

            # Compiled ahead of time: later calls never trace again, so a kernel swapped in while
            # this runner traced stays its own even after other runners swap theirs.
            compiled[sweeps] = (loop.lower(prepared, parts, keys).compile(), keys)
        loop, keys = compiled[sweeps]
        return loop(prepared, parts, keys)

    return run


def multiply_xor_bits(key_ref: Any, rows: int, chains: int, mulhilo: Any) -> Any:
    """One multiply-xor per word instead of Philox's ten rounds (wrong randomness)."""
    node = jax.lax.broadcasted_iota(jnp.int32, (rows, chains), 0).astype(jnp.uint32)
    chain = jax.lax.broadcasted_iota(jnp.int32, (rows, chains), 1).astype(jnp.uint32)
    return (node * np.uint32(0x9E3779B9)) ^ (chain * np.uint32(0x85EBCA6B)) ^ key_ref[0]


def threefry_bits(key_ref: Any, rows: int, chains: int, mulhilo: Any) -> Any:
    """The kernel's bits until 2026-12: threefry-2x32-20 (JAX's cipher) at counter
    (node, chain // 2), word chain % 2. Valid random bits, other numbers than Philox's."""
    half = chains // 2
    node = pl.program_id(0) * rows + jax.lax.broadcasted_iota(jnp.int32, (rows, half), 0)
    pair = pl.program_id(1) * half + jax.lax.broadcasted_iota(jnp.int32, (rows, half), 1)
    key0, key1 = key_ref[0], key_ref[1]
    schedule = (key0, key1, key0 ^ key1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = node.astype(jnp.uint32) + key0, pair.astype(jnp.uint32) + key1
    for group in range(5):
        for rotation in ((13, 15, 26, 6), (17, 29, 16, 24))[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(rotation)) | (x1 >> np.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + schedule[(group + 2) % 3] + np.uint32(group + 1)
    return jnp.stack((x0, x1), axis=-1).reshape(rows, chains)


def division_heat_bath(total, bits, beta, bias, free, current) -> Any:
    """The kernel's heat bath until 2026-12: u >= 1 / (1 + exp(-2 beta f)) is down, the
    uniform converted from an integer. Same spins but for float rounding at a tie."""
    up = 1.0 / (1.0 + jnp.exp(-2.0 * beta * (total + bias)))
    uniform = (bits >> np.uint32(9)).astype(jnp.int32).astype(jnp.float32) * np.float32(2.0**-23)
    spin = jnp.where(uniform >= up, -1.0, 1.0)
    return jnp.where(free > 0, spin, current.astype(jnp.float32)).astype(current.dtype)


def no_product(matrix_ref: Any, source_ref: Any, depth: int) -> Any:
    return jnp.zeros((matrix_ref.shape[0], source_ref.shape[1]), jnp.float32)


DIAGNOSTICS = {  # name -> the module attributes swapped while the kernel traces
    "threefry-2x32-20 bits (the kernel until 2026-12)": {"tile_bits": threefry_bits},
    "threefry bits and the heat bath with exp and a division (the kernel until 2026-12)": {
        "tile_bits": threefry_bits,
        "heat_bath": division_heat_bath,
    },
    "bits from one multiply-xor": {"tile_bits": multiply_xor_bits},
    "product left out": {"tile_product": no_product},
    "product left out, bits from one multiply-xor": {
        "tile_product": no_product,
        "tile_bits": multiply_xor_bits,
    },
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every variant this many times, round robin (the GPU's clock drifts between "
        "variants timed one after another); report each round and the median",
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
    timings: dict[str, list[float]] = {}
    for round_index in range(max(arguments.rounds, 1)):
        for name, run in runners.items():
            if round_index == 0 and name.startswith("diagnostic"):
                jax.clear_caches()  # the swapped kernel is traced anew
            if round_index and name not in timings:
                continue  # it failed in the first round
            try:
                seconds = per_sweep_seconds(run, sweeps)
            except Exception as error:  # a tiling Triton cannot compile: report it, go on
                emit_jax(
                    "sweep failed", {**config, "impl": name, "error": repr(error)[:300]}, 0, ""
                )
                continue
            timings.setdefault(name, []).append(seconds)
            if arguments.rounds > 1:
                row = {**config, "impl": name, "round": round_index}
                emit_jax("microseconds per sweep, one round", row, seconds * 1e6, "us")
    for name, values in timings.items():
        seconds = float(np.median(values))
        row = {**config, "impl": name, "rounds": len(values)}
        emit_jax("microseconds per sweep", row, seconds * 1e6, "us")
        emit_jax("updates per ns (per sweep)", row, updates / seconds / 1e9, "updates/ns")


if __name__ == "__main__":
    main()
