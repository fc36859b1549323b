"""Quickstart: sample the 2D Ising model across beta and compare with the exact solution.

Runs on the best installed backend (or `--backend NAME`), sweeps beta across the critical point,
and writes a PNG of energy per spin and |magnetisation| beside Onsager's exact curves for the
infinite lattice and Kaufman's exact energy for the sampled finite lattice.

    python examples/quickstart.py [--backend jax-sim] [--size 32] [--out out/quickstart.png]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

import tsu_core
from tsu_core.arrays import to_numpy
from tsu_core.ising2d import CRITICAL_BETA, kaufman_energy, onsager_energy, onsager_magnetisation

log = logging.getLogger("quickstart")


def sweep_betas(backend, size, betas, num_chains, burn_in, num_samples, thinning, seed):
    """Energy per spin and <|m|> with their standard errors at each beta."""
    topology, parameters = tsu_core.lattice_2d(size)
    program = backend.compile(topology)
    key = tsu_core.Key(seed)
    rows = []
    for index, beta in enumerate(tqdm(betas, desc=f"{backend.name}: {size}x{size} lattice")):
        initial = None
        if beta > CRITICAL_BETA and backend.capabilities.initial_state:
            # Ordered phase: start ordered, since a torus traps random starts in stripe states.
            initial = np.ones((num_chains, topology.num_nodes), dtype=np.int8)
        result = program.sample(
            parameters,
            key=key.fold_in(index),
            num_chains=num_chains,
            num_samples=num_samples,
            burn_in=burn_in,
            thinning=thinning,
            schedule=float(beta),
            initial_state=initial,
        )
        spins = to_numpy(result.states).astype(np.float64)
        per_chain_energy = to_numpy(result.energies).mean(1) / topology.num_nodes
        per_chain_magnetisation = np.abs(spins.mean(2)).mean(1)
        rows.append(
            {
                "beta": float(beta),
                "energy": float(per_chain_energy.mean()),
                "energy_error": float(per_chain_energy.std(ddof=1) / np.sqrt(num_chains)),
                "magnetisation": float(per_chain_magnetisation.mean()),
                "magnetisation_error": float(
                    per_chain_magnetisation.std(ddof=1) / np.sqrt(num_chains)
                ),
                "kaufman_energy": kaufman_energy(float(beta), size)[0],
            }
        )
    return rows


def plot(rows, size, backend_name, path: Path) -> None:
    betas = np.array([row["beta"] for row in rows])
    fine = np.linspace(betas.min(), betas.max(), 400)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(fine, onsager_energy(fine), "k-", lw=1.2, label="Onsager (infinite lattice)")
    left.plot(
        fine,
        [kaufman_energy(b, size)[0] for b in fine],
        "C1--",
        lw=1.2,
        label=f"Kaufman (exact, {size}x{size})",
    )
    left.errorbar(
        betas,
        [row["energy"] for row in rows],
        yerr=[row["energy_error"] for row in rows],
        fmt="o",
        ms=4,
        color="C0",
        label=f"sampled on {backend_name}",
    )
    left.set(xlabel="beta = 1 / T", ylabel="energy per spin")
    right.plot(fine, onsager_magnetisation(fine), "k-", lw=1.2, label="Onsager (infinite lattice)")
    if size * size <= 20:
        # Small enough to enumerate: the exact <|m|> of this very lattice.
        grid = np.linspace(betas.min(), betas.max(), 60)
        model = tsu_core.lattice_2d(size)
        exact = [
            tsu_core.ExactDistribution.of(*model, b).expectation(lambda s: np.abs(s.mean(1)))
            for b in grid
        ]
        right.plot(grid, exact, "C1--", lw=1.2, label=f"exact <|m|> (enumeration, {size}x{size})")
    right.errorbar(
        betas,
        [row["magnetisation"] for row in rows],
        yerr=[row["magnetisation_error"] for row in rows],
        fmt="o",
        ms=4,
        color="C0",
        label=f"<|m|> sampled, {size}x{size}",
    )
    right.set(xlabel="beta = 1 / T", ylabel="|magnetisation| per spin")
    for axis in (left, right):
        axis.axvline(CRITICAL_BETA, color="grey", lw=0.8, ls=":")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(f"2D Ising model, periodic {size}x{size} lattice, backend '{backend_name}'")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="backend name (default: best installed)")
    parser.add_argument("--size", type=int, default=None, help="lattice side (default: by backend)")
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--burn-in", type=int, default=400)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--thinning", type=int, default=4)
    parser.add_argument("--num-betas", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/quickstart.png"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    backend = tsu_core.get_backend(args.backend)
    limit = backend.capabilities.max_nodes
    size = args.size or (4 if limit is not None and limit < 1024 else 32)
    betas = np.linspace(0.2, 0.8, args.num_betas)
    log.info("backends installed: %s; using '%s'", tsu_core.available_backends(), backend.name)
    start = time.perf_counter()
    rows = sweep_betas(
        backend, size, betas, args.chains, args.burn_in, args.samples, args.thinning, args.seed
    )
    elapsed = time.perf_counter() - start
    plot(rows, size, backend.name, args.out)
    worst = max(rows, key=lambda row: abs(row["energy"] - row["kaufman_energy"]))
    print(
        json.dumps(
            {
                "what": "quickstart",
                "backend": backend.name,
                "size": size,
                "seconds": round(elapsed, 2),
                "largest energy deviation from Kaufman": round(
                    worst["energy"] - worst["kaufman_energy"], 5
                ),
                "at beta": round(worst["beta"], 3),
                "its standard error": round(worst["energy_error"], 5),
            }
        )
    )
    print(f"wrote {args.out.resolve()}")


if __name__ == "__main__":
    main()
