"""Describe a small random spin glass once, sample it on a backend, and check the sampled
moments against exact enumeration: the check every backend of the stack passes.

Runs on whichever backend `--backend` or `TSU_BACKEND` names (default: the best installed; with
tsu-core alone that is `reference`, the exact sampler), so a vendor can point it at a chip.

    python examples/tsu-core/check_against_exact.py --quick
    TSU_BACKEND=jax-sim python examples/tsu-core/check_against_exact.py

Prints, for the free model and with two spins clamped, the largest deviation of <s_i> and of
<s_i s_j> from the exact values, in standard errors of the sampled mean.
"""

from __future__ import annotations

import argparse

import numpy as np

import tsu_core


def random_spin_glass(num_nodes: int, degree: int, seed: int):
    """A random graph of about `degree` neighbours per node with Gaussian weights and biases."""
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(num_nodes) for j in range(i + 1, num_nodes)]
    keep = rng.random(len(pairs)) < degree / (num_nodes - 1)
    edges = np.array([pair for pair, kept in zip(pairs, keep, strict=True) if kept])
    weights = rng.normal(0.0, 0.5, len(edges))
    biases = rng.normal(0.0, 0.3, num_nodes)
    return tsu_core.from_edge_list(num_nodes, edges, weights, biases)


def deviations(program, parameters, exact, arguments, clamp=None) -> tuple[float, float]:
    """Largest |sampled - exact| of node and edge moments, in standard errors (chains as the
    independent draws; each chain's samples are averaged first)."""
    samples = program.sample(
        parameters,
        key=tsu_core.Key(arguments.seed),
        num_chains=arguments.chains,
        num_samples=arguments.samples,
        burn_in=50,
        thinning=2,
        schedule=arguments.beta,
        clamp=clamp,
    )
    states = np.asarray(samples.states, dtype=np.float64)  # (chains, samples, nodes)
    edges = program.topology.edges
    per_chain_nodes = states.mean(1)
    per_chain_edges = (states[..., edges[:, 0]] * states[..., edges[:, 1]]).mean(1)
    worst = []
    for per_chain, expected in (
        (per_chain_nodes, exact.node_moments),
        (per_chain_edges, exact.edge_moments),
    ):
        error = per_chain.std(0, ddof=1) / np.sqrt(per_chain.shape[0])
        varying = error > 0  # clamped spins do not vary
        gap = np.abs(per_chain.mean(0) - expected)[varying] / error[varying]
        worst.append(float(gap.max()))
    return worst[0], worst[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default=None, help="default: TSU_BACKEND, else the best")
    parser.add_argument("--nodes", type=int, default=14, help="at most 22 (exact enumeration)")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 spins, 64 chains x 50 samples")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.nodes, arguments.chains, arguments.samples = 10, 64, 50

    topology, parameters = random_spin_glass(arguments.nodes, 3, arguments.seed)
    backend = tsu_core.get_backend(arguments.backend)
    program = backend.compile(topology)  # once per topology; parameters change freely
    print(
        f"{backend.name}: {topology.num_nodes} spins, {len(topology.edges)} edges, "
        f"{len(topology.blocks)} colour blocks, beta {arguments.beta}"
    )

    exact = tsu_core.ExactDistribution.of(topology, parameters, beta=arguments.beta)
    nodes, edges = deviations(program, parameters, exact, arguments)
    print(f"free:    worst <s_i> {nodes:.2f} SE, worst <s_i s_j> {edges:.2f} SE")

    clamp = tsu_core.Clamp(nodes=[0, 1], values=[1, -1])
    exact = tsu_core.ExactDistribution.of(
        topology, parameters, beta=arguments.beta, clamp_nodes=[0, 1], clamp_values=[1, -1]
    )
    nodes, edges = deviations(program, parameters, exact, arguments, clamp)
    print(f"clamped: worst <s_i> {nodes:.2f} SE, worst <s_i s_j> {edges:.2f} SE")
    print(
        "(the largest of many |z| values: below about 3.5 is what an exact sampler gives; "
        "python -m tsu_core.testing runs the full suite)"
    )


if __name__ == "__main__":
    main()
