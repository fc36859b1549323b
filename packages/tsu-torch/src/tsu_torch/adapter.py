r"""Turning trained linear layers into Ising models, and into thermal layers.

A linear layer $z = Wx + b$ read as stochastic binary units has the conditional
$P(h_j = +1 \mid x) = \sigma(c\,z_j \cdot 2)$ with $c = \tfrac12$ for a sigmoid unit
($P = \sigma(z_j)$, convention "sigmoid") or $c = \beta$ for a `ThermalLinear`
($P = \sigma(2 \beta z_j)$, convention "thermal"). A bipartite Ising model with visible spins
$s$ clamped to the input has $P(h_j = +1 \mid s) = \sigma(2 \beta f_j)$ with
$f_j = h_j + \sum_i J_{ij} s_i$ (`tsu_core.energy`), so

* spin inputs ($x = s$): $J_{ij} = c\,W_{ji}$, $h_j = c\,b_j$;
* binary inputs ($x = (s + 1)/2$): $J_{ij} = \tfrac c2 W_{ji}$, $h_j = c\,(b_j + \tfrac12 \sum_i W_{ji})$.

Weights are normalised, $J \leftarrow J / m$, $h \leftarrow h / m$ with $m = \max |J|$, and
the model is run at $\beta = m$, which leaves every conditional unchanged; edges with normalised
$|J_{ij}|$ below `sparsity_threshold` are then dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from tsu_core import Parameters, Topology
from tsu_torch.context import ThermalContext
from tsu_torch.functional import Estimator
from tsu_torch.layers import ThermalLinear, TSUBinaryLayer

logger = logging.getLogger(__name__)

InputKind = Literal["spin", "binary"]
Convention = Literal["sigmoid", "thermal"]


@dataclass(frozen=True, eq=False)
class IsingLayer:
    """A linear layer as a bipartite Ising model: visible nodes 0..V-1 (the inputs), hidden
    nodes V..V+H-1 (the outputs).

    Arguments:
        topology: the bipartite topology (pruned edges removed).
        parameters: normalised weights (one per kept edge) and biases (visible biases are 0).
        beta: the inverse temperature that reproduces the layer's conditionals.
        scale: the normalisation m (equal to beta).
        num_edges: edges kept; sparsity: the fraction of the V x H edges dropped.
        input_kind: how inputs were mapped to spins (see the module docstring).
        multiplier: how fields were scaled (see the module docstring).
    """

    topology: Topology
    parameters: Parameters
    beta: float
    scale: float
    num_visible: int
    num_hidden: int
    num_edges: int
    sparsity: float
    input_kind: InputKind
    multiplier: float

    @property
    def visible_nodes(self) -> np.ndarray:
        return np.arange(self.num_visible)

    @property
    def hidden_nodes(self) -> np.ndarray:
        return self.num_visible + np.arange(self.num_hidden)

    def coupling_matrix(self) -> np.ndarray:
        """The normalised couplings as a dense V x H matrix (zero where pruned)."""
        matrix = np.zeros((self.num_visible, self.num_hidden))
        edges = self.topology.edges
        matrix[edges[:, 0], edges[:, 1] - self.num_visible] = np.asarray(self.parameters.weights)
        return matrix

    def to_linear(self) -> nn.Linear:
        """The linear layer these couplings implement (the inverse map; pruned weights are 0)."""
        couplings = self.coupling_matrix() * self.scale
        hidden_biases = np.asarray(self.parameters.biases)[self.num_visible :] * self.scale
        if self.input_kind == "spin":
            weight = couplings.T / self.multiplier
            bias = hidden_biases / self.multiplier
        else:
            weight = 2 * couplings.T / self.multiplier
            bias = hidden_biases / self.multiplier - 0.5 * weight.sum(1)
        layer = nn.Linear(self.num_visible, self.num_hidden, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))
        return layer


def convert_linear_to_ising(
    linear: nn.Linear,
    sparsity_threshold: float = 0.0,
    input_kind: InputKind = "spin",
    convention: Convention | None = None,
) -> IsingLayer:
    """A bipartite Ising model whose hidden-given-visible conditionals are the layer's.

    Arguments:
        linear: an `nn.Linear` (or `ThermalLinear`).
        sparsity_threshold: drop edges whose normalised |J| is below this (0 keeps all).
        input_kind: "spin" for +-1 inputs, "binary" for 0/1 inputs.
        convention: "sigmoid" (P(h=1) = sigmoid(Wx+b)) or "thermal" (P = sigmoid(2 beta (Wx+b)),
            the ThermalLinear convention); default "thermal" for a ThermalLinear, else "sigmoid".
    """
    if input_kind not in ("spin", "binary"):
        raise ValueError(f"input_kind: expected 'spin' or 'binary', got {input_kind!r}")
    if convention is None:
        convention = "thermal" if isinstance(linear, ThermalLinear) else "sigmoid"
    if convention == "thermal":
        if not isinstance(linear, ThermalLinear):
            raise ValueError("convention 'thermal' needs a ThermalLinear (it carries beta)")
        multiplier = linear.activation.beta
    elif convention == "sigmoid":
        multiplier = 0.5
    else:
        raise ValueError(f"convention: expected 'sigmoid' or 'thermal', got {convention!r}")
    weight = linear.weight.detach().to("cpu", torch.float64).numpy()
    bias = (
        linear.bias.detach().to("cpu", torch.float64).numpy()
        if linear.bias is not None
        else np.zeros(weight.shape[0])
    )
    num_hidden, num_visible = weight.shape
    if input_kind == "spin":
        couplings = multiplier * weight.T
        hidden_biases = multiplier * bias
    else:
        couplings = 0.5 * multiplier * weight.T
        hidden_biases = multiplier * (bias + 0.5 * weight.sum(1))
    # normalise by the largest coupling (the biases follow with the same factor)
    scale = float(np.abs(couplings).max(initial=0.0)) or float(
        np.abs(hidden_biases).max(initial=0.0)
    )
    scale = scale if scale > 0 else 1.0
    couplings, hidden_biases = couplings / scale, hidden_biases / scale
    keep = np.abs(couplings) >= sparsity_threshold
    if keep.all():
        topology = Topology.bipartite(num_visible, num_hidden)
    else:
        rows, cols = np.nonzero(keep)
        topology = Topology(
            num_visible + num_hidden,
            np.stack([rows, num_visible + cols], axis=1).reshape(-1, 2),
            blocks=(np.arange(num_visible), num_visible + np.arange(num_hidden)),
        )
    parameters = Parameters(
        couplings[keep], np.concatenate([np.zeros(num_visible), hidden_biases])
    ).validate(topology)
    num_edges = int(keep.sum())
    sparsity = 1.0 - num_edges / keep.size
    logger.info(
        "converted Linear(%d, %d): %d edges kept, sparsity %.3f, beta %.4g",
        num_visible,
        num_hidden,
        num_edges,
        sparsity,
        scale,
    )
    return IsingLayer(
        topology,
        parameters,
        scale,
        scale,
        num_visible,
        num_hidden,
        num_edges,
        sparsity,
        input_kind,
        multiplier,
    )


def replace_linear_layers(
    model: nn.Module,
    num_samples: int = 1,
    estimator: Estimator = "sigmoid",
    context: ThermalContext | None = None,
) -> list[str]:
    """Replace each `Linear -> Tanh` and `Linear -> Sigmoid` pair inside `nn.Sequential`s by a
    thermal layer whose mean output equals the pair's output, in place.

    `Linear -> Tanh` becomes `ThermalLinear(beta=1)` (spins, E[s] = tanh(Wx + b));
    `Linear -> Sigmoid` becomes `TSUBinaryLayer(beta=1/2)` (bits, E[h] = sigmoid(Wx + b)); the
    activation becomes `nn.Identity`. Other linear layers (a classifier head) stay exact.

    Returns:
        the qualified names of the replaced linear layers.
    """
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (child_name, child), (next_name, following) in zip(
            children, children[1:], strict=False
        ):
            if type(child) is not nn.Linear or not isinstance(following, (nn.Tanh, nn.Sigmoid)):
                continue
            kind = TSUBinaryLayer if isinstance(following, nn.Sigmoid) else ThermalLinear
            beta = 0.5 if isinstance(following, nn.Sigmoid) else 1.0
            thermal = kind(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                beta=beta,
                num_samples=num_samples,
                estimator=estimator,
                context=context,
                device=child.weight.device,
                dtype=child.weight.dtype,
            )
            thermal.load_state_dict(child.state_dict())
            setattr(module, child_name, thermal)
            setattr(module, next_name, nn.Identity())
            replaced.append(f"{name}.{child_name}" if name else child_name)
    logger.info("replaced %d linear layers: %s", len(replaced), ", ".join(replaced))
    return replaced
