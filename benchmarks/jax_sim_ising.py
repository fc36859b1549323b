"""2D periodic Ising lattice at beta 0.6: spin updates per nanosecond, jax-sim vs thrml.

Three implementations in one process on the same device:
  * jax-sim through the protocol (stencil layout, float32 heat bath, `program.sample`),
  * jax-sim's bit-packed multispin kernel (`tsu_jax_sim.multispin`, Metropolis, 32 chains/word),
  * thrml 0.1.4's IsingEBM with a checkerboard colouring (chains vmapped), when installed.

    python benchmarks/jax_sim_ising.py            # L=256 and 1024, 1024 chains (GPU)
    python benchmarks/jax_sim_ising.py --quick    # L=32, 64 chains (CPU, < 1 min)
"""

from __future__ import annotations

import argparse

import numpy as np
from _baselines import thrml_ising_runner
from _jsonl import emit_jax
from _timing import time_call

from tsu_core import Topology, ising2d
from tsu_core.constructors import lattice_2d
from tsu_jax_sim import JaxSimBackend
from tsu_jax_sim.multispin import PackedIsing, packed_energy_per_spin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CPU sizes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--chains", type=int, default=1024)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--packed-sweeps", type=int, default=200)
    parser.add_argument("--beta", type=float, default=0.6)
    parser.add_argument("--thrml-max-size", type=int, default=256, help="largest L run on thrml")
    parser.add_argument("--no-thrml", action="store_true")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.sizes, arguments.chains = [32], 64
        arguments.sweeps, arguments.packed_sweeps = 10, 20
    beta = arguments.beta
    for side in arguments.sizes:
        chains = arguments.chains
        topology, parameters = lattice_2d(side)
        config = {"L": side, "chains": chains, "beta": beta}
        program = JaxSimBackend().compile(topology)
        sweeps = arguments.sweeps
        seconds = time_call(
            lambda p=program, s=sweeps, q=parameters, c=chains: (
                p.sample(q, key=1, num_chains=c, burn_in=s - 1, schedule=beta).final_state
            )
        )
        updates = side * side * chains * sweeps
        ours = emit_jax(
            "ising2d spin updates",
            {**config, "impl": f"jax-sim {program.layout_kind} heat bath (protocol sample)"},
            updates / seconds / 1e9,
            "updates/ns",
        )["value"]
        model = PackedIsing(side, side)
        state = model.initial(chains, ordered=True)
        packed_sweeps = arguments.packed_sweeps
        seconds = time_call(
            lambda m=model, x=state, n=packed_sweeps: m.run(x, seed=3, beta=beta, num_sweeps=n)
        )
        packed = emit_jax(
            "ising2d spin updates",
            {**config, "impl": "jax-sim multispin packed Metropolis (32 chains/word)"},
            side * side * chains * packed_sweeps / seconds / 1e9,
            "updates/ns",
        )["value"]
        final = model.run(state, seed=4, beta=beta, num_sweeps=packed_sweeps)
        per_spin = np.asarray(packed_energy_per_spin(*final))
        exact, _ = ising2d.kaufman_energy(beta, side)
        emit_jax(
            "ising2d multispin energy per spin after the timed sweeps (ordered start)",
            {
                **config,
                "kaufman_exact": exact,
                "standard_error": float(per_spin.std(ddof=1) / np.sqrt(per_spin.size)),
            },
            float(per_spin.mean()),
            "energy/spin",
        )
        if arguments.no_thrml or side > arguments.thrml_max_size:
            continue
        try:
            topology = Topology.lattice_2d(side)
        except Exception:  # pragma: no cover
            continue
        try:
            run = thrml_ising_runner(
                topology.num_nodes,
                topology.edges,
                np.ones(topology.num_edges),
                np.zeros(topology.num_nodes),
                list(topology.blocks),
                beta,
                chains,
                sweeps,
            )
        except ImportError:
            print('{"note": "thrml not installed: pip install thrml"}')
            continue
        seconds = time_call(lambda r=run: r(5))
        theirs = emit_jax(
            "ising2d spin updates",
            {**config, "impl": "thrml 0.1.4 IsingEBM checkerboard"},
            updates / seconds / 1e9,
            "updates/ns",
        )["value"]
        emit_jax(f"ising2d ratio jax-sim {program.layout_kind} / thrml", config, ours / theirs, "x")
        emit_jax("ising2d ratio jax-sim multispin / thrml", config, packed / theirs, "x")


if __name__ == "__main__":
    main()
