"""A complete third-party backend in one file: block Gibbs in numpy, spin nodes only.

This is the plugin that `docs/backend-guide.md` walks through. It registers itself through the
`tsu.backends` entry point with its protocol version in `tsu.protocol` (see `test_registry.py`,
which installs it into a temporary directory), validates every call with the shared helpers of
`tsu_core.request`, declares what it cannot do (categorical nodes), and passes the conformance
suite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsu_core import Capabilities, Moments, Parameters, Samples, Topology, as_key
from tsu_core.arrays import to_numpy
from tsu_core.energy import energy
from tsu_core.parameters import dense_coupling_matrix
from tsu_core.request import (
    SampleRequest,
    check_beta,
    check_primitive_input,
    check_shape,
    check_supported,
)


class ToyGibbsBackend:
    name = "toy-gibbs"
    protocol_version = "1.0"  # tsu_core.PROTOCOL_VERSION when written; also in entry points
    capabilities = Capabilities(node_kinds=frozenset({"spin"}), max_nodes=4096)

    def compile(self, topology: Topology) -> ToyGibbsProgram:
        check_supported(topology, self.capabilities)
        return ToyGibbsProgram(topology, self)

    def pbit(self, fields: Any, *, key: Any, beta: float = 1.0) -> np.ndarray:
        check_primitive_input("fields", fields)
        beta = check_beta(beta)
        fields = to_numpy(fields, dtype=np.float64)
        uniform = as_key(key).generator().random(fields.shape)
        return np.where(uniform < 0.5 * (1 + np.tanh(beta * fields)), 1, -1).astype(np.int8)

    def categorical(self, logits: Any, *, key: Any, beta: float = 1.0) -> np.ndarray:
        check_primitive_input("logits", logits, allow_negative_infinity=True)
        beta = check_beta(beta)
        gumbel = as_key(key).generator().gumbel(size=np.shape(logits))
        return np.argmax(beta * to_numpy(logits, dtype=np.float64) + gumbel, -1).astype(np.int32)

    def gaussian(self, shape: tuple[int, ...], *, key: Any, dtype: str = "float32") -> np.ndarray:
        shape = check_shape("shape", shape, self.capabilities)
        return as_key(key).generator().standard_normal(shape).astype(dtype)


class ToyGibbsProgram:
    def __init__(self, topology: Topology, backend: ToyGibbsBackend) -> None:
        self.topology = topology
        self.backend = backend

    def sample(self, parameters: Parameters, **options: Any) -> Samples:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        states = np.stack(list(self._run(request)), axis=1)
        return Samples(states, energy(self.topology, parameters, states), states[:, -1].copy())

    def moments(self, parameters: Parameters, **options: Any) -> Moments:
        request = SampleRequest.build(
            self.topology, self.backend.capabilities, parameters, **options
        )
        first, second = self.topology.edges[:, 0], self.topology.edges[:, 1]
        nodes, edges, total_energy, state = 0.0, 0.0, 0.0, None
        for state in self._run(request):
            spins = state.astype(np.float64)
            nodes = nodes + spins.sum(0)
            edges = edges + (spins[:, first] * spins[:, second]).sum(0)
            total_energy += energy(self.topology, parameters, state).sum()
        count = request.num_chains * request.num_samples
        return Moments(nodes / count, edges / count, total_energy / count, count, state)

    def _run(self, request: SampleRequest):
        """Yield the (chains, N) state after every recorded sweep."""
        generator = request.key.generator()
        couplings = dense_coupling_matrix(self.topology, request.parameters)
        biases = to_numpy(request.parameters.biases, dtype=np.float64)
        shape = (request.num_chains, self.topology.num_nodes)
        if request.initial_state is None:
            state = np.where(generator.random(shape) < 0.5, 1, -1).astype(np.int8)
        else:
            state = to_numpy(request.initial_state).astype(np.int8).copy()
        clamped = request.clamp_nodes
        if clamped.size:
            state[:, clamped] = to_numpy(request.clamp_values)
        free = np.zeros(self.topology.num_nodes, dtype=bool)
        free[request.free_nodes] = True
        blocks = [block[free[block]] for block in self.topology.blocks]
        recorded = set(request.record_sweeps.tolist())
        for sweep, beta in enumerate(request.betas):
            for block in blocks:
                if block.size == 0:
                    continue
                fields = state @ couplings[:, block] + biases[block]
                up = generator.random((shape[0], block.size)) < 0.5 * (1 + np.tanh(beta * fields))
                state[:, block] = np.where(up, 1, -1)
            if sweep in recorded:
                yield state.copy()
