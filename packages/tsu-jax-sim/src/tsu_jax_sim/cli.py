"""Command line: `tsu-jax-sim info` (devices, layouts) and `tsu-jax-sim ising` (a quick run
of the multispin kernel against Kaufman's exact energy)."""

from __future__ import annotations

import argparse
import json
import logging

import jax
import numpy as np

from tsu_core import ising2d


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tsu-jax-sim", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="devices and version")
    ising = commands.add_parser("ising", help="multispin 2D Ising run vs Kaufman")
    ising.add_argument("--side", type=int, default=32)
    ising.add_argument("--chains", type=int, default=256)
    ising.add_argument("--beta", type=float, default=0.6)
    ising.add_argument("--sweeps", type=int, default=500)
    ising.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if arguments.command == "info":
        from tsu_jax_sim import __version__

        print(
            json.dumps(
                {
                    "version": __version__,
                    "jax": jax.__version__,
                    "devices": [str(device) for device in jax.devices()],
                }
            )
        )
        return
    from tsu_jax_sim.multispin import PackedIsing, packed_energy_per_spin

    model = PackedIsing(arguments.side, arguments.side)
    ordered = arguments.beta > ising2d.CRITICAL_BETA
    state = model.initial(arguments.chains, ordered=ordered, seed=arguments.seed)
    state = model.run(state, arguments.seed, arguments.beta, arguments.sweeps)
    per_spin = np.asarray(packed_energy_per_spin(*state))
    exact, _ = ising2d.kaufman_energy(arguments.beta, arguments.side)
    print(
        json.dumps(
            {
                "energy_per_spin": float(per_spin.mean()),
                "standard_error": float(per_spin.std(ddof=1) / np.sqrt(per_spin.size)),
                "kaufman": exact,
            }
        )
    )


if __name__ == "__main__":
    main()
