r"""A tsu-core topology as thrml objects, built once and re-parameterised on every call.

`ThrmlGraph.build(topology)` makes one thrml node per tsu-core node (`SpinNode` or
`CategoricalNode`), one `Block` per colour of `topology.blocks`, and the factors of the energy:

* spins: the two `SpinEBMFactor`s that `thrml.models.IsingEBM` builds, one over the nodes (the
  biases) and one over the edges' endpoint blocks (the weights);
* categorical: a `CategoricalEBMFactor` over the nodes (biases, (N, K)) and a
  `SquareCategoricalEBMFactor` over the edges (weights, (E, K, K)).

thrml bakes a factor's weights into the `BlockSamplingProgram` it builds (gathered per block,
padded, transposed for the second endpoint), and building that program is a Python loop over
every node. So the factors are built with *positions* in place of weights: an integer array that
says, for every weight slot, which entry of the flat parameter vector

$$\theta = (\text{biases.ravel()}, \text{weights.ravel()})$$

belongs there. Each call then fills the slots with one gather, `theta[positions]`
(`with_parameters`), scaled by beta; nodes, blocks, factors and programs are never rebuilt.

Clamping changes which blocks are free, so each distinct set of clamped nodes gets its own
`FactorSamplingProgram` (free blocks: the colours minus the clamped nodes; one clamped block),
built on first use and cached; new clamp *values* reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from thrml import (
    Block,
    BlockGibbsSpec,
    CategoricalNode,
    FactorSamplingProgram,
    SpinNode,
)
from thrml.models.discrete_ebm import (
    CategoricalEBMFactor,
    CategoricalGibbsConditional,
    DiscreteEBMInteraction,
    SpinEBMFactor,
    SpinGibbsConditional,
    SquareCategoricalEBMFactor,
)
from thrml.models.ebm import EBMFactor
from thrml.pgm import DEFAULT_NODE_SHAPE_DTYPES, AbstractNode

from tsu_core.topology import Topology


@dataclass(eq=False)
class ClampedLayout:
    """One thrml program for one set of clamped nodes, and where its blocks sit among the nodes.

    Arguments:
        program: the `FactorSamplingProgram`, with parameter positions in its weight slots.
        free_nodes: for each free block, the tsu-core indices of its nodes (in block order).
        clamped_nodes: the tsu-core indices of the clamped block's nodes (sorted; may be empty).
    """

    program: FactorSamplingProgram
    free_nodes: tuple[np.ndarray, ...]
    clamped_nodes: np.ndarray


@dataclass(eq=False)
class ThrmlGraph:
    """The thrml nodes, colour blocks and energy factors of one topology."""

    topology: Topology
    nodes: tuple[AbstractNode, ...]
    factors: tuple[EBMFactor, ...]
    _layouts: dict[tuple[int, ...], ClampedLayout] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, topology: Topology) -> ThrmlGraph:
        node_class = SpinNode if topology.is_spin else CategoricalNode
        nodes = tuple(node_class() for _ in range(topology.num_nodes))
        return cls(topology, nodes, _factors(topology, nodes))

    @property
    def all_nodes(self) -> Block:
        """Every node in tsu-core order, the block that observers read states through."""
        return Block(self.nodes)

    def layout(self, clamped_nodes: np.ndarray) -> ClampedLayout:
        """The program with these nodes clamped (sorted indices); built once per set."""
        signature = tuple(int(node) for node in clamped_nodes)
        if signature not in self._layouts:
            self._layouts[signature] = self._build_layout(np.asarray(signature, dtype=np.int64))
        return self._layouts[signature]

    def _build_layout(self, clamped_nodes: np.ndarray) -> ClampedLayout:
        is_clamped = np.zeros(self.topology.num_nodes, dtype=bool)
        is_clamped[clamped_nodes] = True
        free_nodes = tuple(
            block[~is_clamped[block]]
            for block in self.topology.blocks
            if (~is_clamped[block]).any()
        )
        free_blocks = [Block([self.nodes[i] for i in block]) for block in free_nodes]
        clamped_blocks = (
            [Block([self.nodes[i] for i in clamped_nodes])] if clamped_nodes.size else []
        )
        spec = BlockGibbsSpec(free_blocks, clamped_blocks, DEFAULT_NODE_SHAPE_DTYPES)
        if self.topology.is_spin:
            sampler = SpinGibbsConditional()
        else:
            sampler = CategoricalGibbsConditional(self.topology.num_categories)
        program = FactorSamplingProgram(
            spec, [sampler for _ in free_blocks], list(self.factors), []
        )
        return ClampedLayout(program, free_nodes, clamped_nodes)


def _factors(topology: Topology, nodes: tuple[AbstractNode, ...]) -> tuple[EBMFactor, ...]:
    """The bias and weight factors, holding positions in the flat parameter vector."""
    num_nodes, num_edges = topology.num_nodes, topology.num_edges
    node_block = Block(nodes)
    first = Block([nodes[i] for i in topology.edges[:, 0]])
    second = Block([nodes[j] for j in topology.edges[:, 1]])
    if topology.is_spin:
        factors = [SpinEBMFactor([node_block], jnp.arange(num_nodes))]
        if num_edges:
            positions = num_nodes + jnp.arange(num_edges)
            factors.append(SpinEBMFactor([first, second], positions))
        return tuple(factors)
    k = topology.num_categories
    factors = [CategoricalEBMFactor([node_block], jnp.arange(num_nodes * k).reshape(num_nodes, k))]
    if num_edges:
        positions = num_nodes * k + jnp.arange(num_edges * k * k).reshape(num_edges, k, k)
        factors.append(SquareCategoricalEBMFactor([first, second], positions))
    return tuple(factors)


def flat_parameters(biases: jax.Array, weights: jax.Array) -> jax.Array:
    """theta = (biases.ravel(), weights.ravel()), the vector the weight slots index into."""
    return jnp.concatenate([biases.ravel(), weights.ravel()])


def _is_interaction(leaf: Any) -> bool:
    return isinstance(leaf, DiscreteEBMInteraction)


def with_parameters(program: FactorSamplingProgram, theta: jax.Array) -> FactorSamplingProgram:
    """The program with every weight slot filled from theta (positions become values)."""
    interactions = jax.tree.map(
        lambda interaction: eqx.tree_at(
            lambda item: item.weights, interaction, theta[interaction.weights]
        ),
        program.per_block_interactions,
        is_leaf=_is_interaction,
    )
    return eqx.tree_at(lambda item: item.per_block_interactions, program, interactions)


def scaled(program: FactorSamplingProgram, beta: jax.Array) -> FactorSamplingProgram:
    """The program with every weight multiplied by beta: the energy times beta."""
    interactions = jax.tree.map(
        lambda interaction: eqx.tree_at(
            lambda item: item.weights, interaction, interaction.weights * beta
        ),
        program.per_block_interactions,
        is_leaf=_is_interaction,
    )
    return eqx.tree_at(lambda item: item.per_block_interactions, program, interactions)
