r"""A trainable Ising model in torch whose sampling runs on the backend.

$E(s) = -\sum_{(i,j)} J_{ij} s_i s_j - \sum_i h_i s_i$ (the convention of `tsu_core.energy`),
computed here differentiably in torch so that objectives can back-propagate into J and h.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tsu_core import Backend, Clamp, Parameters, Program, Topology
from tsu_core.arrays import to_torch
from tsu_torch.context import ThermalContext


def ising_energy(
    edges: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """Energies (...,) of spin states (..., N): -sum_e J_e s_i s_j - sum_i h_i s_i."""
    states = states.to(weights.dtype)
    pairs = states[..., edges[:, 0]] * states[..., edges[:, 1]]
    return -(pairs @ weights) - states @ biases


def ising_fields(
    edges: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """Local fields f_i = h_i + sum_j J_ij s_j, shape (..., N)."""
    states = states.to(weights.dtype)
    fields = biases.expand(*states.shape[:-1], -1).clone()
    fields = fields.index_add(-1, edges[:, 0], states[..., edges[:, 1]] * weights)
    return fields.index_add(-1, edges[:, 1], states[..., edges[:, 0]] * weights)


class IsingModel(nn.Module):
    """Weights J (one per edge) and biases h (one per node) of a spin topology, as parameters.

    Arguments:
        topology: a spin `tsu_core.Topology`.
        weights: initial edge weights (zeros when omitted).
        biases: initial biases (zeros when omitted).
        beta: the inverse temperature of the model.
    """

    def __init__(
        self,
        topology: Topology,
        weights: Any = None,
        biases: Any = None,
        beta: float = 1.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not topology.is_spin:
            raise ValueError("IsingModel: expected a spin topology, got a categorical one")
        self.topology = topology
        self.beta = float(beta)
        initial_weights = np.zeros(topology.num_edges) if weights is None else weights
        initial_biases = np.zeros(topology.num_nodes) if biases is None else biases
        self.weights = nn.Parameter(
            torch.as_tensor(np.asarray(initial_weights), dtype=dtype).clone()
        )
        self.biases = nn.Parameter(torch.as_tensor(np.asarray(initial_biases), dtype=dtype).clone())
        self.register_buffer("edges", torch.tensor(np.array(topology.edges), dtype=torch.int64))
        self._programs: dict[int, Program] = {}

    @property
    def num_nodes(self) -> int:
        return self.topology.num_nodes

    def energy(self, states: torch.Tensor) -> torch.Tensor:
        """E(s) for states (..., N), differentiable in J and h."""
        return ising_energy(self.edges, self.weights, self.biases, states)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.energy(states)

    def fields(self, states: torch.Tensor) -> torch.Tensor:
        """Local fields (..., N) of every node given the others."""
        return ising_fields(self.edges, self.weights, self.biases, states)

    def parameters_for_backend(self) -> Parameters:
        """The current J and h as `tsu_core.Parameters` (detached torch tensors, no copy)."""
        return Parameters(self.weights.detach(), self.biases.detach())

    def program(self, backend: Backend) -> Program:
        """The topology compiled once per backend."""
        if id(backend) not in self._programs:
            self._programs[id(backend)] = backend.compile(self.topology)
        return self._programs[id(backend)]

    def sample(
        self,
        context: ThermalContext,
        num_chains: int,
        num_sweeps: int = 1,
        initial_state: torch.Tensor | None = None,
        clamp: Clamp | None = None,
    ) -> torch.Tensor:
        """Final states (num_chains, N) after `num_sweeps` backend sweeps at beta / T."""
        program = self.program(context.backend)
        samples = program.sample(
            self.parameters_for_backend(),
            key=context.next_key(),
            num_chains=num_chains,
            num_samples=1,
            burn_in=num_sweeps - 1,
            schedule=self.beta / context.temperature,
            clamp=clamp,
            initial_state=None if initial_state is None else initial_state.to(torch.int8),
        )
        return to_torch(samples.final_state, self.weights.device, self.weights.dtype)
