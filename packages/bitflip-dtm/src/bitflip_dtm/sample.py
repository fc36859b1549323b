r"""Sampling: start from uniform random bits and run the T reverse steps on the backend.

Reverse step t clamps the $x_t$ nodes of every chain to its current image and runs
`sweeps_per_step` block Gibbs sweeps over $x_{t-1}$ and the latents, starting $x_{t-1}$ at
$x_t$ (the closest guess: the two differ in a fraction $q_t$ of bits) and the latents at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import tsu_core
from bitflip_dtm._arrays import to_torch
from bitflip_dtm.model import DTM


@dataclass
class SampleResult:
    """Final spins (B, D) and, when asked for, the spins after every step: `intermediates[k]`
    is $x_{T-k}$ for k = 0 .. T (so `intermediates[0]` is the starting noise)."""

    spins: torch.Tensor
    intermediates: list[torch.Tensor] | None = None


def compile_program(model: DTM, backend: tsu_core.Backend | None = None) -> tsu_core.Program:
    """The model's reverse-step topology compiled once by the backend (`TSU_BACKEND` if None)."""
    backend = backend if backend is not None else tsu_core.get_backend()
    return backend.compile(model.graph.topology)


def _random_spins(shape: tuple[int, ...], key: tsu_core.Key, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(key.value & ((1 << 63) - 1))
    bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (2 * bits - 1).to(device)


def reverse_step(
    model: DTM,
    program: tsu_core.Program,
    t: int,
    spins_t: torch.Tensor,
    key: tsu_core.Key,
    sweeps: int | None = None,
) -> torch.Tensor:
    r"""One draw of $x_{t-1} \sim p_\theta(x_{t-1} \mid x_t)$ per row of `spins_t` (B, D).

    Returns the whole final state (B, N): $x_{t-1}$, the latents, and the clamped $x_t$.
    """
    graph = model.graph
    sweeps = model.config.sweeps_per_step if sweeps is None else sweeps
    spins_t = spins_t.to(torch.int8)
    count = spins_t.shape[0]
    latent_key, sample_key = key.split(2)
    latents = _random_spins((count, graph.num_latents), latent_key, spins_t.device)
    initial = torch.cat([spins_t, latents, spins_t], dim=1)
    result = program.sample(
        model.parameters_for(t),
        key=sample_key,
        num_chains=count,
        num_samples=1,
        burn_in=sweeps - 1,
        clamp=tsu_core.Clamp(graph.noisy, spins_t),
        initial_state=initial,
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
) -> SampleResult:
    """Draw `num_images` images (as spins) by running every reverse step from uniform noise."""
    from tqdm.auto import tqdm

    key = tsu_core.as_key(key)
    device = model.steps[0].weights.device
    spins = _random_spins((num_images, model.graph.num_bits), key.fold_in(0), device)
    intermediates = [spins] if keep_intermediates else None
    steps = range(model.num_steps, 0, -1)
    for t in tqdm(steps, desc="reverse steps", disable=not progress, leave=False):
        state = reverse_step(model, program, t, spins, key.fold_in(t), sweeps)
        spins = state[:, : model.graph.num_bits]
        if intermediates is not None:
            intermediates.append(spins)
    return SampleResult(spins, intermediates)
