"""What is programmed into a topology on each call: edge weights and node biases.

Parameters change every training step and never cause a recompile. They may be numpy arrays,
JAX arrays or torch tensors; `tsu_core` only reads their shapes and checks that they are finite,
leaving the values where they live (a GPU tensor stays on its GPU).

Shapes, for a topology with N nodes and E edges:

| topology      | weights        | biases    |
| ------------- | -------------- | --------- |
| spin          | (E,)           | (N,)      |
| categorical K | (E, K, K)      | (N, K)    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tsu_core.arrays import absolute_sum, all_finite, array_problem, shape_of, to_numpy
from tsu_core.errors import InvalidModel, describe
from tsu_core.topology import Topology


@dataclass(frozen=True, eq=False)
class Parameters:
    """Edge weights J and node biases h of a model (see the module docstring for shapes).

    The energy convention is in `tsu_core.energy`.
    """

    weights: Any
    biases: Any

    @classmethod
    def zeros(cls, topology: Topology) -> Parameters:
        """All weights and biases zero (the uniform distribution)."""
        shapes = expected_shapes(topology)
        return cls(np.zeros(shapes["weights"]), np.zeros(shapes["biases"]))

    def validate(self, topology: Topology, check_finite: bool = True) -> Parameters:
        """Check shapes against the topology and (optionally) that every value is finite.

        Raises:
            InvalidModel: naming the field, the expected shape and the given one.
        """
        for name, expected in expected_shapes(topology).items():
            value = getattr(self, name)
            if value is None:
                raise InvalidModel(f"{name}: expected an array of shape {expected}, got None")
            problem = array_problem(value)
            if problem:
                raise InvalidModel(f"{name}: {problem}")
            shape = shape_of(value)
            if shape != expected:
                what = "edges" if name == "weights" else "nodes"
                count = topology.num_edges if name == "weights" else topology.num_nodes
                raise InvalidModel(
                    f"{name}: expected shape {expected} (one per {what[:-1]}: the topology has "
                    f"{count} {what}), got {describe(value)}"
                )
        if check_finite:
            totals = {}
            for name in ("weights", "biases"):
                value = getattr(self, name)
                totals[name] = absolute_sum(value)
                if not np.isfinite(totals[name]):
                    if not all_finite(value):
                        raise not_finite(name)
                    # A float32 sum overflowed: the error path sums in float64 on the host.
                    totals[name] = float(np.abs(to_numpy(value, np.float64)).sum())
            if not sum(totals.values()) <= MAX_ABSOLUTE_SUM:
                raise too_large(sum(totals.values()))
        return self


# Backends compute fields and energies in float32; every field, and the energy (written as a
# sum of fields), is at most twice the sum of |weights| and |biases| in magnitude.
MAX_ABSOLUTE_SUM = float(np.finfo(np.float32).max) / 4


def too_large(total: float) -> InvalidModel:
    """The error for parameters whose fields or energies would overflow float32."""
    return InvalidModel(
        f"weights and biases: expected a sum of |weights| and |biases| of at most "
        f"{MAX_ABSOLUTE_SUM:.3g}, so that fields and energies do not overflow float32, got "
        f"{total:.3g}; scale them down (and beta up: only beta * E matters)"
    )


def not_finite(name: str) -> InvalidModel:
    """The error for NaN or infinite `name` ("weights" or "biases"): raised by `validate`, and
    by a backend that checks finiteness inside its own compiled program instead."""
    return InvalidModel(f"{name}: expected finite values, got NaN or infinity")


def expected_shapes(topology: Topology) -> dict[str, tuple[int, ...]]:
    """The shapes of `weights` and `biases` that a topology takes."""
    if topology.is_spin:
        return {"weights": (topology.num_edges,), "biases": (topology.num_nodes,)}
    k = topology.num_categories
    return {"weights": (topology.num_edges, k, k), "biases": (topology.num_nodes, k)}


def dense_coupling_matrix(topology: Topology, parameters: Parameters) -> np.ndarray:
    """The symmetric N x N coupling matrix of a spin model (zero where there is no edge)."""
    if not topology.is_spin:
        raise InvalidModel("dense_coupling_matrix: expected a spin topology, got a categorical one")
    weights = np.asarray(parameters.weights, dtype=float)
    matrix = np.zeros((topology.num_nodes, topology.num_nodes))
    matrix[topology.edges[:, 0], topology.edges[:, 1]] = weights
    matrix[topology.edges[:, 1], topology.edges[:, 0]] = weights
    return matrix
