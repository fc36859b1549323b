"""The reference backend: exact independent draws by enumerating every state.

Slow and simple on purpose; it is the oracle. Each recorded sample is an exact draw from the
Boltzmann distribution at the beta of the sweep it is recorded at, given the clamped values, so
burn-in, thinning and initial states change nothing (`capabilities.exact`). Limited to models
whose free nodes have at most `exact.MAX_STATES` joint states (about 22 spins).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsu_core.arrays import to_numpy
from tsu_core.energy import energy
from tsu_core.exact import ExactDistribution
from tsu_core.keys import as_key
from tsu_core.parameters import Parameters
from tsu_core.protocol import PROTOCOL_VERSION, Capabilities, Moments, Samples
from tsu_core.request import (
    SampleRequest,
    check_beta,
    check_primitive_input,
    check_shape,
    check_supported,
)
from tsu_core.topology import Topology


class ReferenceBackend:
    """Exact enumeration backend, registered as `reference`."""

    name = "reference"
    protocol_version = PROTOCOL_VERSION
    capabilities = Capabilities(max_nodes=22, exact=True)

    def compile(self, topology: Topology) -> ReferenceProgram:
        check_supported(topology, self.capabilities)
        return ReferenceProgram(topology, self)

    def pbit(self, fields: Any, *, key: Any, beta: float = 1.0) -> np.ndarray:
        check_primitive_input("fields", fields)
        beta = check_beta(beta)
        fields = to_numpy(fields, dtype=np.float64)
        up = 0.5 * (1 + np.tanh(beta * fields))  # sigmoid(2 beta f), stable for large |f|
        uniform = as_key(key).generator().random(fields.shape)
        return np.where(uniform < up, 1, -1).astype(np.int8)

    def categorical(self, logits: Any, *, key: Any, beta: float = 1.0) -> np.ndarray:
        check_primitive_input("logits", logits, allow_negative_infinity=True)
        beta = check_beta(beta)
        logits = to_numpy(logits, dtype=np.float64)
        gumbel = as_key(key).generator().gumbel(size=logits.shape)
        return np.argmax(beta * logits + gumbel, axis=-1).astype(np.int32)

    def gaussian(self, shape: tuple[int, ...], *, key: Any, dtype: str = "float32") -> np.ndarray:
        shape = check_shape("shape", shape, self.capabilities)
        return as_key(key).generator().standard_normal(shape).astype(dtype)


class ReferenceProgram:
    """A topology prepared for exact sampling."""

    def __init__(self, topology: Topology, backend: ReferenceBackend) -> None:
        self.topology = topology
        self.backend = backend

    def sample(self, parameters: Parameters, **options: Any) -> Samples:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        states = self._draw(request)
        energies = energy(self.topology, request.parameters, states)
        return Samples(states, energies, states[:, -1].copy())

    def moments(self, parameters: Parameters, **options: Any) -> Moments:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        states = self._draw(request)
        flat = states.reshape(-1, self.topology.num_nodes)
        first, second = self.topology.edges[:, 0], self.topology.edges[:, 1]
        if self.topology.is_spin:
            spins = flat.astype(np.float64)
            nodes = spins.mean(0)
            edges = (spins[:, first] * spins[:, second]).mean(0)
        else:
            one_hot = np.eye(self.topology.num_categories)[flat]
            nodes = one_hot.mean(0)
            edges = np.einsum("mek,mel->ekl", one_hot[:, first], one_hot[:, second]) / len(flat)
        mean_energy = energy(self.topology, request.parameters, flat).mean()
        return Moments(nodes, edges, mean_energy, len(flat), states[:, -1].copy())

    def _draw(self, request: SampleRequest) -> np.ndarray:
        """(C, S, N) exact draws, grouped by (beta, clamp values) so each distribution is
        enumerated once."""
        generator = request.key.generator()
        topology = self.topology
        dtype = np.int8 if topology.is_spin else np.int32
        states = np.empty((request.num_chains, request.num_samples, topology.num_nodes), dtype)
        sample_betas = request.betas[request.record_sweeps]
        clamp_rows = _clamp_rows(request)
        row_keys, row_of_chain = np.unique(clamp_rows, axis=0, return_inverse=True)
        row_of_chain = row_of_chain.ravel()
        for beta in np.unique(sample_betas):
            sample_slots = np.flatnonzero(sample_betas == beta)
            for row_index, values in enumerate(row_keys):
                chains = np.flatnonzero(row_of_chain == row_index)
                exact = ExactDistribution.of(
                    topology, request.parameters, beta, request.clamp_nodes, values
                )
                cumulative = np.cumsum(exact.probabilities)
                uniform = generator.random((chains.size, sample_slots.size)) * cumulative[-1]
                drawn = np.minimum(np.searchsorted(cumulative, uniform), len(cumulative) - 1)
                states[chains[:, None], sample_slots[None, :]] = exact.states[drawn]
        return states


def _clamp_rows(request: SampleRequest) -> np.ndarray:
    """(C, k) clamp values, one row per chain (k may be zero)."""
    if request.clamp_values is None:
        return np.zeros((request.num_chains, 0), dtype=np.int64)
    values = to_numpy(request.clamp_values).astype(np.int64)
    return np.broadcast_to(values, (request.num_chains, request.clamp_nodes.size))
