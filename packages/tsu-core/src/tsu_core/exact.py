"""Exact enumeration of small models: the oracle every backend is checked against.

Every state of the free nodes is listed (2**n spins or K**n categories, up to `MAX_STATES`),
so probabilities, the partition function, marginals and moments are exact to float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from tsu_core.arrays import to_numpy
from tsu_core.energy import energy
from tsu_core.errors import NotSupported
from tsu_core.parameters import Parameters
from tsu_core.topology import Topology

MAX_STATES = 1 << 22


def all_states(num_nodes: int, num_states: int) -> np.ndarray:
    """Every assignment of `num_nodes` nodes as rows: spins (+-1, int8) if num_states is 2 and
    spin-valued, else indices. Row r is the base-`num_states` digits of r, node 0 most significant.
    """
    count = num_states**num_nodes
    digits = (np.arange(count)[:, None] // num_states ** np.arange(num_nodes)[::-1]) % num_states
    return digits.astype(np.int32)


@dataclass(frozen=True, eq=False)
class ExactDistribution:
    """The Boltzmann distribution of a model at one beta, with some nodes clamped.

    Arguments:
        clamp_nodes: nodes held fixed (may be empty).
        clamp_values: their values, shape (k,).
    """

    topology: Topology
    parameters: Parameters
    beta: float
    clamp_nodes: np.ndarray
    clamp_values: np.ndarray

    @classmethod
    def of(
        cls,
        topology: Topology,
        parameters: Parameters,
        beta: float = 1.0,
        clamp_nodes: Any = (),
        clamp_values: Any = (),
    ) -> ExactDistribution:
        nodes = np.asarray(clamp_nodes, dtype=np.int64).ravel()
        values = to_numpy(clamp_values).ravel()
        free = topology.num_nodes - nodes.size
        if topology.num_states**free > MAX_STATES:
            raise NotSupported(
                f"exact enumeration: {topology.num_states}**{free} states exceed the limit of "
                f"{MAX_STATES}; use at most {int(np.log(MAX_STATES) / np.log(topology.num_states))}"
                " free nodes"
            )
        return cls(topology, parameters, float(beta), nodes, values)

    @cached_property
    def free_nodes(self) -> np.ndarray:
        mask = np.ones(self.topology.num_nodes, dtype=bool)
        mask[self.clamp_nodes] = False
        return np.flatnonzero(mask)

    @cached_property
    def states(self) -> np.ndarray:
        """Every state with the clamped nodes in place: (M, N), int8 spins or int32 indices."""
        digits = all_states(self.free_nodes.size, self.topology.num_states)
        if self.topology.is_spin:
            states = np.empty((digits.shape[0], self.topology.num_nodes), dtype=np.int8)
            states[:, self.free_nodes] = 1 - 2 * digits
        else:
            states = np.empty((digits.shape[0], self.topology.num_nodes), dtype=np.int32)
            states[:, self.free_nodes] = digits
        states[:, self.clamp_nodes] = self.clamp_values
        return states

    @cached_property
    def energies(self) -> np.ndarray:
        return energy(self.topology, self.parameters, self.states)

    @cached_property
    def log_partition(self) -> float:
        """log Z = log sum_s exp(-beta E(s)) over the free nodes."""
        exponent = -self.beta * self.energies
        peak = exponent.max()
        return float(peak + np.log(np.exp(exponent - peak).sum()))

    @cached_property
    def probabilities(self) -> np.ndarray:
        return np.exp(-self.beta * self.energies - self.log_partition)

    def state_index(self, states: np.ndarray) -> np.ndarray:
        """The row of `self.states` that each given state (..., N) equals."""
        states = to_numpy(states)[..., self.free_nodes].astype(np.int64)
        digits = (1 - states) // 2 if self.topology.is_spin else states
        powers = self.topology.num_states ** np.arange(self.free_nodes.size)[::-1]
        return digits @ powers

    @cached_property
    def node_moments(self) -> np.ndarray:
        """<s_i> (N,) for spins; marginal probabilities (N, K) for categorical nodes."""
        if self.topology.is_spin:
            return self.probabilities @ self.states.astype(np.float64)
        return np.einsum("m,mnk->nk", self.probabilities, self._one_hot)

    @cached_property
    def edge_moments(self) -> np.ndarray:
        """<s_i s_j> (E,) for spins; joint probabilities (E, K, K) for categorical edges."""
        first, second = self.topology.edges[:, 0], self.topology.edges[:, 1]
        if self.topology.is_spin:
            spins = self.states.astype(np.float64)
            return self.probabilities @ (spins[:, first] * spins[:, second])
        one_hot = self._one_hot
        return np.einsum(
            "m,mek,mel->ekl", self.probabilities, one_hot[:, first], one_hot[:, second]
        )

    @cached_property
    def mean_energy(self) -> float:
        return float(self.probabilities @ self.energies)

    @cached_property
    def energy_variance(self) -> float:
        return float(self.probabilities @ (self.energies - self.mean_energy) ** 2)

    @cached_property
    def ground_energy(self) -> float:
        return float(self.energies.min())

    def expectation(self, function: Any) -> np.ndarray:
        """E[function(states)] for a function mapping (M, N) states to (M, ...) values."""
        values = np.asarray(function(self.states), dtype=np.float64)
        return np.tensordot(self.probabilities, values, axes=1)

    @cached_property
    def _one_hot(self) -> np.ndarray:
        return np.eye(self.topology.num_categories)[self.states]
