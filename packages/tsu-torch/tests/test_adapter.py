import itertools

import numpy as np
import pytest
import torch

from tsu_core import Clamp, ExactDistribution, get_backend
from tsu_core.testing.stats import mean_tolerance
from tsu_torch import ThermalContext, ThermalLinear, TSUBinaryLayer
from tsu_torch.adapter import convert_linear_to_ising, replace_linear_layers


def _layer(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.mul_(4)
    return layer


@pytest.mark.parametrize("input_kind", ["spin", "binary"])
def test_exact_conditional_equals_the_layers_sigmoid(input_kind: str) -> None:
    layer = _layer()
    ising = convert_linear_to_ising(layer, input_kind=input_kind)
    assert ising.num_edges == 12 and ising.sparsity == 0.0
    assert np.abs(np.asarray(ising.parameters.weights)).max() <= 1.0
    for spins in itertools.product([-1, 1], repeat=4):
        visible = np.array(spins)
        exact = ExactDistribution.of(
            ising.topology, ising.parameters, ising.beta, ising.visible_nodes, visible
        )
        hidden_up = (exact.node_moments[ising.hidden_nodes] + 1) / 2
        inputs = visible if input_kind == "spin" else (visible + 1) / 2
        expected = torch.sigmoid(layer(torch.from_numpy(inputs.astype(np.float64))))
        np.testing.assert_allclose(hidden_up, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_backend_samples_the_layers_conditional() -> None:
    layer = _layer(1)
    ising = convert_linear_to_ising(layer)
    program = get_backend().compile(ising.topology)
    visible = np.array([1, -1, -1, 1], dtype=np.int8)
    num_chains = 2000
    moments = program.moments(
        ising.parameters,
        key=7,
        num_chains=num_chains,
        num_samples=1,
        burn_in=20,
        schedule=ising.beta,
        clamp=Clamp(ising.visible_nodes, visible),
    )
    mean = torch.tanh(0.5 * layer(torch.from_numpy(visible.astype(np.float64)))).detach().numpy()
    tolerance = mean_tolerance(1 - mean**2, num_chains, num_tests=3)
    assert np.all(np.abs(np.asarray(moments.nodes)[ising.hidden_nodes] - mean) <= tolerance)


def test_thermal_convention_and_round_trip(context: ThermalContext) -> None:
    thermal = ThermalLinear(4, 3, beta=0.7, context=context, dtype=torch.float64)
    ising = convert_linear_to_ising(thermal, input_kind="binary")
    assert ising.multiplier == 0.7
    recovered = ising.to_linear()
    torch.testing.assert_close(recovered.weight, thermal.weight.detach())
    torch.testing.assert_close(recovered.bias, thermal.bias.detach())


def test_pruning_drops_small_edges_and_reports_sparsity() -> None:
    layer = _layer(2)
    full = convert_linear_to_ising(layer)
    threshold = float(np.median(np.abs(np.asarray(full.parameters.weights))))
    pruned = convert_linear_to_ising(layer, sparsity_threshold=threshold)
    kept = np.abs(full.coupling_matrix()) >= threshold
    assert pruned.num_edges == int(kept.sum()) < 12
    assert pruned.sparsity == pytest.approx(1 - kept.sum() / 12)
    np.testing.assert_allclose(pruned.coupling_matrix(), np.where(kept, full.coupling_matrix(), 0))
    # the pruned Ising model's conditional is the layer with the pruned weights
    visible = np.array([1, 1, -1, 1])
    exact = ExactDistribution.of(
        pruned.topology, pruned.parameters, pruned.beta, pruned.visible_nodes, visible
    )
    pruned_layer = pruned.to_linear()
    expected = torch.tanh(0.5 * pruned_layer(torch.tensor(visible, dtype=torch.float64)))
    np.testing.assert_allclose(
        exact.node_moments[pruned.hidden_nodes], expected.detach().numpy(), rtol=1e-10
    )


def test_replace_linear_layers_keeps_the_mean(context: ThermalContext) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 5),
        torch.nn.Tanh(),
        torch.nn.Linear(5, 4),
        torch.nn.Sigmoid(),
        torch.nn.Linear(4, 2),
    )
    inputs = torch.randn(3, 6)
    with torch.no_grad():
        hidden_tanh = torch.tanh(model[0](inputs))
        hidden_sigmoid = torch.sigmoid(model[2](hidden_tanh))
    replaced = replace_linear_layers(model, num_samples=2000, context=context)
    assert replaced == ["0", "2"]
    assert isinstance(model[0], ThermalLinear) and isinstance(model[2], TSUBinaryLayer)
    assert isinstance(model[4], torch.nn.Linear) and not isinstance(model[4], ThermalLinear)
    with torch.no_grad():
        torch.testing.assert_close(model[0].expectation(inputs), hidden_tanh)
        torch.testing.assert_close(model[2].expectation(hidden_tanh), hidden_sigmoid)
        sampled = model[0](inputs)
    tolerance = mean_tolerance((1 - hidden_tanh**2).numpy(), 2000, num_tests=sampled.numel())
    assert np.all(np.abs((sampled - hidden_tanh).numpy()) <= tolerance)
