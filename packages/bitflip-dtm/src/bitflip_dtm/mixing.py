r"""How well the chains of a reverse step mix, and the adaptive correlation penalty built on it.

`chain_autocorrelation` runs chains of step t as sampling runs them (from `chain_start`, with
$x_t \sim q(x_t \mid x_0)$ of a few examples clamped), records their visible bits every
`interval` sweeps, projects them on a fixed random basis of `PROJECTIONS` directions, and
estimates the autocorrelation $\rho(\ell)$ of the projections at every lag $\ell$ up to half
the recording. For the chains of one example (one clamped $x_t$) and one direction, with the
projections divided by their standard deviation over those chains and the record,

$$\rho(\ell) = \overline{y_\tau\, y_{\tau+\ell}} - \overline{y}_{\text{start}}\,
  \overline{y}_{\text{end}},$$

averaged over the chains and start times $\tau$, where the subtracted product of the means of
the first and last stretches of the record removes what the chains of one example share; the
curve is the average over examples and directions. The figure of
merit is $\rho$ averaged over the longest lags (the last sixteenth): how much a chain still
remembers its state about one training chain's length of sweeps earlier.

`adapt_penalty` is the DTM paper's control rule for the correlation penalty $\lambda_t$, applied
after each measurement: lower it when the autocorrelation is under the threshold (the more,
the further under), raise it when the autocorrelation grew (by half again when it is far over),
and let it decay slowly otherwise; a weight under `PENALTY_MIN` is switched off.
"""

from __future__ import annotations

import numpy as np
import torch

import tsu_core
from bitflip_dtm.model import DTM
from bitflip_dtm.sample import chain_start
from tsu_core.arrays import to_torch

PROJECTIONS = 32
CHAINS_PER_EXAMPLE = 4
INTERVAL = 4  # sweeps between recorded states
PENALTY_MIN = 1e-3


def measurement_sweeps(model: DTM) -> int:
    """Sweeps recorded per measurement: twice a training chain's length (burn-in + samples),
    so lags reach one chain length."""
    config = model.config
    length = config.train_burn_in + config.train_samples * config.train_thinning
    return max(2 * length, 16 * INTERVAL)


@torch.no_grad()
def chain_autocorrelation(
    model: DTM,
    program: tsu_core.Program,
    spins_0: torch.Tensor,
    t: int,
    key: tsu_core.Key | int,
    sweeps: int | None = None,
    interval: int = INTERVAL,
) -> tuple[float, np.ndarray]:
    """The long-lag autocorrelation of step t's chains and the whole curve.

    Arguments:
        spins_0: examples (M, D) whose noisy versions are clamped; `CHAINS_PER_EXAMPLE` chains
            each.
        sweeps: sweeps recorded (default `measurement_sweeps`); a burn-in of a quarter of them
            runs first.

    Returns:
        (the mean of rho over the last sixteenth of lags, floored at 0; rho at every lag, with
        lag l meaning l * interval sweeps).
    """
    key = tsu_core.as_key(key)
    graph = model.graph
    sweeps = measurement_sweeps(model) if sweeps is None else sweeps
    count = max(sweeps // interval, 8)
    noise_key, start_key, sample_key, basis_key = key.split(4)
    generator = torch.Generator().manual_seed(noise_key.value & ((1 << 63) - 1))
    spins_t = model.forward_process.noise(spins_0.cpu(), t, generator).to(spins_0.device)
    spins_t = spins_t.repeat_interleave(CHAINS_PER_EXAMPLE, 0)
    samples = program.sample(
        model.parameters_for(t),
        key=sample_key,
        num_chains=spins_t.shape[0],
        num_samples=count,
        thinning=interval,
        burn_in=sweeps // 4,
        clamp=tsu_core.Clamp(graph.noisy, spins_t),
        initial_state=chain_start(spins_t, graph.num_latents, start_key),
    )
    states = to_torch(samples.states, spins_0.device, torch.int8)[..., : graph.num_bits]
    basis_generator = torch.Generator().manual_seed(basis_key.value & ((1 << 63) - 1))
    basis = (2 * torch.rand(graph.num_bits, PROJECTIONS, generator=basis_generator) - 1).to(
        spins_0.device
    ) / graph.num_bits**0.5
    projections = states.float() @ basis  # (M * chains, S, directions)
    curve = autocorrelation_curve(projections.reshape(spins_0.shape[0], CHAINS_PER_EXAMPLE,
                                                      count, PROJECTIONS))  # fmt: skip
    tail = curve[-max(1, curve.size // 16) :]
    return max(0.0, float(tail.mean())), curve


def autocorrelation_curve(series: torch.Tensor) -> np.ndarray:
    """rho(l) for l = 0 .. S // 2 of series (groups, chains, S, directions): each group's chains
    share their conditioning (see the module docstring)."""
    series = series.double()
    centred = series - series.mean(dim=(1, 2), keepdim=True)
    scale = centred.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)
    series = series / scale
    length = series.shape[2]
    window = length // 2
    start = series[:, :, :window]
    end = series[:, :, -max(window // 2, 1) :]
    shared = start.mean(dim=(1, 2)) * end.mean(dim=(1, 2))  # (groups, directions)
    values = [
        float(((start * series[:, :, lag : lag + window]).mean(dim=(1, 2)) - shared).mean())
        for lag in range(length - window + 1)
    ]
    return np.array(values)


def adapt_penalty(
    penalty: float, autocorrelation: float, previous: float, threshold: float
) -> float:
    """The next penalty weight after one measurement (see the module docstring)."""
    penalty = max(penalty, PENALTY_MIN)
    if autocorrelation < threshold:
        penalty *= 0.6 + 0.2 * autocorrelation / threshold
    elif autocorrelation > previous:
        penalty *= 1.2 if autocorrelation < 1.8 * threshold else 1.5
    else:
        penalty *= 0.95
    return penalty if penalty >= PENALTY_MIN else 0.0
