"""A program's first call as a user meets it: compile, sample, read back, in a fresh process.

For each workload (the DTM-like 64x64 graph with 256 chains, the 784 x 500 RBM with 1000 chains,
the 2D lattice L = 256 with 1024 chains; 100 sweeps each) a child process builds the model,
compiles it and times `program.sample(...)` until `np.asarray(result.final_state)` returns:

* jax-sim with an empty compilation cache (cold), then again in a new process with the cache
  the first one filled (cached: `tsu_jax_sim.cache`);
* thrml through `tsu-thrml`, with JAX's persistent cache off (as that backend runs by default).

Each child is one process start, so the times include tracing and compilation but not Python's
or JAX's import. JSON lines: seconds per first call and the ratios jax-sim / thrml.

    python benchmarks/jax_sim_first_call.py            # GPU sizes
    python benchmarks/jax_sim_first_call.py --quick    # small CPU sizes (about a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _jsonl import emit

WORKLOADS = {  # name: (size, chains) at GPU size and --quick size
    "dtm-like": ((64, 256), (8, 16)),
    "rbm": ((784, 500, 1000), (64, 32, 16)),
    "lattice": ((256, 1024), (16, 16)),
}
SWEEPS = 100


def build(workload: str, size: tuple[int, ...]):
    """(topology, parameters, chains) of a workload."""
    import tsu_core

    generator = np.random.default_rng(0)
    if workload == "dtm-like":
        from jax_sim_graphs import dtm_like_graph

        topology = dtm_like_graph(size[0])
        parameters = tsu_core.Parameters(
            generator.normal(0, 0.3, topology.num_edges),
            generator.normal(0, 0.1, topology.num_nodes),
        )
        return topology, parameters, size[1]
    if workload == "rbm":
        visible, hidden, chains = size
        topology, parameters = tsu_core.bipartite(generator.normal(0, 0.05, (visible, hidden)))
        return topology, parameters, chains
    topology, parameters = tsu_core.lattice_2d(size[0], coupling=0.6)
    return topology, parameters, size[1]


def child(workload: str, backend_name: str, quick: bool) -> None:
    """Time one first call in this process and print it as one JSON object."""
    import tsu_core

    size = WORKLOADS[workload][1 if quick else 0]
    topology, parameters, chains = build(workload, size)
    backend = tsu_core.get_backend(backend_name)
    started = time.perf_counter()
    program = backend.compile(topology)
    result = program.sample(parameters, key=1, num_chains=chains, num_samples=1, burn_in=SWEEPS - 1)
    np.asarray(result.final_state)
    seconds = time.perf_counter() - started
    from _jsonl import jax_device

    print(json.dumps({"seconds": seconds, "device": jax_device()}))


def first_call(workload: str, backend: str, quick: bool, cache: str | None) -> dict:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("JAX_COMPILATION_CACHE_DIR", "TSU_JAX_SIM_CACHE")
    }
    environment["TSU_JAX_SIM_CACHE"] = cache or "off"
    command = [sys.executable, __file__, "--child", workload, backend] + (["--quick"] * quick)
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{workload} on {backend} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--no-thrml", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "BACKEND"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(*arguments.child, arguments.quick)
        return
    for workload in arguments.workloads:
        size = WORKLOADS[workload][1 if arguments.quick else 0]
        config = {"workload": workload, "size": list(size), "sweeps": SWEEPS}
        with tempfile.TemporaryDirectory() as cache:
            cold = first_call(workload, "jax-sim", arguments.quick, cache)
            cached = first_call(workload, "jax-sim", arguments.quick, cache)
        device = cold["device"]
        emit(
            "first call, empty cache",
            {**config, "backend": "jax-sim"},
            cold["seconds"],
            "s",
            device,
        )
        emit("first call, cached", {**config, "backend": "jax-sim"}, cached["seconds"], "s", device)
        if arguments.no_thrml:
            continue
        thrml = first_call(workload, "thrml", arguments.quick, None)
        emit("first call", {**config, "backend": "thrml"}, thrml["seconds"], "s", device)
        for name, run in (("empty cache", cold), ("cached", cached)):
            emit(f"ratio jax-sim ({name}) / thrml, first call", config,
                 run["seconds"] / thrml["seconds"], "x", device)  # fmt: skip


if __name__ == "__main__":
    main()
