r"""A restricted Boltzmann machine on spins, trained with persistent CD through the backend and
evaluated by annealed importance sampling (AIS).

Energy (the `tsu_core` convention on `Topology.bipartite(V, H)`, edge v*H + h carrying W[v, h]):
$E(v, h) = -v^\top W h - a^\top v - b^\top h$, $p(v, h) \propto e^{-\beta E}$. Summing out the
hidden spins gives the free energy
$$F(v) = -a^\top v - \tfrac1\beta \sum_j \log 2\cosh\big(\beta (b_j + (W^\top v)_j)\big),
\qquad p(v) = e^{-\beta F(v)} / Z.$$

Binary data $x \in \{0, 1\}^V$ enters as $v = 2x - 1$, a bijection, so log-likelihoods in nats are
those of the equivalent {0, 1} RBM.

AIS (Neal 2001; Salakhutdinov & Murray 2008) anneals the visible marginal
$p^*_k(v) = e^{\beta_k a^\top v} \prod_j 2\cosh(\beta_k (b_j + (W^\top v)_j))$ from $\beta_0 = 0$
($Z_0 = 2^{V + H}$) to $\beta_K = \beta$; each chain accumulates
$\log w = \sum_k \log p^*_k(v_{k-1}) - \log p^*_{k-1}(v_{k-1})$, moving by one backend block-Gibbs
sweep at $\beta_k$, and $\hat Z = Z_0 \cdot \mathrm{mean}(w)$ is unbiased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tsu_core import Parameters, Program, Topology
from tsu_core.arrays import to_torch
from tsu_torch.context import ThermalContext
from tsu_torch.functional import sample_spins


def log_two_cosh(values: torch.Tensor) -> torch.Tensor:
    """log(2 cosh x), stable for large |x|: |x| + log(1 + e^{-2|x|})."""
    magnitude = values.abs()
    return magnitude + torch.nn.functional.softplus(-2 * magnitude)


class RBM(nn.Module):
    """Spin RBM with V visible and H hidden units whose sampling runs on the backend.

    Arguments:
        num_visible: V, the visible units.
        num_hidden: H, the hidden units.
        beta: the model's inverse temperature (1 for a plain RBM).
        init_scale: standard deviation of the initial weights.
    """

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        beta: float = 1.0,
        init_scale: float = 0.01,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.num_visible, self.num_hidden, self.beta = num_visible, num_hidden, float(beta)
        self.weights = nn.Parameter(init_scale * torch.randn(num_visible, num_hidden, dtype=dtype))
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, dtype=dtype))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, dtype=dtype))
        self.topology = Topology.bipartite(num_visible, num_hidden)
        self._programs: dict[int, Program] = {}

    @property
    def num_nodes(self) -> int:
        return self.num_visible + self.num_hidden

    def parameters_for_backend(self) -> Parameters:
        """W flattened row-major (edge v * H + h) and the biases [a, b], detached."""
        biases = torch.cat([self.visible_bias, self.hidden_bias]).detach()
        return Parameters(self.weights.detach().reshape(-1), biases)

    def program(self, context: ThermalContext) -> Program:
        backend = context.backend
        if id(backend) not in self._programs:
            self._programs[id(backend)] = backend.compile(self.topology)
        return self._programs[id(backend)]

    def initialise_visible_bias(self, data: torch.Tensor) -> None:
        """a = atanh(mean spin) / beta, the standard start (clipped away from +-1)."""
        mean = data.float().mean(0).clamp(-0.98, 0.98)
        with torch.no_grad():
            self.visible_bias.copy_(torch.atanh(mean) / self.beta)

    def free_energy(self, visible: torch.Tensor, beta: float | None = None) -> torch.Tensor:
        """F(v) at beta (the model's by default), shape (batch,)."""
        beta = self.beta if beta is None else beta
        visible = visible.to(self.weights.dtype)
        hidden_fields = self.hidden_bias + visible @ self.weights
        return -(visible @ self.visible_bias) - log_two_cosh(beta * hidden_fields).sum(-1) / beta

    def unnormalised_log_marginal(self, visible: torch.Tensor, beta: float) -> torch.Tensor:
        """log p*_beta(v) = beta a.v + sum_j log 2cosh(beta (b + W^T v)_j) (valid at beta = 0)."""
        visible = visible.to(self.weights.dtype)
        hidden_fields = self.hidden_bias + visible @ self.weights
        return beta * (visible @ self.visible_bias) + log_two_cosh(beta * hidden_fields).sum(-1)

    def sample(
        self,
        context: ThermalContext,
        initial_state: torch.Tensor,
        num_sweeps: int = 1,
        beta: float | None = None,
    ) -> torch.Tensor:
        """Joint states (chains, V + H) after `num_sweeps` backend sweeps at beta."""
        beta = self.beta if beta is None else beta
        samples = self.program(context).sample(
            self.parameters_for_backend(),
            key=context.next_key(),
            num_chains=initial_state.shape[0],
            num_samples=1,
            burn_in=num_sweeps - 1,
            schedule=beta,
            initial_state=initial_state.to(torch.int8),
        )
        return to_torch(samples.final_state, self.weights.device, self.weights.dtype)

    def random_states(self, context: ThermalContext, num_chains: int) -> torch.Tensor:
        """Uniform spins (chains, V + H) from backend p-bits at zero field."""
        zeros = torch.zeros(
            num_chains, self.num_nodes, dtype=self.weights.dtype, device=self.weights.device
        )
        return sample_spins(zeros, context, beta=1.0)[0]


class PersistentContrastiveDivergence:
    """PCD for an RBM: chains persist between calls; loss = beta (mean F(data) - mean F(v_neg)).

    Arguments:
        num_chains: persistent chains (started uniformly at random through the backend).
        num_sweeps: backend block-Gibbs sweeps per call.
    """

    def __init__(
        self, rbm: RBM, context: ThermalContext, num_chains: int = 100, num_sweeps: int = 1
    ) -> None:
        self.rbm, self.context = rbm, context
        self.num_chains, self.num_sweeps = num_chains, num_sweeps
        self.chains: torch.Tensor | None = None

    def loss(self, data: torch.Tensor) -> torch.Tensor:
        if self.chains is None:
            self.chains = self.rbm.random_states(self.context, self.num_chains)
        self.chains = self.rbm.sample(self.context, self.chains, self.num_sweeps).detach()
        negatives = self.chains[:, : self.rbm.num_visible]
        beta = self.rbm.beta
        return beta * (self.rbm.free_energy(data).mean() - self.rbm.free_energy(negatives).mean())


@dataclass(frozen=True)
class AISResult:
    """log Z estimate, its standard error (delta method over the chains) and the log weights."""

    log_partition: float
    standard_error: float
    log_weights: np.ndarray


@torch.no_grad()
def ais_log_partition(
    rbm: RBM,
    context: ThermalContext,
    num_betas: int = 1000,
    num_chains: int = 100,
    progress: bool = False,
) -> AISResult:
    """Annealed importance sampling estimate of log Z at the RBM's beta.

    Arguments:
        num_betas: K, intermediate inverse temperatures, linear from 0 to beta.
        num_chains: independent AIS runs averaged.
    """
    betas = np.linspace(0.0, rbm.beta, num_betas + 1)
    states = rbm.random_states(context, num_chains)
    log_weights = torch.zeros(num_chains, dtype=torch.float64, device=states.device)
    for previous, current in tqdm(
        zip(betas[:-1], betas[1:], strict=True), total=num_betas, disable=not progress, desc="AIS"
    ):
        visible = states[:, : rbm.num_visible]
        log_weights += (
            rbm.unnormalised_log_marginal(visible, float(current))
            - rbm.unnormalised_log_marginal(visible, float(previous))
        ).double()
        states = rbm.sample(context, states, 1, beta=float(current))
    log_base = rbm.num_nodes * math.log(2)
    log_mean = torch.logsumexp(log_weights, 0) - math.log(num_chains)
    weights = torch.exp(log_weights - log_weights.max())
    relative = (
        float(weights.std() / weights.mean()) / math.sqrt(num_chains)
        if num_chains > 1
        else math.inf
    )
    return AISResult(float(log_base + log_mean), relative, log_weights.cpu().numpy())


@torch.no_grad()
def exact_log_partition(rbm: RBM, max_hidden: int = 24, chunk: int = 1 << 14) -> float:
    r"""log Z by enumerating the 2^H hidden states (visible spins summed in closed form):
    $\log Z = \log \sum_h e^{\beta b^\top h} \prod_i 2\cosh(\beta (a + W h)_i)$.

    An independent check of AIS for RBMs with few hidden units (any number of visible ones).
    """
    hidden = rbm.num_hidden
    if hidden > max_hidden:
        raise ValueError(f"num_hidden: expected at most {max_hidden} to enumerate, got {hidden}")
    weights = rbm.weights.double()
    visible_bias, hidden_bias = rbm.visible_bias.double(), rbm.hidden_bias.double()
    bits = torch.arange(hidden, device=weights.device)
    terms = []
    for first in range(0, 1 << hidden, chunk):
        index = torch.arange(first, min(first + chunk, 1 << hidden), device=weights.device)
        states = 2.0 * ((index[:, None] >> bits) & 1).double() - 1.0  # (chunk, H)
        fields = rbm.beta * (visible_bias + states @ weights.T)
        terms.append(rbm.beta * (states @ hidden_bias) + log_two_cosh(fields).sum(-1))
    return float(torch.logsumexp(torch.cat(terms), 0))


def log_likelihood(rbm: RBM, visible: torch.Tensor, log_partition: float) -> torch.Tensor:
    """log p(v) = -beta F(v) - log Z per row."""
    return -rbm.beta * rbm.free_energy(visible) - log_partition
