"""Per-call vs per-sweep cost of the protocol path (GPU diagnosis): times sample() at several
sweep counts on the DTM-like 64x64 graph and the RBM; the slope is the cost of one sweep."""

import sys

import numpy as np

sys.path.insert(0, "benchmarks")
from jax_sim_graphs import dtm_like_graph  # noqa: E402

from tsu_core import Parameters, Topology  # noqa: E402
from tsu_jax_sim import JaxSimBackend  # noqa: E402
from tsu_jax_sim.bench import time_call  # noqa: E402

generator = np.random.default_rng(0)
cases = {"dtm64": (dtm_like_graph(64), 256), "rbm": (Topology.bipartite(784, 500), 1000)}
for name, (topology, chains) in cases.items():
    parameters = Parameters(
        generator.normal(0, 0.1, topology.num_edges).astype(np.float32),
        np.zeros(topology.num_nodes, np.float32),
    )
    for precision in ("highest", "bfloat16"):
        program = JaxSimBackend(precision=precision).compile(topology)
        for sweeps in (1, 100, 400):
            seconds = time_call(
                lambda s=sweeps, p=program, q=parameters, c=chains: (
                    p.sample(q, key=1, num_chains=c, burn_in=s - 1).final_state
                ),
                repeats=5,
            )
            print(name, precision, sweeps, f"{seconds * 1e3:.2f} ms", flush=True)
