r"""What is recorded while thrml samples: states, or moments without keeping the states.

* `StateObserver` (thrml's) over one block of every node gives the (num_samples, N) states.
* Spin moments use thrml's `MomentAccumulatorObserver`, which sums
  $f(x_i)$ over nodes and $f(x_i) f(x_j)$ over edges, with $f$ mapping thrml's booleans to +-1.
* Categorical moments need one-hot indicators, $[x_i = k]$ and $[x_i = k][x_j = l]$, which the
  scalar-per-node moment observer cannot hold, so `CategoricalMomentObserver` sums them through
  the same observer interface (`thrml.AbstractObserver`).
* `WithFinalState` wraps an observer and keeps the last state seen, so a moments call returns the
  chains' final states (persistent chains) without recording every sample.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from thrml import AbstractObserver, Block, MomentAccumulatorObserver, StateObserver
from thrml.block_management import block_state_to_global, from_global_state

from tsu_thrml.graph import ThrmlGraph


def spin_values(states: list[jax.Array], blocks: list[Block]) -> list[jax.Array]:
    """thrml's boolean spins as float +-1, for the moment observer."""
    return [2 * state.astype(jnp.float32) - 1 for state in states]


def spin_moment_observer(graph: ThrmlGraph) -> MomentAccumulatorObserver:
    """Sums of s_i over every node and of s_i s_j over every edge (in tsu-core order)."""
    nodes = graph.nodes
    spec = [[(node,) for node in nodes]]
    if graph.topology.num_edges:
        spec.append([(nodes[i], nodes[j]) for i, j in graph.topology.edges])
    return MomentAccumulatorObserver(spec, spin_values)


def _all_node_states(
    program: Any, state_free: list, state_clamped: list, block: Block
) -> jax.Array:
    global_state = block_state_to_global(state_free + state_clamped, program.gibbs_spec)
    return from_global_state(global_state, program.gibbs_spec, [block])[0]


class CategoricalMomentObserver(AbstractObserver):
    r"""Sums of one-hot indicators: $\sum_t [x_i^t = k]$ (N, K) and
    $\sum_t [x_i^t = k][x_j^t = l]$ (E, K, K) over the observed samples t."""

    block: Block
    first: jax.Array
    second: jax.Array
    num_categories: int = eqx.field(static=True)

    def __init__(self, graph: ThrmlGraph) -> None:
        self.block = graph.all_nodes
        self.first = jnp.asarray(graph.topology.edges[:, 0])
        self.second = jnp.asarray(graph.topology.edges[:, 1])
        self.num_categories = graph.topology.num_categories

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        states = _all_node_states(program, state_free, state_clamped, self.block)
        one_hot = jax.nn.one_hot(states, self.num_categories, dtype=jnp.float32)
        node_sums, edge_sums = carry
        pair = one_hot[self.first][:, :, None] * one_hot[self.second][:, None, :]
        return (node_sums + one_hot, edge_sums + pair), None

    def init(self) -> tuple[jax.Array, jax.Array]:
        k = self.num_categories
        return (
            jnp.zeros((len(self.block), k), jnp.float32),
            jnp.zeros((self.first.shape[0], k, k), jnp.float32),
        )


class WithFinalState(AbstractObserver):
    """Runs `inner` and also keeps the latest state of every node (thrml's encoding)."""

    inner: AbstractObserver
    block: Block
    dtype: Any = eqx.field(static=True)

    def __init__(self, inner: AbstractObserver, graph: ThrmlGraph) -> None:
        self.inner = inner
        self.block = graph.all_nodes
        self.dtype = np.dtype(jnp.bool_ if graph.topology.is_spin else jnp.uint8)

    def __call__(self, program, state_free, state_clamped, carry, iteration):
        inner_carry, _ = carry
        inner_carry, output = self.inner(program, state_free, state_clamped, inner_carry, iteration)
        states = _all_node_states(program, state_free, state_clamped, self.block)
        return (inner_carry, states), output

    def init(self) -> tuple[Any, jax.Array]:
        return self.inner.init(), jnp.zeros(len(self.block), self.dtype)


def state_observer(graph: ThrmlGraph) -> StateObserver:
    """Records every node's state, in tsu-core order."""
    return StateObserver([graph.all_nodes])
