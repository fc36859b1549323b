r"""Training: the log-likelihood gradient of every reverse step from two backend calls, AdamW.

For step t and a data batch $x_0$: draw $x_{t-1} \sim q(x_{t-1} \mid x_0)$ and
$x_t \sim q(x_t \mid x_{t-1})$. The gradient of $\log p_\theta(x_{t-1} \mid x_t)$ is

$$\nabla_J = \langle s_i s_j \rangle_{\text{data}} - \langle s_i s_j \rangle_{\text{model}}, \qquad
  \nabla_h = \langle s_i \rangle_{\text{data}} - \langle s_i \rangle_{\text{model}}:$$

the positive phase clamps $x_{t-1}$ and $x_t$ and samples the latents; the negative phase clamps
only $x_t$ (each chain its example's) and samples $x_{t-1}$ and the latents. Both run
`train_burn_in` sweeps, then record `train_samples` states `train_thinning` sweeps apart.
Negative chains are `fresh` (one per example, started as sampling starts them: `chain_start`),
`persistent` (`fantasy_chains` per step, continuing from their last states), or
`fresh-persistent-noise`: fresh, but the step from pure noise keeps its B chains across
iterations (its $x_T$ clamps are redrawn each time), so they approach that step's equilibrium
over training instead of staying near the start in one mode. `noise_step_backend` runs that
step's negative phase on a registered backend of its own (such as `jax-sim-tempering`, whose
replicas at lower beta let chains cross between modes within one call).

The reverse steps are independent models, so the `steps_per_iteration` steps of an iteration
are sampled together: the program is `steps_per_iteration` disjoint copies of the reverse-step
graph (`tsu_core.Topology.copies`), copy k carrying step k's parameters, and each phase is one
`program.moments` call for all of them. Moments stay on the device (DLPack) and the update
reads nothing back to the host.

The correlation penalty adds $\lambda_t (\langle s_i\rangle \langle s_j\rangle -
\langle s_i s_j\rangle)$, negative-phase moments, to the gradient of each learned coupling of
step t: it pulls couplings towards decorrelating their spins, so chains keep mixing. With
`adaptive_penalty`, $\lambda_t$ follows the measured autocorrelation of step t's chains
(`mixing.py`). Without the penalty the update is the maximum-likelihood gradient alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as distributed

import tsu_core
from bitflip_dtm.config import Config
from bitflip_dtm.data import CONVERSION_CHUNK, data_spins
from bitflip_dtm.graph import ReverseGraph, build_graph
from bitflip_dtm.mixing import adapt_penalty, chain_autocorrelation
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import chain_start, compile_program
from tsu_core.arrays import to_torch
from tsu_core.distributed import average_gradients
from tsu_core.request import estimate_bytes

log = logging.getLogger(__name__)


def world() -> tuple[int, int]:
    """(rank, world size) under `torch.distributed` (torchrun), else (0, 1)."""
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


def iteration_seed(seed: int, iteration: int) -> int:
    """The torch seed of one iteration: a pure function of (seed, iteration), so a resumed run
    draws the same batches and noise as an uninterrupted one."""
    return tsu_core.Key(seed).fold_in(iteration).value & ((1 << 63) - 1)


def learning_rate(config: Config, iteration: int) -> float:
    """The learning rate at an iteration: cosine decay from `learning_rate` to
    `learning_rate * learning_rate_floor` at `iterations`."""
    progress = min(iteration / config.iterations, 1.0)
    floor = config.learning_rate_floor
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def training_memory(config: Config, num_images: int, graph: ReverseGraph | None = None) -> int:
    r"""Bytes a training run holds at its peak, estimated from the shapes alone.

    $$ M (4 P_x + D) + c P_x (20 + 9 k) + 16 T (E_\ell + D + H) + T F N
       + (K + 1) 16 N \Delta + K (R(B) + R(F)) $$

    for M training images of $P_x$ = C S^2 pixel channels at k bits each and D visible bits:
    the images in float32 and their spins, and the int64 levels, Gray codes and bit planes of
    one chunk of c = `data.CONVERSION_CHUNK` images being converted; T steps of $E_\ell$
    learned weights, D visible and H latent biases in float32 with their gradients and AdamW's
    two moments; the persistent chains, F per step of N = 2D + H int8 spins (none for `fresh`
    chains, B of the last step for `fresh-persistent-noise`); the graph as a backend holds it,
    K = `steps_per_iteration` stacked copies and the single one, each node's neighbours padded
    to the largest degree $\Delta$, as jax-sim's neighbour lists are (a neighbour and an edge
    index, a weight and a spin per slot: 16 bytes); and what the tsu-core protocol bounds a
    call of B (positive phase) and F chains (negative phase) on the K copies to,
    $R(\cdot)$ = `tsu_core.request.estimate_bytes`; with `noise_step_backend`, one more graph
    and one more call of F chains (what a backend holds beyond the protocol's bound, such as
    tempering's replicas, is its own to check against its `max_request_bytes`).
    The JAX or torch runtime's own memory (compiled programs, thread pools) is not in it.

    Arguments:
        config: the run's configuration.
        num_images: the training images, M.
        graph: the reverse-step graph (None: built from the config, a fraction of a second).

    Returns:
        The estimate in bytes; `tests/test_train.py` holds it against a measured peak.
    """
    graph = graph if graph is not None else build_graph(config)
    topology = graph.topology
    nodes = topology.num_nodes
    pixels = config.channels * config.image_size**2
    data = num_images * (4 * pixels + graph.num_bits)
    conversion = min(num_images, CONVERSION_CHUNK) * pixels * (20 + 9 * config.bits_per_channel)
    parameters = config.num_steps * (graph.num_learned_edges + graph.num_bits + graph.num_latents)
    negative = config.fantasy_chains if config.chains == "persistent" else config.batch_size
    kept = {"persistent": config.num_steps * negative, "fresh-persistent-noise": negative}
    persistent = kept.get(config.chains, 0) * nodes
    copies = min(config.steps_per_iteration, config.num_steps)
    sweeps = config.train_burn_in + config.train_samples * config.train_thinning

    def call(chains: int) -> int:
        return estimate_bytes(topology, chains, config.train_samples, sweeps)

    neighbours = 16 * nodes * int(topology.adjacency.degrees().max(initial=0))
    sampling = (copies + 1) * neighbours + copies * (call(config.batch_size) + call(negative))
    if config.noise_step_backend:
        sampling += neighbours + call(negative)  # the step from noise's own program and call
    return data + conversion + 16 * parameters + persistent + sampling


@dataclass
class StepStatistics:
    """What one training iteration measured; tensors stay on the device until read."""

    iteration: int
    steps: list[int]
    contrastive_gap: torch.Tensor  # mean |<s s>_data - <s s>_model| over learned edges


class Trainer:
    """Holds the model, its optimiser, the compiled programs, the chains and the data.

    Arguments:
        config: the configuration.
        images: training images (M, C, S, S) in [0, 1].
        device: where parameters and chains live.
        backend: a tsu-core backend (None: `tsu_core.get_backend()`, honouring TSU_BACKEND).
        labels: the images' classes (M,), needed when the config has label bits.
        max_copies_per_call: at most this many steps per backend call (None: all the steps of
            an iteration, as far as the backend's size limit allows).
    """

    def __init__(
        self,
        config: Config,
        images: torch.Tensor,
        device: torch.device | str = "cpu",
        backend: tsu_core.Backend | None = None,
        labels: torch.Tensor | None = None,
        max_copies_per_call: int | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        # Data-parallel over the batch: each rank takes its slice of a world_size x batch_size
        # batch and runs its own chains; gradients are averaged before every AdamW step.
        self.rank, self.world_size = world()
        self.model = DTM(config).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.backend = backend if backend is not None else tsu_core.get_backend()
        self.program = compile_program(self.model, self.backend)
        graph = self.model.graph
        self.num_copies = min(config.steps_per_iteration, config.num_steps)
        # Copies per call: all steps of an iteration, unless the backend's size limit (the
        # exact reference backend enumerates) allows fewer; then the steps go in equal chunks.
        limit = self.backend.capabilities.max_nodes
        fits = self.num_copies if limit is None else limit // graph.topology.num_nodes
        fits = fits if max_copies_per_call is None else min(fits, max_copies_per_call)
        self.copies_per_call = max(
            count for count in range(1, self.num_copies + 1)
            if self.num_copies % count == 0 and count <= max(fits, 1)
        )  # fmt: skip
        self.stacked_program = (
            self.backend.compile(graph.topology.copies(self.copies_per_call))
            if self.copies_per_call > 1
            else self.program
        )
        # The step from noise's negative phase on a backend of its own (`noise_step_backend`),
        # one copy of the graph: the stacked call still samples that copy, and its moments are
        # replaced (1/K of one call's work wasted, one compiled program instead of two).
        self.noise_program = (
            tsu_core.get_backend(config.noise_step_backend).compile(graph.topology)
            if config.noise_step_backend
            else None
        )
        self.data = data_spins(images, labels, config).to(self.device)
        # Persistent chains: (T, F, N) for `persistent`; for `fresh-persistent-noise` (1, B, N)
        # once the step from noise has had its first negative phase, empty before.
        self.fantasy = torch.zeros(0, dtype=torch.int8, device=self.device)
        if config.chains == "persistent":
            generator = torch.Generator().manual_seed(config.seed + self.rank)
            shape = (config.num_steps, config.fantasy_chains, graph.topology.num_nodes)
            # Drawn as int8: int64 draws would be eight times the chains' size.
            bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
            self.fantasy = bits.mul_(2).sub_(1).to(self.device)
        # Each step's penalty weight and its chains' last measured autocorrelation (NaN: none).
        self.penalty = torch.full((config.num_steps,), config.correlation_penalty).double()
        self.autocorrelation = torch.full((config.num_steps,), math.nan).double()
        self.iteration = 0
        self.key = (
            tsu_core.Key(config.seed).fold_in(self.rank) if self.rank else tsu_core.Key(config.seed)
        )
        nodes, copies = graph.topology.num_nodes, np.arange(self.copies_per_call)[:, None]
        both = np.concatenate([graph.visible, graph.noisy])
        self._positive_clamp = (copies * nodes + both).ravel()
        self._negative_clamp = (copies * nodes + graph.noisy).ravel()

    # -- one iteration ---------------------------------------------------------------------------
    def train_step(self) -> StepStatistics:
        """One iteration: `steps_per_iteration` reverse steps, two backend calls, one update."""
        config, model = self.config, self.model
        if config.adaptive_penalty and self.iteration % config.penalty_every == 0:
            self.adapt_penalty()
        generator = torch.Generator().manual_seed(iteration_seed(config.seed, self.iteration))
        key = self.key.fold_in(self.iteration)
        steps = sorted(
            (torch.randperm(config.num_steps, generator=generator)[: self.num_copies] + 1).tolist()
        )
        size = config.batch_size
        batch = torch.randint(0, self.data.shape[0], (self.world_size * size,), generator=generator)
        batch = batch[self.rank * size : (self.rank + 1) * size]
        noise = torch.Generator(device=self.device).manual_seed(
            iteration_seed(config.seed + self.rank, self.iteration)
        )
        spins_0 = self.data[batch.to(self.device)]
        spins_previous, spins_t = model.forward_process.pairs(spins_0, steps, noise)
        self.optimizer.zero_grad(set_to_none=True)
        gap = self.estimate_gradient(steps, spins_previous, spins_t, key)
        if self.world_size > 1:
            average_gradients(model.parameters())
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.iteration)
        self.optimizer.step()
        self.iteration += 1
        return StepStatistics(self.iteration, steps, gap)

    def estimate_gradient(
        self,
        steps: list[int],
        spins_previous: torch.Tensor,
        spins_t: torch.Tensor,
        key: tsu_core.Key,
    ) -> torch.Tensor:
        """Add minus the estimated gradient of the mean $\\log p_\\theta(x_{t-1} \\mid x_t)$ (plus
        the penalty) to the `.grad` of the given steps' parameters.

        Arguments:
            steps: the steps t (K of them).
            spins_previous: (K, B, D) $x_{t-1}$, row k for `steps[k]`.
            spins_t: (K, B, D) $x_t$, paired with `spins_previous`.

        Returns:
            the mean |edge moment gap| of the learned edges (a tensor on the device).
        """
        per_call = self.copies_per_call
        phases = [
            self._moments(
                steps[first : first + per_call],
                spins_previous[first : first + per_call],
                spins_t[first : first + per_call],
                key.fold_in(first),
            )
            for first in range(0, len(steps), per_call)
        ]
        return self._surrogate(steps, *[torch.cat(parts) for parts in zip(*phases, strict=True)])

    def _moments(
        self,
        steps: list[int],
        spins_previous: torch.Tensor,
        spins_t: torch.Tensor,
        key: tsu_core.Key,
    ) -> tuple[torch.Tensor, ...]:
        """Both phases for up to `copies_per_call` steps in one call each: the positive and
        negative node (K, N) and edge (K, E) moments, on the device."""
        config, graph = self.config, self.model.graph
        copies, size, _ = spins_t.shape
        parameters = self.model.stacked_parameters(steps)
        positive_key, negative_key, start_key = key.split(3)
        schedule = {
            "num_samples": config.train_samples,
            "burn_in": config.train_burn_in,
            "thinning": config.train_thinning,
        }
        # Where the step from pure noise sits among this call's copies (None: not in it).
        noise_step = steps.index(config.num_steps) if config.num_steps in steps else None
        keep_noise_chains = config.chains == "fresh-persistent-noise" and noise_step is not None
        if config.chains != "persistent":
            noisy = spins_t.permute(1, 0, 2)  # (B, K, D)
            start = chain_start(noisy, graph.num_latents, start_key)
            if keep_noise_chains and self.fantasy.numel():
                free = graph.num_bits + graph.num_latents
                start[:, noise_step, :free] = self.fantasy[0, :, :free]
        else:
            chains = torch.arange(config.fantasy_chains, device=self.device) % size
            noisy = spins_t[:, chains].permute(1, 0, 2)  # (C, K, D)
            start = self.fantasy[torch.tensor(steps) - 1].permute(1, 0, 2).clone()
            start[..., graph.num_bits + graph.num_latents :] = noisy
        initial = start.reshape(start.shape[0], -1)  # (C, K N): chain c's copies side by side
        # The positive phase starts its latents where the negative phase does (its visible bits
        # are clamped): the two calls then have the same shapes and share one compiled program.
        clamped = torch.cat([spins_previous, spins_t], dim=2).permute(1, 0, 2).reshape(size, -1)
        positive = self.stacked_program.moments(
            parameters,
            key=positive_key,
            num_chains=size,
            clamp=tsu_core.Clamp(self._positive_clamp, clamped),
            initial_state=initial[:size] if initial.shape[0] >= size else None,
            **schedule,
        )
        negative = self.stacked_program.moments(
            parameters,
            key=negative_key,
            num_chains=initial.shape[0],
            clamp=tsu_core.Clamp(self._negative_clamp, noisy.reshape(initial.shape[0], -1)),
            initial_state=initial,
            **schedule,
        )
        dtype = self.model.steps[0].weights.dtype
        moments = [
            to_torch(values, self.device, dtype).reshape(copies, -1)
            for values in (positive.nodes, positive.edges, negative.nodes, negative.edges)
        ]
        final = None
        if config.chains == "persistent" or keep_noise_chains:
            final = to_torch(negative.final_state, self.device, torch.int8)
            final = final.reshape(start.shape[0], copies, -1)
        if self.noise_program is not None and noise_step is not None:
            tempered = self.noise_program.moments(
                self.model.parameters_for(config.num_steps),
                key=negative_key.fold_in(config.num_steps),
                num_chains=start.shape[0],
                clamp=tsu_core.Clamp(graph.noisy, noisy[:, noise_step]),
                initial_state=start[:, noise_step],
                **schedule,
            )
            # Copies: the arrays from DLPack share the backend's (immutable) buffers.
            moments[2], moments[3] = moments[2].clone(), moments[3].clone()
            moments[2][noise_step] = to_torch(tempered.nodes, self.device, dtype)
            moments[3][noise_step] = to_torch(tempered.edges, self.device, dtype)
            if final is not None:
                final = final.clone()
                final[:, noise_step] = to_torch(tempered.final_state, self.device, torch.int8)
        if config.chains == "persistent":
            self.fantasy[torch.tensor(steps) - 1] = final.permute(1, 0, 2)
        elif keep_noise_chains:
            self.fantasy = final[None, :, noise_step].clone()
        return tuple(moments)

    def _surrogate(
        self,
        steps: list[int],
        positive_nodes: torch.Tensor,
        positive_edges: torch.Tensor,
        negative_nodes: torch.Tensor,
        negative_edges: torch.Tensor,
    ) -> torch.Tensor:
        """Backpropagate a surrogate whose gradient is minus the estimated log-likelihood
        gradient (plus the penalty); returns the mean |edge moment gap| (on the device)."""
        model, graph = self.model, self.model.graph
        learned = graph.num_learned_edges
        num_bits, num_latents = graph.num_bits, graph.num_latents
        dtype = model.steps[0].weights.dtype
        negative_edges = negative_edges[:, :learned]
        edge_gap = positive_edges[:, :learned] - negative_edges
        gap = edge_gap.abs().mean().detach()
        penalty = self.penalty[torch.tensor(steps) - 1].to(self.device, dtype)
        if bool((penalty > 0).any()):
            first, second = model.edge_first[:learned], model.edge_second[:learned]
            connected = negative_nodes[:, first] * negative_nodes[:, second] - negative_edges
            edge_gap = edge_gap + penalty[:, None] * connected
        node_gap = positive_nodes - negative_nodes
        stacked = [model.steps[t - 1] for t in steps]
        surrogate = -(
            (torch.stack([step.weights for step in stacked]) * edge_gap).sum()
            + (torch.stack([step.visible_bias for step in stacked]) * node_gap[:, :num_bits]).sum()
            + (
                torch.stack([step.latent_bias for step in stacked])
                * node_gap[:, num_bits : num_bits + num_latents]
            ).sum()
        )
        surrogate.backward()
        return gap

    # -- the adaptive correlation penalty --------------------------------------------------------
    def adapt_penalty(self) -> None:
        """Measure every step's chain autocorrelation and adapt its penalty weight."""
        config = self.config
        key = self.key.fold_in(self.iteration).fold_in(0x5EED)
        examples = self.data[: min(16, self.data.shape[0])]
        for t in range(1, config.num_steps + 1):
            value, _ = chain_autocorrelation(self.model, self.program, examples, t, key.fold_in(t))
            previous = float(self.autocorrelation[t - 1])
            if not math.isnan(previous):
                self.penalty[t - 1] = adapt_penalty(
                    float(self.penalty[t - 1]), value, previous, config.penalty_threshold
                )
            self.autocorrelation[t - 1] = value
        log.info(
            "iteration %d: autocorrelation %s, penalty %s",
            self.iteration,
            np.round(self.autocorrelation.numpy(), 4).tolist(),
            np.round(self.penalty.numpy(), 5).tolist(),
        )

    # -- the loop --------------------------------------------------------------------------------
    def train(self, iterations: int | None = None, progress: bool = False, callback=None) -> None:
        """Run iterations (default: up to `config.iterations`); `callback(trainer, stats)` after
        each one (checkpoints, grids; it may raise to stop the loop)."""
        from tqdm.auto import tqdm

        target = self.config.iterations if iterations is None else self.iteration + iterations
        with tqdm(total=target, initial=self.iteration, disable=not progress, desc="train") as bar:
            while self.iteration < target:
                stats = self.train_step()
                bar.update(1)
                if progress and self.iteration % 10 == 0:  # reading the gap waits for the device
                    bar.set_postfix(gap=f"{float(stats.contrastive_gap):.4f}")
                if callback is not None:
                    callback(self, stats)
