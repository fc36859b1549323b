r"""Training: PCD-k per reverse step, a binary denoising term, an optional mixing penalty, AdamW.

For step t and a data batch $x_0$: draw $x_{t-1} \sim q(x_{t-1} \mid x_0)$ and
$x_t \sim q(x_t \mid x_{t-1})$. The log-likelihood gradient of $p_\theta(x_{t-1} \mid x_t)$ is

$$\nabla_J = \langle s_i s_j \rangle_{\text{data}} - \langle s_i s_j \rangle_{\text{model}}, \qquad
  \nabla_h = \langle s_i \rangle_{\text{data}} - \langle s_i \rangle_{\text{model}}:$$

the positive phase clamps $x_{t-1}$ and $x_t$ (one `tsu_core.Clamp` with per-chain values) and
samples the latents; the negative phase runs `fantasy_chains` persistent chains per step for
`pcd_steps` sweeps with only $x_t$ clamped (the batch's $x_t$, repeated), continuing from their
last states. Moments come from `program.moments` and move to torch through DLPack.

The denoising term is a cross-entropy between every visible bit's conditional under the model,
$\sigma(2 f_i)$ with $f_i$ its local field given the other bits of $x_{t-1}$, the sampled
latents and $x_t$, and the forward posterior $q(s_{t-1,i} = +1 \mid s_t, s_0)$ (`forward.py`):
binary ratio matching with the posterior as a Rao-Blackwellised target.

The mixing penalty (weight `mixing_weight`, off by default) is the mean probability that a
heat-bath update leaves a visible spin of the fantasy chains unchanged, $(1 + \tanh^2 f_i)/2$;
it keeps conditionals soft so block Gibbs chains decorrelate fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as distributed
import torch.nn.functional as functional

import tsu_core
from bitflip_dtm._arrays import to_torch
from bitflip_dtm.config import Config
from bitflip_dtm.data import bits_to_spins, images_to_bits
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import compile_program

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


@dataclass
class StepStatistics:
    """What one training iteration measured."""

    iteration: int
    steps: list[int]
    contrastive_gap: float  # mean |<s s>_data - <s s>_model| over learned edges
    denoising: float  # mean cross-entropy per bit
    mixing: float
    extras: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Holds the model, its optimiser, the compiled program, persistent chains and the data.

    Arguments:
        config: the configuration.
        images: training images (M, C, S, S) in [0, 1].
        device: where parameters and chains live.
        backend: a tsu-core backend (None: `tsu_core.get_backend()`, honouring TSU_BACKEND).
    """

    def __init__(
        self,
        config: Config,
        images: torch.Tensor,
        device: torch.device | str = "cpu",
        backend: tsu_core.Backend | None = None,
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
        self.data = bits_to_spins(images_to_bits(images, config)).to(self.device)
        generator = torch.Generator().manual_seed(config.seed + self.rank)
        shape = (config.num_steps, config.fantasy_chains, graph.topology.num_nodes)
        self.fantasy = (2 * torch.randint(0, 2, shape, generator=generator) - 1).to(
            device=self.device, dtype=torch.int8
        )
        self.iteration = 0
        self.key = (
            tsu_core.Key(config.seed).fold_in(self.rank) if self.rank else tsu_core.Key(config.seed)
        )
        self._clamp_visible_and_noisy = np.concatenate([graph.visible, graph.noisy])

    def train_step(self) -> StepStatistics:
        """One iteration: `steps_per_iteration` random reverse steps, one AdamW update."""
        config, model, graph = self.config, self.model, self.model.graph
        generator = torch.Generator().manual_seed(iteration_seed(config.seed, self.iteration))
        key = self.key.fold_in(self.iteration)
        count = min(config.steps_per_iteration, config.num_steps)
        steps = (torch.randperm(config.num_steps, generator=generator)[:count] + 1).tolist()
        size = config.batch_size
        batch = torch.randint(0, self.data.shape[0], (self.world_size * size,), generator=generator)
        batch = batch[self.rank * size : (self.rank + 1) * size]
        if self.rank:
            generator = torch.Generator().manual_seed(
                iteration_seed(config.seed + self.rank, self.iteration)
            )
        spins_0 = self.data[batch.to(self.device)]
        self.optimizer.zero_grad(set_to_none=True)
        gaps, denoising_terms, mixing_terms = [], [], []
        learned = graph.num_learned_edges
        num_bits, num_latents = graph.num_bits, graph.num_latents
        for t in steps:
            spins_previous = model.forward_process.noise(spins_0, t - 1, generator)
            spins_t = model.forward_process.step(spins_previous, t, generator)
            parameters = model.parameters_for(t)
            positive_key, negative_key = key.fold_in(t).split(2)
            positive = self.program.moments(
                parameters,
                key=positive_key,
                num_chains=config.batch_size,
                num_samples=1,
                clamp=tsu_core.Clamp(
                    self._clamp_visible_and_noisy,
                    torch.cat([spins_previous, spins_t], dim=1),
                ),
            )
            chains = torch.arange(config.fantasy_chains, device=self.device) % config.batch_size
            fantasy_noisy = spins_t[chains]
            initial = self.fantasy[t - 1].clone()
            initial[:, num_bits + num_latents :] = fantasy_noisy
            negative = self.program.moments(
                parameters,
                key=negative_key,
                num_chains=config.fantasy_chains,
                num_samples=config.pcd_steps,
                clamp=tsu_core.Clamp(graph.noisy, fantasy_noisy),
                initial_state=initial,
            )
            final = to_torch(negative.final_state, self.device, torch.int8)
            self.fantasy[t - 1] = final
            dtype = model.steps[0].weights.dtype
            positive_nodes = to_torch(positive.nodes, self.device, dtype)
            negative_nodes = to_torch(negative.nodes, self.device, dtype)
            edge_gap = (
                to_torch(positive.edges, self.device, dtype)[:learned]
                - to_torch(negative.edges, self.device, dtype)[:learned]
            )
            node_gap = positive_nodes - negative_nodes
            step = model.steps[t - 1]
            # A surrogate whose gradient is minus the log-likelihood gradient (moments detached).
            contrastive = -(
                step.weights @ edge_gap
                + step.visible_bias @ node_gap[:num_bits]
                + step.latent_bias @ node_gap[num_bits : num_bits + num_latents]
            )
            loss = contrastive
            positive_state = to_torch(positive.final_state, self.device, torch.int8)
            fields = model.local_fields(t, positive_state)[:, :num_bits]
            target = model.forward_process.posterior_up(spins_t, spins_0, t).to(fields.dtype)
            cross_entropy = functional.binary_cross_entropy_with_logits(
                2 * fields, target, reduction="none"
            ).sum(1)
            denoising = cross_entropy.mean()
            if config.denoising_weight > 0:
                loss = loss + config.denoising_weight * denoising
            if config.mixing_weight > 0:
                fantasy_fields = model.local_fields(t, final)[:, :num_bits]
                mixing = ((1 + torch.tanh(fantasy_fields) ** 2) / 2).mean()
                loss = loss + config.mixing_weight * num_bits * mixing
                mixing_terms.append(mixing.item())
            loss.backward()
            gaps.append(float(edge_gap.abs().mean()) if learned else 0.0)
            denoising_terms.append(denoising.item() / num_bits)
        if self.world_size > 1:
            for parameter in model.parameters():
                if parameter.grad is not None:
                    distributed.all_reduce(parameter.grad)
                    parameter.grad /= self.world_size
        self.optimizer.step()
        self.iteration += 1
        return StepStatistics(
            self.iteration,
            steps,
            sum(gaps) / len(gaps),
            sum(denoising_terms) / len(denoising_terms),
            sum(mixing_terms) / len(mixing_terms) if mixing_terms else 0.0,
        )

    def train(self, iterations: int | None = None, progress: bool = False, callback=None) -> None:
        """Run iterations (default: up to `config.iterations`); `callback(trainer, stats)` after
        each one (checkpoints, grids)."""
        from tqdm.auto import tqdm

        target = self.config.iterations if iterations is None else self.iteration + iterations
        bar = tqdm(total=target, initial=self.iteration, disable=not progress, desc="train")
        while self.iteration < target:
            stats = self.train_step()
            bar.update(1)
            bar.set_postfix(gap=f"{stats.contrastive_gap:.3f}", denoise=f"{stats.denoising:.3f}")
            if callback is not None:
                callback(self, stats)
        bar.close()
