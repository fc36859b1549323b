"""Layouts: the parameter record each kind prepares, and its passage through `jax.jit`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tsu_core import Topology
from tsu_core.testing import random_categorical_model
from tsu_jax_sim.layouts import (
    CategoricalParameters,
    DenseParameters,
    NeighbourParameters,
    StencilParameters,
    make_layout,
)
from tsu_jax_sim.node_major import BlockDenseParameters, BlockNeighbourParameters, NodeMajorSweep


def _arrays(topology: Topology, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    generator = np.random.default_rng(seed)
    shape = () if topology.is_spin else (topology.num_categories,) * 2
    weights = generator.normal(0, 0.5, (topology.num_edges, *shape))
    biases = generator.normal(0, 0.3, (topology.num_nodes, *shape[:1]))
    return jnp.asarray(weights, jnp.float32), jnp.asarray(biases, jnp.float32)


def _assert_same_tree(traced: object, eager: object) -> None:
    assert jax.tree_util.tree_structure(traced) == jax.tree_util.tree_structure(eager)
    for left, right in zip(jax.tree.leaves(traced), jax.tree.leaves(eager), strict=True):
        assert np.array_equal(np.asarray(left), np.asarray(right))


@pytest.mark.parametrize(
    ("topology", "kind", "record"),
    [
        (Topology.lattice_2d(4), "stencil", StencilParameters),
        (Topology.lattice_2d(4), "neighbours", NeighbourParameters),
        (Topology.bipartite(5, 3), "dense", DenseParameters),
        (Topology.complete(40), "dense", DenseParameters),  # sequential: no block matrices
        (random_categorical_model(seed=1, num_nodes=6, num_categories=3)[0], None, None),
    ],
)
def test_prepare_returns_one_record_per_kind(topology: Topology, kind: str | None, record) -> None:
    layout = make_layout(topology, kind)
    weights, biases = _arrays(topology)
    prepared = jax.jit(layout.prepare)(weights, biases)
    assert type(prepared) is (record or CategoricalParameters)
    _assert_same_tree(prepared, layout.prepare(weights, biases))
    if kind == "dense":
        assert len(prepared.block_matrices) == (0 if layout.sequential else len(layout.blocks))


@pytest.mark.parametrize(
    ("kind", "record"), [("neighbours", BlockNeighbourParameters), ("dense", BlockDenseParameters)]
)
def test_node_major_prepare_returns_its_record(kind: str, record) -> None:
    topology = Topology.lattice_2d(4)
    plan = NodeMajorSweep(make_layout(topology, kind))
    weights, biases = _arrays(topology)
    prepared = jax.jit(plan.prepare)(weights, biases)
    assert type(prepared) is record
    assert len(prepared.biases) == len(plan.blocks)
    _assert_same_tree(prepared, plan.prepare(weights, biases))
