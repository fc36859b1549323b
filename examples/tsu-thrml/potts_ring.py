"""Sample a Potts model (categorical nodes) on Extropic's thrml through the tsu-core protocol and
check its marginals against exact enumeration.

The model is written once in tsu-core terms (a `Topology` with K states per node, a K x K weight
matrix per edge); tsu-thrml turns it into thrml nodes, blocks and factors once, and every call
fills the weights in. Nothing here imports thrml: the backend is found by name.

    python examples/tsu-thrml/potts_ring.py --quick      # CPU, seconds
    python examples/tsu-thrml/potts_ring.py --states 4 --nodes 9

Prints the exact and sampled marginal P(node 0 = k), and the largest deviation of any node's
marginal in standard errors.
"""

from __future__ import annotations

import argparse

import numpy as np

import tsu_core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="thrml")
    parser.add_argument("--nodes", type=int, default=8, help="nodes on the ring (even)")
    parser.add_argument("--states", type=int, default=3, help="K, states per node")
    parser.add_argument("--coupling", type=float, default=0.8, help="J for equal neighbours")
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="64 chains x 50 samples")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.chains, arguments.samples = 64, 50

    num_nodes, states = arguments.nodes, arguments.states
    edges = np.array([(i, (i + 1) % num_nodes) for i in range(num_nodes)])
    # Potts: energy -J when two neighbours agree; random biases so the marginals differ.
    weights = np.broadcast_to(arguments.coupling * np.eye(states), (len(edges), states, states))
    biases = np.random.default_rng(arguments.seed).normal(0.0, 0.5, (num_nodes, states))
    topology, parameters = tsu_core.from_edge_list(
        num_nodes, edges, weights.copy(), biases, num_categories=states
    )
    backend = tsu_core.get_backend(arguments.backend)
    program = backend.compile(topology)
    samples = program.sample(
        parameters,
        key=tsu_core.Key(arguments.seed),
        num_chains=arguments.chains,
        num_samples=arguments.samples,
        burn_in=50,
        thinning=2,
    )
    states_drawn = np.asarray(samples.states)  # (chains, samples, nodes) of indices 0..K-1
    one_hot = states_drawn[..., None] == np.arange(states)
    per_chain = one_hot.mean(1)  # (chains, nodes, K): each chain's marginals
    sampled = per_chain.mean(0)
    error = per_chain.std(0, ddof=1) / np.sqrt(per_chain.shape[0])
    exact = tsu_core.ExactDistribution.of(topology, parameters).node_moments  # (nodes, K)

    print(f"{backend.name}: a ring of {num_nodes} nodes with {states} states each")
    print("P(node 0 = k), exact:  ", np.array2string(exact[0], precision=3))
    print("P(node 0 = k), sampled:", np.array2string(sampled[0], precision=3))
    worst = float((np.abs(sampled - exact) / np.maximum(error, 1e-12)).max())
    print(f"worst marginal over all nodes and states: {worst:.2f} standard errors")


if __name__ == "__main__":
    main()
