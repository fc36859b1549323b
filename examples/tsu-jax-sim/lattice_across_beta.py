"""Sample the periodic 2D Ising lattice on the JAX simulator across beta, with block Gibbs and
with Metropolis, and compare the energy per spin with Kaufman's exact value for that lattice.

One program is compiled per topology and sampler; each beta is a new call with no recompile
(the schedule is a traced argument). Chains are split over every visible device
(`XLA_FLAGS=--xla_force_host_platform_device_count=4` gives four CPU devices).

    python examples/tsu-jax-sim/lattice_across_beta.py --quick       # CPU, seconds
    python examples/tsu-jax-sim/lattice_across_beta.py --size 64     # CPU, about a minute

Prints one row per beta: the sampled energy per spin of each sampler with its standard error
beside the exact one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tsu_core
from tsu_core import ising2d
from tsu_jax_sim import JaxSimBackend


def energy_per_spin(program, parameters, beta: float, arguments, key: int) -> tuple[float, float]:
    """Mean energy per spin and its standard error over chains (each chain averaged first)."""
    samples = program.sample(
        parameters,
        key=tsu_core.Key(key),
        num_chains=arguments.chains,
        num_samples=arguments.samples,
        burn_in=arguments.burn_in,
        thinning=5,
        schedule=beta,
        initial_state=np.ones((arguments.chains, program.topology.num_nodes), np.int8),
    )
    per_chain = np.asarray(samples.energies, dtype=np.float64).mean(1) / program.topology.num_nodes
    return float(per_chain.mean()), float(per_chain.std(ddof=1) / np.sqrt(per_chain.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32, help="L of the L x L torus (even)")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.2, 0.35, 0.44, 0.5, 0.7])
    parser.add_argument("--chains", type=int, default=128)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--burn-in", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="16 x 16, three betas, short runs")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.size, arguments.betas = 16, [0.3, 0.44, 0.6]
        arguments.chains, arguments.samples, arguments.burn_in = 64, 20, 200

    topology, parameters = tsu_core.lattice_2d(arguments.size)  # J = 1, no field
    backends = {"gibbs": JaxSimBackend(), "metropolis": JaxSimBackend(sampler="metropolis")}
    programs = {name: backend.compile(topology) for name, backend in backends.items()}
    print(
        f"{arguments.size} x {arguments.size} torus, {arguments.chains} chains on "
        f"{', '.join(backends['gibbs'].capabilities.devices)}"
    )
    print(f"{'beta':>5} {'exact':>8} " + " ".join(f"{name:>17}" for name in programs))
    start = time.perf_counter()
    for index, beta in enumerate(arguments.betas):
        exact = ising2d.kaufman_energy(beta, arguments.size)[0]
        cells = []
        for program in programs.values():
            mean, error = energy_per_spin(program, parameters, beta, arguments, key=index)
            cells.append(f"{mean:8.4f} +- {error:.4f}")
        print(f"{beta:5.2f} {exact:8.4f} " + " ".join(f"{cell:>17}" for cell in cells))
    sweeps = arguments.burn_in + 5 * arguments.samples
    updates = len(arguments.betas) * len(programs) * sweeps * arguments.chains * topology.num_nodes
    seconds = time.perf_counter() - start
    print(f"{updates / seconds / 1e6:.1f} million spin updates per second (compiles included)")


if __name__ == "__main__":
    main()
