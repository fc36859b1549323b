"""Simulated annealing through the protocol vs dwave-samplers' SimulatedAnnealingSampler.

Two instances: a 2D +-J spin glass on a periodic L x L lattice (L=64) and a
Sherrington-Kirkpatrick model (N=1000, Gaussian couplings / sqrt(N)). Both samplers run the same
number of Metropolis sweeps with the same geometric beta schedule from the same number of
starts; we report the median and best energy per spin and the wall time of each (CPU figures).
jax-sim runs `JaxSimBackend(sampler="metropolis")` with `schedule=geometric(b0, b1)`; the SK
graph colours into N one-node blocks, which jax-sim loops over on device (sequential
single-spin Metropolis).

    python benchmarks/jax_sim_anneal.py           # L=64 (32 reads), SK N=1000 (16 reads), 1000 sweeps
    python benchmarks/jax_sim_anneal.py --quick   # L=16, SK N=64, 200 sweeps
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _jsonl import emit_jax
from _timing import block

from tsu_core import Parameters, Topology, energy, geometric
from tsu_jax_sim import JaxSimBackend


def compare(
    name: str,
    topology: Topology,
    weights: np.ndarray,
    reads: int,
    sweeps: int,
    beta_range: list[float],
) -> None:
    """Anneal one instance with jax-sim (metropolis) and dwave-samplers; emit energies, times."""
    start, end = beta_range
    parameters = Parameters(weights, np.zeros(topology.num_nodes))
    config = {
        "problem": name,
        "reads": reads,
        "sweeps": sweeps,
        "beta_range": [start, end],
        "schedule": "geometric",
    }
    program = JaxSimBackend(sampler="metropolis").compile(topology)

    def ours():
        return program.sample(
            parameters, key=1, num_chains=reads, burn_in=sweeps - 1, schedule=geometric(start, end)
        )

    block(ours().final_state)  # compile
    began = time.perf_counter()
    result = ours()
    block(result.final_state)
    seconds = time.perf_counter() - began
    per_spin = energy(topology, parameters, np.asarray(result.final_state)) / topology.num_nodes
    label = {**config, "impl": "jax-sim metropolis"}
    emit_jax("SA median energy per spin", label, np.median(per_spin), "energy/spin")
    emit_jax("SA best energy per spin", label, per_spin.min(), "energy/spin")
    emit_jax("SA time", label, seconds, "s")
    try:
        from dwave.samplers import SimulatedAnnealingSampler
    except ImportError:
        print('{"note": "dwave-samplers not installed: pip install dwave-samplers"}')
        return
    # dwave's Ising energy is +sum J s s + sum h s: give it -J for our -sum J s s.
    couplings = {
        (int(i), int(j)): -float(w) for (i, j), w in zip(topology.edges, weights, strict=True)
    }
    began = time.perf_counter()
    answer = SimulatedAnnealingSampler().sample_ising(
        {},
        couplings,
        num_reads=reads,
        num_sweeps=sweeps,
        beta_range=(start, end),
        beta_schedule_type="geometric",
        seed=1,
    )
    seconds = time.perf_counter() - began
    theirs = answer.record.energy / topology.num_nodes
    label = {**config, "impl": "dwave-samplers SimulatedAnnealingSampler"}
    emit_jax("SA median energy per spin", label, np.median(theirs), "energy/spin")
    emit_jax("SA best energy per spin", label, theirs.min(), "energy/spin")
    emit_jax("SA time", label, seconds, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--reads", type=int, default=32)
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--beta-range", type=float, nargs=2, default=[0.1, 3.0])
    parser.add_argument("--sk-nodes", type=int, default=1000)
    parser.add_argument("--sk-reads", type=int, default=16)
    parser.add_argument("--sk-beta-range", type=float, nargs=2, default=[0.1, 5.0])
    parser.add_argument("--only", choices=["lattice", "sk"], default=None)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.side, arguments.reads, arguments.sweeps = 16, 16, 200
        arguments.sk_nodes, arguments.sk_reads = 64, 8
    generator = np.random.default_rng(0)
    if arguments.only in (None, "lattice"):
        side = arguments.side
        topology = Topology.lattice_2d(side)
        weights = generator.choice([-1.0, 1.0], topology.num_edges)
        compare(
            f"2D +-J spin glass {side}x{side}",
            topology,
            weights,
            arguments.reads,
            arguments.sweeps,
            arguments.beta_range,
        )
    if arguments.only in (None, "sk"):
        nodes = arguments.sk_nodes
        topology = Topology.complete(nodes)
        weights = np.random.default_rng(1).normal(0.0, 1.0, topology.num_edges) / np.sqrt(nodes)
        compare(
            f"SK N={nodes}",
            topology,
            weights,
            arguments.sk_reads,
            arguments.sweeps,
            arguments.sk_beta_range,
        )


if __name__ == "__main__":
    main()
