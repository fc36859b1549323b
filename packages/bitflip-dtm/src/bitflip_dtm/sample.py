r"""Sampling: start from uniform random bits and run the T reverse steps on the backend.

Reverse step t clamps the $x_t$ nodes of every chain to its current image and runs
`sweeps_per_step` block Gibbs sweeps over $x_{t-1}$ and the latents, starting $x_{t-1}$ at
$x_t$ (the closest guess: the two differ in a fraction $q_t$ of bits) and the latents at random
(`chain_start`, which training's fresh chains share). With `generation_beta_start` and
`generation_beta_end` set, beta rises linearly over the sweeps of each step (annealing).

A model with label bits can also be sampled for given classes: each step then clamps the label
bits of $x_{t-1}$ to the classes' one-hot codes beside $x_t$, so every step draws from the
model's conditional given the label (the first step's $x_T$ labels stay noise, as the forward
process leaves them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import tsu_core
from bitflip_dtm.config import NUM_CLASSES
from bitflip_dtm.data import label_spins
from bitflip_dtm.model import DTM
from tsu_core.arrays import to_torch


@dataclass
class SampleResult:
    """Final spins (B, D) and, when asked for, the spins after every step: `intermediates[k]`
    is $x_{T-k}$ for k = 0 .. T (so `intermediates[0]` is the starting noise)."""

    spins: torch.Tensor
    intermediates: list[torch.Tensor] | None = None


def balanced_classes(num_images: int) -> torch.Tensor:
    """Class i mod 10 for image i: every class equally often (to within one image)."""
    return torch.arange(num_images) % NUM_CLASSES


def compile_program(model: DTM, backend: tsu_core.Backend | None = None) -> tsu_core.Program:
    """The model's reverse-step topology compiled once by the backend (`TSU_BACKEND` if None)."""
    backend = backend if backend is not None else tsu_core.get_backend()
    return backend.compile(model.graph.topology)


def random_spins(shape: tuple[int, ...], key: tsu_core.Key, device: torch.device) -> torch.Tensor:
    """Uniform spins drawn on `device` (a generator there, seeded by the key)."""
    generator = torch.Generator(device=device).manual_seed(key.value & ((1 << 63) - 1))
    bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8, device=device)
    return 2 * bits - 1


def chain_start(spins_t: torch.Tensor, num_latents: int, key: tsu_core.Key) -> torch.Tensor:
    """Where a chain of a reverse step starts, (..., 2D + H) int8: $x_{t-1} = x_t$, random
    latents, and $x_t$ (clamped). `spins_t` is (..., D) on the chains' device."""
    latents = random_spins((*spins_t.shape[:-1], num_latents), key, spins_t.device)
    spins_t = spins_t.to(torch.int8)
    return torch.cat([spins_t, latents, spins_t], dim=-1)


def generation_schedule(model: DTM) -> tsu_core.BetaSchedule | float:
    """The beta schedule of one reverse step when sampling (1 when not annealed)."""
    config = model.config
    if config.generation_beta_start == config.generation_beta_end == 1.0:
        return 1.0
    return tsu_core.linear(config.generation_beta_start, config.generation_beta_end)


def reverse_step(
    model: DTM,
    program: tsu_core.Program,
    t: int,
    spins_t: torch.Tensor,
    key: tsu_core.Key,
    sweeps: int | None = None,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""One draw of $x_{t-1} \sim p_\theta(x_{t-1} \mid x_t)$ per row of `spins_t` (B, D);
    with `classes` (B,), of $x_{t-1}$ given its label bits set to those classes.

    Returns the whole final state (B, N): $x_{t-1}$, the latents, and the clamped $x_t$.
    """
    graph = model.graph
    sweeps = model.config.sweeps_per_step if sweeps is None else sweeps
    spins_t = spins_t.to(torch.int8)
    latent_key, sample_key = key.split(2)
    clamp = tsu_core.Clamp(graph.noisy, spins_t)
    start = chain_start(spins_t, graph.num_latents, latent_key)
    if classes is not None:
        labels = label_spins(classes, model.config).to(spins_t.device)
        label_nodes = model.config.num_image_bits + np.arange(labels.shape[1])
        clamp = tsu_core.Clamp(
            np.concatenate([graph.noisy, label_nodes]), torch.cat([spins_t, labels], dim=1)
        )
        start[:, torch.as_tensor(label_nodes, device=start.device)] = labels
    result = program.sample(
        model.parameters_for(t),
        key=sample_key,
        num_chains=spins_t.shape[0],
        num_samples=1,
        burn_in=sweeps - 1,
        schedule=generation_schedule(model),
        clamp=clamp,
        initial_state=start,
    )
    return to_torch(result.final_state, spins_t.device, torch.int8)


@torch.no_grad()
def sample(
    model: DTM,
    program: tsu_core.Program,
    num_images: int,
    key: tsu_core.Key | int,
    sweeps: int | None = None,
    keep_intermediates: bool = False,
    progress: bool = False,
    readout: str | None = None,
    classes: torch.Tensor | None = None,
) -> SampleResult:
    """Draw `num_images` images (as spins) by running every reverse step from uniform noise.

    `readout` (default `config.readout`) is what the last step returns: "sample", the chains'
    final $x_0$, or "mode", each bit set to its more probable value given the rest of the
    final state (the latents and $x_1$): the draw without the last update's coin flips.
    """
    from tqdm.auto import tqdm

    key = tsu_core.as_key(key)
    device = model.steps[0].weights.device
    if classes is not None:
        if not model.config.label_copies:
            raise ValueError("classes: this model has no label bits (label_copies=0)")
        classes = torch.as_tensor(classes, dtype=torch.int64, device=device)
        in_range = bool(((classes >= 0) & (classes < NUM_CLASSES)).all())
        if classes.shape != (num_images,) or not in_range:
            raise ValueError(
                f"classes: expected {num_images} class indices in 0..{NUM_CLASSES - 1}"
            )
    spins = random_spins((num_images, model.graph.num_bits), key.fold_in(0), device)
    intermediates = [spins] if keep_intermediates else None
    steps = range(model.num_steps, 0, -1)
    readout = model.config.readout if readout is None else readout
    for t in tqdm(steps, desc="reverse steps", disable=not progress, leave=False):
        state = reverse_step(model, program, t, spins, key.fold_in(t), sweeps, classes)
        if t == 1 and readout == "mode":
            fields = model.local_fields(1, state)[:, : model.graph.num_bits]
            state[:, : model.graph.num_bits] = torch.where(fields >= 0, 1, -1).to(state.dtype)
        spins = state[:, : model.graph.num_bits]
        if intermediates is not None:
            intermediates.append(spins)
    return SampleResult(spins, intermediates)
