r"""The reverse-step energy models: per-step parameters in torch, assembled for the backend.

Reverse step t samples $x_{t-1}$ (spins $s$) and latents $z$ given the noisy image $x_t$ from

$$E_t(s, z \mid s_t) = -\sum_{(i,j)} J^t_{ij} s_i s_j - \sum_{(i,k)} W^t_{ik} s_i z_k
  - \sum_i h^t_i s_i - \sum_k b^t_k z_k - \gamma_t \sum_i s_{t,i}\, s_i ,$$

so $p_\theta(s \mid s_t) \propto \sum_z e^{-E_t}$: the learned part models the marginal of
$x_{t-1}$ and the last term is the forward channel $q(x_t \mid x_{t-1})$, exact by Bayes' rule.

The last term is a bias $\gamma_t s_{t,i}$ on every visible bit. `tsu_core.Parameters` hold one
bias vector for all chains while every chain has its own $x_t$, so the term is realised as
it would be on a chip: the $x_t$ bits are nodes clamped per chain, joined to $x_{t-1}$ by
edges of weight $\gamma_t$ (`graph.py`). Conditioned on the clamp, the energy is the same.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import tsu_core
from bitflip_dtm.config import Config
from bitflip_dtm.forward import ForwardProcess
from bitflip_dtm.graph import KINDS, ReverseGraph, build_graph

INITIAL_LATENT_SCALE = 0.01


class StepParameters(nn.Module):
    """The learned parameters of one reverse step: J and W (one weight per learned edge),
    visible biases h and latent biases b."""

    def __init__(self, num_edges: int, num_bits: int, num_latents: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_edges))
        self.visible_bias = nn.Parameter(torch.zeros(num_bits))
        self.latent_bias = nn.Parameter(torch.zeros(num_latents))


class DTM(nn.Module):
    """A denoising thermodynamic model: T reverse steps over one shared graph.

    Steps are numbered t = 1 .. T; `self.steps[t - 1]` holds step t's parameters.
    """

    def __init__(self, config: Config, graph: ReverseGraph | None = None) -> None:
        super().__init__()
        self.config = config
        self.graph = graph if graph is not None else build_graph(config)
        self.forward_process = ForwardProcess.of(config)
        graph = self.graph
        self.steps = nn.ModuleList(
            StepParameters(graph.num_learned_edges, graph.num_bits, graph.num_latents)
            for _ in range(config.num_steps)
        )
        edges = torch.from_numpy(graph.topology.edges.astype(np.int64))
        self.register_buffer("edge_first", edges[:, 0].clone(), persistent=False)
        self.register_buffer("edge_second", edges[:, 1].clone(), persistent=False)
        couplings = torch.stack(
            [
                self.forward_process.step_coupling(t, graph.num_bits).expand(graph.num_bits)
                for t in range(1, config.num_steps + 1)
            ]
        )
        # gamma_t of every bit, (T, D): the fixed weights of the coupling edges.
        self.register_buffer("couplings", couplings.float(), persistent=False)
        kinds = graph.edge_kind[: graph.num_learned_edges]
        latent_mask = torch.from_numpy(
            (kinds == KINDS.index("latent")) | (kinds == KINDS.index("hidden"))
        )
        generator = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():
            for step in self.steps:
                noise = torch.randn(graph.num_learned_edges, generator=generator)
                step.weights.copy_(INITIAL_LATENT_SCALE * noise * latent_mask)

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def _check_step(self, t: int) -> None:
        if not 1 <= t <= self.num_steps:
            raise ValueError(f"step: expected t in [1, {self.num_steps}], got {t}")

    def weights(self, t: int) -> torch.Tensor:
        """All E edge weights of step t: the learned ones, then $\\gamma_t$ on every coupling."""
        self._check_step(t)
        step = self.steps[t - 1]
        return torch.cat([step.weights, self.couplings[t - 1].to(step.weights.dtype)])

    def biases(self, t: int) -> torch.Tensor:
        """All N node biases of step t: h, b, and zero on the clamped $x_t$ nodes."""
        self._check_step(t)
        step = self.steps[t - 1]
        zeros = torch.zeros_like(step.visible_bias)
        return torch.cat([step.visible_bias, step.latent_bias, zeros])

    def parameters_for(self, t: int) -> tsu_core.Parameters:
        """Step t's `tsu_core.Parameters` (detached torch tensors on the model's device)."""
        return tsu_core.Parameters(self.weights(t).detach(), self.biases(t).detach())

    def stacked_parameters(self, steps: list[int]) -> tsu_core.Parameters:
        """The parameters of several steps for `graph.topology.copies(len(steps))`: copy k
        holds step `steps[k]` (weights and biases flattened row-major, detached)."""
        rows = [self.steps[t - 1] for t in steps]
        with torch.no_grad():
            learned = torch.stack([step.weights for step in rows])
            couplings = self.couplings[torch.tensor(steps) - 1].to(learned.dtype)
            weights = torch.cat([learned, couplings], dim=1)
            visible = torch.stack([step.visible_bias for step in rows])
            biases = torch.cat(
                [
                    visible,
                    torch.stack([step.latent_bias for step in rows]),
                    torch.zeros_like(visible),
                ],
                dim=1,
            )
        return tsu_core.Parameters(weights.reshape(-1), biases.reshape(-1))

    def local_fields(self, t: int, states: torch.Tensor) -> torch.Tensor:
        """$f_i = \\text{bias}_i + \\sum_j J_{ij} s_j$ for every node of states (B, N), in torch
        (differentiable in the parameters)."""
        spins = states.to(self.steps[t - 1].weights.dtype)
        weights = self.weights(t)
        fields = self.biases(t).expand_as(spins).clone()
        fields = fields.index_add(1, self.edge_first, weights * spins[:, self.edge_second])
        return fields.index_add(1, self.edge_second, weights * spins[:, self.edge_first])

    def energy(self, t: int, states: torch.Tensor) -> torch.Tensor:
        """$E_t$ of states (B, N) (the energy convention of `tsu_core.energy`), in torch."""
        spins = states.to(self.steps[t - 1].weights.dtype)
        pair = (spins[:, self.edge_first] * spins[:, self.edge_second]) @ self.weights(t)
        return -pair - spins @ self.biases(t)
