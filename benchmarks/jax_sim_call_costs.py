"""Where the time of one `sample` call goes: each piece of the node-major program timed alone.

For the DTM-like 64x64 graph (256 chains) and the 784 x 500 RBM (1000 chains, bfloat16):
initial state, parameter preparation, packing (split), unpacking (join), energies, one sweep
(each jitted on its own), whole calls of 1, 2 and 100 sweeps, the host-side request
validation (`SampleRequest.build`), and how long a whole call keeps the host before it returns
(the device may still be working) against how long until its result is ready. Median of 10
after a warm-up; JSON lines in milliseconds.

    python benchmarks/jax_sim_call_costs.py            # GPU sizes
    python benchmarks/jax_sim_call_costs.py --quick    # small CPU sizes
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _jsonl import emit_jax
from jax_sim_graphs import dtm_like_graph

from tsu_core import Parameters, Topology
from tsu_core.request import SampleRequest
from tsu_jax_sim import JaxSimBackend, node_major


def dispatch_milliseconds(call: Callable[[], Any], repeats: int = 10) -> tuple[float, float]:
    """Median host time until `call` returns (the device may still be working), and until its
    result is ready."""
    jax.block_until_ready(call())
    returned, ready = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        returned.append(time.perf_counter() - start)
        jax.block_until_ready(result)
        ready.append(time.perf_counter() - start)
    return statistics.median(returned) * 1e3, statistics.median(ready) * 1e3


def costs(name: str, topology: Topology, chains: int, backend: JaxSimBackend) -> None:
    program = backend.compile(topology)
    plan = program.node_major
    if plan is None:
        raise SystemExit(f"{name}: this topology does not use the node-major sweep")
    generator = np.random.default_rng(0)
    weights = jnp.asarray(generator.normal(0, 0.03, topology.num_edges), jnp.float32)
    biases = jnp.zeros(topology.num_nodes, jnp.float32)
    key = jax.random.key(1)
    shape = (chains, topology.num_nodes)
    initial = jax.jit(lambda k: jnp.where(jax.random.bernoulli(k, 0.5, shape), 1.0, -1.0))
    prepare = jax.jit(plan.prepare)
    split = jax.jit(plan.split)
    states = initial(key)
    prepared = prepare(weights, biases)
    parts = split(states)
    free = plan.block_free(jnp.ones(topology.num_nodes, bool))
    keys = node_major.block_keys(key, 1, len(free))[0]
    join = jax.jit(plan.join, static_argnums=1)
    energies = jax.jit(plan.energies, static_argnums=2)
    sweep = jax.jit(
        lambda p, s: plan.sweep(p, s, keys, jnp.float32(1.0), free, program.local_sampler)
    )
    pieces = {
        "initial state": lambda: initial(key),
        "prepare parameters": lambda: prepare(weights, biases),
        "split (pack)": lambda: split(states),
        "join (unpack)": lambda: join(parts, chains),
        "energies": lambda: energies(prepared, parts, chains),
        "one sweep": lambda: sweep(prepared, parts),
    }
    parameters = Parameters(weights, biases)
    for sweeps in (1, 2, 100):
        pieces[f"whole call, {sweeps} sweeps"] = lambda n=sweeps: (
            program.sample(
                parameters, key=1, num_chains=chains, burn_in=n - 1, schedule=1.0
            ).final_state
        )
    pieces["request validation (SampleRequest.build)"] = lambda: (
        SampleRequest.build(
            topology, backend.capabilities, parameters, key=1, num_chains=chains, burn_in=99
        ).num_chains
    )
    config = {"graph": name, "nodes": topology.num_nodes, "chains": chains}
    for piece, call in pieces.items():
        ready = dispatch_milliseconds(call)[1]
        emit_jax("sample call cost", {**config, "piece": piece}, ready, "ms")
    for sweeps in (1, 100):
        returned, ready = dispatch_milliseconds(pieces[f"whole call, {sweeps} sweeps"])
        piece = f"whole call, {sweeps} sweeps"
        emit_jax("host time until the call returns", {**config, "piece": piece}, returned, "ms")
        emit_jax("time until its result is ready", {**config, "piece": piece}, ready, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    side, sparse_chains, rbm = (
        (8, 32, (64, 32, 64)) if arguments.quick else (64, 256, (784, 500, 1000))
    )
    costs(f"dtm-like {side}x{side}", dtm_like_graph(side), sparse_chains, JaxSimBackend())
    visible, hidden, chains = rbm
    for fused in (None, False):  # None: the fused Pallas kernel on one GPU
        costs(
            f"rbm {visible}x{hidden} bfloat16{' unfused' if fused is False else ''}",
            Topology.bipartite(visible, hidden),
            chains,
            JaxSimBackend(precision="bfloat16", fused=fused),
        )


if __name__ == "__main__":
    main()
