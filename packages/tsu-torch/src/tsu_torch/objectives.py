r"""Energy-based objectives with negative phases sampled by the backend.

All of them work for an `IsingModel` (sampled by the backend's compiled program) and for any
`nn.Module` energy $E_\theta(s)$ over spins $s \in \{-1, +1\}^N$ (sampled by Gibbs sweeps whose
spin updates are the backend's p-bits, with the conditional field
$f_i = \tfrac12 (E(s^{i-}) - E(s^{i+}))$, $s^{i\pm}$ being s with $s_i = \pm 1$).

* Contrastive divergence: the surrogate loss
  $L = \beta\,(\overline{E(s_{data})} - \overline{E(s_{model})})$, negatives detached, has gradient
  $\beta\,(\langle \partial E \rangle_{data} - \langle \partial E \rangle_{model})$, the gradient of the
  negative log-likelihood when the negatives are exact model samples. CD-k starts the chains
  at the data; PCD keeps them between calls (`initial_state` / `final_state`).
* InfoNCE: $-\log \frac{e^{s^+}}{e^{s^+} + \sum_{r} e^{s^-_r}}$ with negatives drawn by the backend's
  categorical primitive (`TSUNegativeSampler`).
* Binary denoising score matching: the binary "score" of an energy model is the conditional
  log-odds $2\beta f_i(\tilde s)$ of each spin given the others; each bit of the data is flipped
  with probability $\epsilon$ (flips drawn by the backend) and the model predicts the clean bit:
  $L = -\sum_i \log \sigma(2 \beta\, s_i f_i(\tilde s))$. At $\epsilon = 0$ this is the
  pseudo-likelihood, a consistent estimator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from tsu_torch.context import ThermalContext, resolve_context
from tsu_torch.functional import sample_categorical, sample_spins
from tsu_torch.ising import IsingModel

Energy = Callable[[torch.Tensor], torch.Tensor]


def conditional_fields(energy: Energy | IsingModel, states: torch.Tensor) -> torch.Tensor:
    """f_i = (E(s with s_i = -1) - E(s with s_i = +1)) / 2 for every i: shape like `states`.

    For an `IsingModel` this is the local field h_i + sum_j J_ij s_j, computed directly.
    """
    if isinstance(energy, IsingModel):
        return energy.fields(states)
    batch_shape, num_nodes = states.shape[:-1], states.shape[-1]
    eye = torch.eye(num_nodes, dtype=torch.bool, device=states.device)
    repeated = states.unsqueeze(-2).expand(*batch_shape, num_nodes, num_nodes)
    up = torch.where(eye, torch.ones_like(repeated), repeated)
    down = torch.where(eye, -torch.ones_like(repeated), repeated)
    return (energy(down) - energy(up)) / 2


def gibbs_sweeps(
    energy: Energy,
    states: torch.Tensor,
    context: ThermalContext,
    beta: float,
    num_sweeps: int = 1,
) -> torch.Tensor:
    """Systematic-scan Gibbs sweeps of an energy module, each spin drawn by a backend p-bit.

    Arguments:
        states: (chains, N) spins to start from.

    Returns:
        (chains, N) spins after the sweeps (no gradient).
    """
    states = states.detach().clone()
    with torch.no_grad():
        for _ in range(num_sweeps):
            for node in range(states.shape[-1]):
                up, down = states.clone(), states.clone()
                up[:, node], down[:, node] = 1, -1
                field = (energy(down) - energy(up)) / 2
                states[:, node] = sample_spins(field, context, beta)[0]
    return states


class ContrastiveDivergence(nn.Module):
    """CD-k or persistent CD for an `IsingModel` or an energy module.

    Arguments:
        energy: an `IsingModel` (negatives from the backend's program) or a module mapping
            (..., N) spins to (...,) energies (negatives from p-bit Gibbs sweeps).
        num_steps: k, the sweeps run per call.
        persistent: keep the chains between calls (PCD).
        num_chains: the number of persistent chains (default: the first batch's size).
        beta: the model's inverse temperature (an IsingModel's own beta when omitted); divided
            by the context's temperature.
    """

    def __init__(
        self,
        energy: IsingModel | nn.Module,
        num_steps: int = 1,
        persistent: bool = False,
        num_chains: int | None = None,
        beta: float | None = None,
        context: ThermalContext | None = None,
    ) -> None:
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"num_steps: expected >= 1, got {num_steps}")
        self.energy = energy
        self.num_steps = int(num_steps)
        self.persistent = persistent
        self.num_chains = num_chains
        self.beta = float(beta if beta is not None else getattr(energy, "beta", 1.0))
        self.thermal_context = context
        self.chains: torch.Tensor | None = None

    def _energy(self, states: torch.Tensor) -> torch.Tensor:
        return (
            self.energy.energy(states)
            if isinstance(self.energy, IsingModel)
            else self.energy(states)
        )

    def negative_samples(self, data: torch.Tensor) -> torch.Tensor:
        """Model samples: k sweeps from the data (CD) or from the persistent chains (PCD)."""
        context = resolve_context(self.thermal_context, "ContrastiveDivergence")
        if self.persistent and self.chains is not None:
            start = self.chains
        elif self.persistent and self.num_chains is not None:
            rows = torch.arange(self.num_chains, device=data.device) % data.shape[0]
            start = data[rows]
        else:
            start = data
        start = start.detach()
        if isinstance(self.energy, IsingModel):
            negatives = self.energy.sample(
                context, num_chains=start.shape[0], num_sweeps=self.num_steps, initial_state=start
            )
        else:
            beta = self.beta / context.temperature
            negatives = gibbs_sweeps(self.energy, start, context, beta, self.num_steps)
        if self.persistent:
            self.chains = negatives.detach()
        return negatives.to(data.dtype)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """The surrogate loss beta (mean E(data) - mean E(negatives)); its gradient is the
        CD / PCD estimate of the negative log-likelihood's gradient."""
        context = resolve_context(self.thermal_context, "ContrastiveDivergence")
        negatives = self.negative_samples(data)
        beta = self.beta / context.temperature
        return beta * (self._energy(data).mean() - self._energy(negatives).mean())


class TSUNegativeSampler:
    """Negative indices drawn by the backend's categorical primitive.

    Uniform over the candidates when no scores are given, else P(j) ~ exp(beta * score_j)
    (hard negatives); the positive of each row can be excluded.

    Arguments:
        num_negatives: negatives per row (drawn with replacement).
        beta: the inverse temperature for score-weighted draws.
    """

    def __init__(
        self, num_negatives: int, beta: float = 1.0, context: ThermalContext | None = None
    ) -> None:
        if num_negatives < 1:
            raise ValueError(f"num_negatives: expected >= 1, got {num_negatives}")
        self.num_negatives = int(num_negatives)
        self.beta = float(beta)
        self.thermal_context = context

    def sample(
        self,
        num_candidates: int,
        positives: torch.Tensor,
        scores: torch.Tensor | None = None,
        exclude_positive: bool = True,
    ) -> torch.Tensor:
        """(rows, num_negatives) candidate indices.

        Arguments:
            num_candidates: M, the size of the candidate set.
            positives: (rows,) the index of each row's positive.
            scores: optional (rows, M) scores for hard-negative sampling.
        """
        context = resolve_context(self.thermal_context, "TSUNegativeSampler")
        rows = positives.shape[0]
        logits = (
            torch.zeros(rows, num_candidates, device=positives.device)
            if scores is None
            else scores.detach().float()
        )
        if exclude_positive:
            logits = logits.scatter(1, positives.view(-1, 1), float("-inf"))
        expanded = logits.unsqueeze(1).expand(rows, self.num_negatives, num_candidates)
        beta = self.beta if scores is not None else 1.0
        return sample_categorical(expanded, context, beta)


def info_nce_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Mean of -log(e^{s+} / (e^{s+} + sum_r e^{s-_r})) for (rows,) and (rows, K) scores."""
    logits = torch.cat([positive_scores.unsqueeze(-1), negative_scores], dim=-1)
    return (torch.logsumexp(logits, dim=-1) - positive_scores).mean()


def info_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    sampler: TSUNegativeSampler,
    temperature: float = 0.1,
    hard_negatives: bool = False,
) -> torch.Tensor:
    """InfoNCE for paired rows (query i goes with key i), negatives sampled among other keys.

    Scores are cosine similarities over `temperature`.
    """
    queries, keys = functional.normalize(queries, dim=-1), functional.normalize(keys, dim=-1)
    scores = queries @ keys.T / temperature
    rows = torch.arange(queries.shape[0], device=queries.device)
    negatives = sampler.sample(
        keys.shape[0], rows, scores=scores if hard_negatives else None, exclude_positive=True
    )
    return info_nce_loss(scores[rows, rows], scores.gather(1, negatives))


def flip_noise(
    states: torch.Tensor, flip_probability: float, context: ThermalContext
) -> torch.Tensor:
    """Each spin flipped independently with `flip_probability`, flips drawn by backend p-bits."""
    if flip_probability == 0:
        return states.clone()
    if not 0 < flip_probability < 1:
        raise ValueError(f"flip_probability: expected a value in [0, 1), got {flip_probability}")
    field = 0.5 * math.log((1 - flip_probability) / flip_probability)
    keep = sample_spins(torch.full_like(states, field, dtype=torch.float32), context, 1.0)[0]
    return states * keep.to(states.dtype)


def denoising_score_matching(
    energy: IsingModel | nn.Module,
    clean: torch.Tensor,
    flip_probability: float = 0.1,
    beta: float | None = None,
    context: ThermalContext | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary denoising score matching: -sum_i log sigmoid(2 beta s_i f_i(noisy)).

    Arguments:
        clean: (batch, N) spins.
        flip_probability: epsilon, the probability each bit is flipped before scoring
            (0: no noise, the pseudo-likelihood; no backend call is made).
        reduction: "mean" over the batch, or "none" for per-row losses (batch,).
    """
    beta = float(beta if beta is not None else getattr(energy, "beta", 1.0))
    if flip_probability > 0:
        context = resolve_context(context, "denoising_score_matching")
        noisy = flip_noise(clean, flip_probability, context)
    else:
        noisy = clean
    fields = conditional_fields(
        energy,
        noisy.to(torch.get_default_dtype() if not clean.is_floating_point() else clean.dtype),
    )
    losses = -functional.logsigmoid(2 * beta * clean.to(fields.dtype) * fields).sum(-1)
    return losses.mean() if reduction == "mean" else losses
