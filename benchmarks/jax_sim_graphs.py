"""Sparse DTM-like graphs and a dense RBM: block Gibbs updates per nanosecond, jax-sim vs thrml.

* sparse: an n x n grid of visible spins and n x n latent spins; each visible spin joins the
  latents in its 3 x 3 window (periodic) and 3 random far latents (degree about 12), two blocks
  (visible, latent); n = 28 (1,568 nodes) and 64 (8,192 nodes), 256 chains. jax-sim compiles it
  to padded neighbour lists (gather).
* rbm: 784 visible x 500 hidden, complete bipartite, 1000 chains; jax-sim's dense layout in
  float32 ("highest") and bfloat16 weights with float32 accumulation, and a plain PyTorch RBM
  (`_baselines.torch_rbm_runner`) on the same device in both precisions. `--unroll`
  adds bfloat16 runs with other unroll depths (sweeps per loop iteration; default 8 on GPUs).

jax-sim gets its parameters as device arrays (as a training loop holds them); thrml's are
constants of its compiled model. Both time whole calls of `--sweeps` sweeps (median of 3).

    python benchmarks/jax_sim_graphs.py           # GPU sizes
    python benchmarks/jax_sim_graphs.py --quick   # small CPU sizes (< 1 min)
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
from _baselines import thrml_ising_runner, torch_rbm_runner
from _jsonl import emit_jax
from _timing import time_call

from tsu_core import Parameters, Topology
from tsu_jax_sim import JaxSimBackend
from tsu_jax_sim.fused_dense import FusedDenseSweep


def dtm_like_graph(side: int, far_edges: int = 3, seed: int = 0) -> Topology:
    """Visible node r*side+c, latent node side^2 + r*side+c; 3x3 window + far random edges."""
    generator = np.random.default_rng(seed)
    count = side * side
    rows, cols = np.divmod(np.arange(count), side)
    pairs = set()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            latent = ((rows + dr) % side) * side + (cols + dc) % side
            pairs.update(zip(np.arange(count).tolist(), (count + latent).tolist(), strict=True))
    for visible in range(count):
        added = 0
        while added < far_edges:
            pair = (visible, count + int(generator.integers(count)))
            if pair not in pairs:
                pairs.add(pair)
                added += 1
    edges = np.array(sorted(pairs), dtype=np.int64)
    return Topology(2 * count, edges, blocks=(np.arange(count), count + np.arange(count)))


def run_case(name, topology, parameters, chains, sweeps, backends, thrml) -> dict[str, float]:
    config = {
        "graph": name,
        "nodes": topology.num_nodes,
        "edges": topology.num_edges,
        "chains": chains,
        "sweeps": sweeps,
    }
    updates = topology.num_nodes * chains * sweeps
    on_device = Parameters(
        jnp.asarray(parameters.weights, jnp.float32), jnp.asarray(parameters.biases, jnp.float32)
    )
    rates = {}
    for label, backend in backends.items():
        program = backend.compile(topology)

        def timed(count: int, program=program) -> float:
            return time_call(
                lambda: (
                    program.sample(
                        on_device, key=1, num_chains=chains, burn_in=count - 1, schedule=1.0
                    ).final_state
                )
            )

        seconds = timed(sweeps)
        kernel = ", fused Pallas" if isinstance(program.node_major, FusedDenseSweep) else ""
        impl = f"jax-sim {label} ({program.layout_kind}{kernel})"
        rates[label] = emit_jax(
            "block Gibbs updates", {**config, "impl": impl}, updates / seconds / 1e9, "updates/ns"
        )["value"]
        # The sweeps alone, without the fixed cost of a call: the slope from S to 4 S sweeps.
        per_sweep = max((timed(4 * sweeps) - seconds) / (3 * sweeps), 1e-12)
        emit_jax(
            "block Gibbs updates per sweep (slope from S to 4 S sweeps)",
            {**config, "impl": impl},
            topology.num_nodes * chains / per_sweep / 1e9,
            "updates/ns",
        )
    if "bfloat16 unfused" in rates:
        ratio = rates["bfloat16"] / rates["bfloat16 unfused"]
        emit_jax("ratio jax-sim bfloat16 / bfloat16 unfused (whole calls)", config, ratio, "x")
    if not thrml:
        return rates
    try:
        run = thrml_ising_runner(
            topology.num_nodes,
            topology.edges,
            np.asarray(parameters.weights),
            np.asarray(parameters.biases),
            list(topology.blocks),
            1.0,
            chains,
            sweeps,
        )
    except ImportError:
        print('{"note": "thrml not installed: pip install thrml"}')
        return rates
    seconds = time_call(lambda: run(5))
    theirs = emit_jax(
        "block Gibbs updates",
        {**config, "impl": "thrml 0.1.4 IsingEBM"},
        updates / seconds / 1e9,
        "updates/ns",
    )["value"]
    for label, value in rates.items():
        emit_jax(f"ratio jax-sim {label} / thrml", config, value / theirs, "x")
    return rates


def compare_torch(name, topology, parameters, chains, sweeps, rates) -> None:
    """A plain PyTorch RBM (float32 and bfloat16 products) timed like the jax-sim calls, and
    the ratio of each jax-sim variant to the torch run of the same precision."""
    visible = topology.structure["num_visible"]
    hidden = topology.num_nodes - visible
    config = {"graph": name, "nodes": topology.num_nodes, "chains": chains, "sweeps": sweeps}
    updates = topology.num_nodes * chains * sweeps
    for dtype in ("float32", "bfloat16"):
        try:
            run = torch_rbm_runner(
                np.asarray(parameters.weights),
                np.asarray(parameters.biases),
                visible,
                hidden,
                chains,
                sweeps,
                dtype,
            )
        except ImportError:
            print('{"note": "torch not installed: pip install torch"}')
            return
        seconds = time_call(lambda run=run: run(5))
        impl = f"plain torch {dtype} (matmul + rand + sigmoid per half sweep)"
        theirs = emit_jax(
            "block Gibbs updates", {**config, "impl": impl}, updates / seconds / 1e9, "updates/ns"
        )["value"]
        for label, value in rates.items():
            if label.startswith(dtype):
                emit_jax(
                    f"ratio jax-sim {label} / plain torch {dtype}", config, value / theirs, "x"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sides", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--sparse-chains", type=int, default=256)
    parser.add_argument(
        "--rbm",
        type=int,
        nargs=3,
        default=[784, 500, 1000],
        metavar=("VISIBLE", "HIDDEN", "CHAINS"),
    )
    parser.add_argument("--sweeps", type=int, default=100)
    parser.add_argument("--no-thrml", action="store_true")
    parser.add_argument("--no-torch", action="store_true", help="skip the plain torch RBM")
    parser.add_argument(
        "--unroll",
        type=int,
        nargs="*",
        default=[],
        help="also time the bfloat16 RBM with these sweeps unrolled per loop iteration",
    )
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.sides, arguments.sparse_chains = [8], 32
        arguments.rbm, arguments.sweeps = [64, 32, 64], 10
    thrml = not arguments.no_thrml
    generator = np.random.default_rng(0)
    for side in arguments.sides:
        topology = dtm_like_graph(side)
        parameters = Parameters(
            generator.normal(0, 0.3, topology.num_edges),
            generator.normal(0, 0.1, topology.num_nodes),
        )
        run_case(
            f"dtm-like {side}x{side}",
            topology,
            parameters,
            arguments.sparse_chains,
            arguments.sweeps,
            {"gibbs": JaxSimBackend()},
            thrml,
        )
    visible, hidden, chains = arguments.rbm
    topology = Topology.bipartite(visible, hidden)
    parameters = Parameters(
        generator.normal(0, 0.05, topology.num_edges), generator.normal(0, 0.1, topology.num_nodes)
    )
    backends = {
        "float32": JaxSimBackend(),
        "bfloat16": JaxSimBackend(precision="bfloat16"),  # fused Pallas kernel on one GPU
    }
    if isinstance(backends["bfloat16"].compile(topology).node_major, FusedDenseSweep):
        backends["bfloat16 unfused"] = JaxSimBackend(precision="bfloat16", fused=False)
    for depth in arguments.unroll:
        backends[f"bfloat16 unroll {depth}"] = JaxSimBackend(precision="bfloat16", unroll=depth)
    name = f"rbm {visible}x{hidden}"
    rates = run_case(name, topology, parameters, chains, arguments.sweeps, backends, thrml)
    if not arguments.no_torch:
        compare_torch(name, topology, parameters, chains, arguments.sweeps, rates)


if __name__ == "__main__":
    main()
