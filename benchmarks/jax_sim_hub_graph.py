"""jax-sim on a graph with hubs: the reverse-step graph of bitflip-dtm's rgb64 preset.

49,664 nodes: 24,576 visible bits (degree up to 47, mean 26), 512 latents joined to a whole 10x10x6 patch
(degree 600) and 24,576 clamped noisy bits (degree 1); 481,931 edges in 25 blocks. 64 chains,
6 sweeps per call with the noisy bits clamped (one reverse step of sampling). In one process:
the node-major neighbour lists as the backend builds them (`UNROLL_SLOTS` = 32: every block has
a node of more than 32 slots, so its nodes of more than 8 are summed by a reduction), with
`UNROLL_SLOTS` = 64 (the visible bits by unrolled gathers: on the CPU 1.8x faster calls, 12x
longer compiles), and, with `--dense`, the dense layout (a 49,664^2 matrix built on every call,
about 10 GB on the GPU). JSON lines: compile seconds, milliseconds per call and updates per ns.

    python benchmarks/jax_sim_hub_graph.py            # GPU
    python benchmarks/jax_sim_hub_graph.py --dense    # GPU, also the dense layout
    python benchmarks/jax_sim_hub_graph.py --quick    # the tiny preset's graph, CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _jsonl import emit_jax

from bitflip_dtm.config import preset
from bitflip_dtm.graph import build_graph
from tsu_core import Clamp, Parameters
from tsu_jax_sim import JaxSimBackend, node_major


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--unroll", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--dense", action="store_true")
    parser.add_argument("--quick", action="store_true", help="bitflip-dtm's tiny preset, 2 calls")
    arguments = parser.parse_args()
    name = "tiny" if arguments.quick else "rgb64"
    if arguments.quick:
        arguments.repeats, arguments.unroll = 2, arguments.unroll[:1]
    graph = build_graph(preset(name))
    topology = graph.topology
    generator = np.random.default_rng(0)
    parameters = Parameters(
        generator.normal(0, 0.05, topology.num_edges), generator.normal(0, 0.1, topology.num_nodes)
    )
    noisy = np.where(generator.random((arguments.chains, graph.noisy.size)) < 0.5, 1, -1)
    clamp = Clamp(graph.noisy, noisy)
    free_updates = arguments.chains * arguments.sweeps * (graph.num_bits + graph.num_latents)
    variants = [("neighbours", unroll) for unroll in arguments.unroll]
    if arguments.dense:
        variants.append(("dense", None))
    default = node_major.UNROLL_SLOTS
    for layout, unroll in variants:
        node_major.UNROLL_SLOTS = default if unroll is None else unroll
        config = {
            "graph": f"bitflip-dtm {name} reverse step",
            "layout": layout,
            "unroll_slots": unroll,
            "chains": arguments.chains,
            "sweeps": arguments.sweeps,
        }
        program = JaxSimBackend(layout=layout).compile(topology)

        def call(key: int, program=program) -> None:
            result = program.sample(
                parameters,
                key=key,
                num_chains=arguments.chains,
                num_samples=1,
                burn_in=arguments.sweeps - 1,
                clamp=clamp,
            )
            np.asarray(result.states)

        start = time.perf_counter()
        call(0)
        emit_jax("first call (compile + run)", config, time.perf_counter() - start, "s")
        times = []
        for repeat in range(arguments.repeats):
            start = time.perf_counter()
            call(repeat + 1)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        emit_jax("call", config, median * 1e3, "ms")
        emit_jax("free spin updates per ns", config, free_updates / median / 1e9, "updates/ns")
    node_major.UNROLL_SLOTS = default


if __name__ == "__main__":
    main()
