"""The RBM sweep alone: the library's fused Pallas kernel, two kernels, and a matmul floor.

One sweep of `tsu_jax_sim.fused_dense.FusedDenseSweep` (its default tiling) against the
two-kernel node-major sweep (`node_major.NodeMajorSweep`: XLA matrix product, then the fused
update) and a floor of two bfloat16 matrix products per sweep (no random numbers: `sign(M S)`).

Each runs S and 4 S sweeps in one jitted `lax.scan` (unrolled 8 deep, as the backend does on
GPUs); the per-sweep time is the slope, so the fixed cost of a call drops out. `--rounds N`
times the three N times round robin (the GPU's clock drifts between runs timed one after
another) and reports the median. JSON lines.

The kernel variants once timed here (other tilings, threefry bits, parts of the kernel swapped
out to place its time) are described, with their figures, in docs/notes/jax-sim-rbm-sweep.md.

    python benchmarks/jax_sim_rbm_kernel.py --tilings 1 --rounds 5   # 784 x 500, 1000 chains (GPU)
    python benchmarks/jax_sim_rbm_kernel.py --quick            # small, CPU (interpreted kernel)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from _timing import time_call

from tsu_core import Topology
from tsu_jax_sim import node_major
from tsu_jax_sim.fused_dense import FusedDenseSweep
from tsu_jax_sim.layouts import make_layout

TWO_KERNELS = "two kernels (XLA matmul + fused update)"
FLOOR = "floor: two bf16 matmuls + sign, no random numbers"


def per_sweep_seconds(run: Callable[[int], Any], sweeps: int) -> float:
    """Seconds per sweep: the slope between `run(sweeps)` and `run(4 * sweeps)`."""
    short = time_call(lambda: run(sweeps), repeats=5)
    long = time_call(lambda: run(4 * sweeps), repeats=5)
    return max(long - short, 1e-12) / (3 * sweeps)


def sweep_runner(
    plan: node_major.NodeMajorSweep, weights: jax.Array, biases: jax.Array, states: jax.Array
) -> Callable[[int], Any]:
    """A function sweeps -> the plan's blocks after that many heat-bath sweeps from `states`
    (key 1, beta 1, no node clamped)."""
    prepared = jax.jit(plan.prepare)(weights, biases)
    parts = jax.jit(plan.split)(states)
    free = plan.block_free(jnp.ones(states.shape[1], bool))

    @cache  # made once per length, so that a timed call does not derive its keys
    def keys(sweeps: int) -> jax.Array:
        return node_major.block_keys(jax.random.key(1), sweeps, len(parts))

    @jax.jit
    def loop(prepared: Any, parts: Any, keys: jax.Array) -> Any:
        def body(parts: Any, block_keys: jax.Array) -> Any:
            return plan.sweep(prepared, parts, block_keys, 1.0, free, "gibbs"), None

        return jax.lax.scan(body, parts, keys, unroll=8)[0]

    return lambda sweeps: loop(prepared, parts, keys(sweeps))


def matmul_floor(
    weights: jax.Array, visible: int, hidden: int, chains: int
) -> Callable[[int], Any]:
    """A function sweeps -> the visible spins after that many sweeps of `sign` of two bfloat16
    products: the sweep without random numbers, biases or clamps."""
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
        "--tilings",
        type=int,
        choices=[1],
        default=1,
        help="how many tilings of the fused kernel to time: only its default one now; the flag "
        "stays so that the commands in the records run as written",
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
    topology = Topology.bipartite(visible, hidden)
    layout = make_layout(topology, "dense", "bfloat16")
    generator = np.random.default_rng(0)
    weights = jnp.asarray(generator.normal(0, 0.05, topology.num_edges), jnp.float32)
    biases = jnp.asarray(generator.normal(0, 0.1, topology.num_nodes), jnp.float32)
    states = jnp.where(jnp.asarray(generator.random((chains, topology.num_nodes))) < 0.5, 1.0, -1.0)
    fused = FusedDenseSweep(layout, interpret=jax.devices()[0].platform == "cpu")
    fused_name = f"fused Pallas {tuple(fused.tilings[0])}"
    runners = {
        TWO_KERNELS: sweep_runner(node_major.NodeMajorSweep(layout), weights, biases, states),
        fused_name: sweep_runner(fused, weights, biases, states),
        FLOOR: matmul_floor(weights, visible, hidden, chains),
    }
    config = {"visible": visible, "hidden": hidden, "chains": chains, "sweeps": sweeps}
    timings: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(max(arguments.rounds, 1)):
        for name, run in runners.items():
            seconds = per_sweep_seconds(run, sweeps)
            timings[name].append(seconds)
            if arguments.rounds > 1:
                row = {**config, "impl": name, "round": round_index}
                emit_jax("microseconds per sweep, one round", row, seconds * 1e6, "us")
    updates = topology.num_nodes * chains
    medians = {name: float(np.median(values)) for name, values in timings.items()}
    for name, seconds in medians.items():
        row = {**config, "impl": name, "rounds": len(timings[name])}
        emit_jax("microseconds per sweep", row, seconds * 1e6, "us")
        emit_jax("updates per ns (per sweep)", row, updates / seconds / 1e9, "updates/ns")
    ratio = medians[TWO_KERNELS] / medians[fused_name]
    emit_jax("ratio fused / two kernels (updates per ns, per sweep)", config, ratio, "x")


if __name__ == "__main__":
    main()
