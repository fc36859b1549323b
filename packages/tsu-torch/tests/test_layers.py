import numpy as np
import pytest
import torch

from tsu_core.testing.stats import mean_tolerance
from tsu_torch import (
    ThermalActivation,
    ThermalContext,
    ThermalLinear,
    TSUBinaryLayer,
    linear,
    thermal_activation,
)


def test_spin_means_match_tanh(context: ThermalContext) -> None:
    beta, num_samples = 0.8, 400
    fields = torch.linspace(-2.5, 2.5, 41)
    means = thermal_activation(fields, context, beta=beta, num_samples=num_samples)
    exact = torch.tanh(beta * fields)
    tolerance = mean_tolerance(
        (1 - exact**2).numpy(), num_chains=num_samples, num_tests=fields.numel()
    )
    assert np.all(np.abs((means - exact).numpy()) <= tolerance)
    assert set(torch.unique(thermal_activation(fields, context, beta)).tolist()) <= {-1.0, 1.0}


def test_sigmoid_estimator_is_the_exact_gradient_of_the_expectation(
    context: ThermalContext,
) -> None:
    beta = 1.3
    fields = torch.linspace(-2, 2, 17, dtype=torch.float64, requires_grad=True)
    weights = torch.linspace(0.5, 1.5, 17, dtype=torch.float64)
    (thermal_activation(fields, context, beta, num_samples=3) * weights).sum().backward()
    straight_through = fields.grad.clone()

    exact_fields = fields.detach().clone().requires_grad_(True)
    (torch.tanh(beta * exact_fields) * weights).sum().backward()
    torch.testing.assert_close(straight_through, exact_fields.grad)

    # and against central finite differences of E[s] = tanh(beta f)
    step = 1e-6
    finite = (torch.tanh(beta * (fields + step)) - torch.tanh(beta * (fields - step))) / (2 * step)
    torch.testing.assert_close(straight_through, (finite * weights).detach(), rtol=1e-6, atol=1e-8)


def test_identity_estimator_passes_the_gradient(context: ThermalContext) -> None:
    fields = torch.randn(5, 4, requires_grad=True)
    upstream = torch.randn(5, 4)
    thermal_activation(fields, context, 2.0, estimator="identity").backward(upstream)
    torch.testing.assert_close(fields.grad, upstream)
    with pytest.raises(ValueError, match="estimator"):
        thermal_activation(fields, context, estimator="tanh")  # type: ignore[arg-type]


def test_binary_layer_with_half_beta_is_a_sigmoid_unit(context: ThermalContext) -> None:
    torch.manual_seed(1)
    layer = TSUBinaryLayer(6, 5, beta=0.5, num_samples=500, context=context)
    inputs = torch.randn(8, 6)
    with torch.no_grad():
        bits = layer(inputs)
        probability = torch.sigmoid(torch.nn.functional.linear(inputs, layer.weight, layer.bias))
    tolerance = mean_tolerance(
        (probability * (1 - probability)).numpy(), 500, num_tests=bits.numel(), spread=1.0
    )
    assert np.all(np.abs((bits - probability).numpy()) <= tolerance)
    torch.testing.assert_close(layer.expectation(inputs), probability)


def test_layer_follows_the_context_temperature() -> None:
    context = ThermalContext(5, schedule=linear(10.0, 0.1, 3))
    layer = ThermalLinear(4, 3, context=context)
    assert layer.activation.effective_beta() == pytest.approx(0.1)
    context.step(2)
    assert layer.activation.effective_beta() == pytest.approx(10.0)
    # at beta = 10 a field of +-1 is nearly deterministic: the sign of the field
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.0, -1.0, 1.0]))
        spins = layer(torch.zeros(300, 4))
    assert torch.equal(spins.mean(0).sign(), torch.tensor([1.0, -1.0, 1.0]))


def test_sparsity_readout(context: ThermalContext) -> None:
    activation = ThermalActivation(num_samples=1, context=context)
    spins = activation(torch.randn(50, 20))
    assert activation.last_sparsity == pytest.approx(float((spins == -1).float().mean()))
    layer = ThermalLinear(3, 2, context=context)
    layer(torch.randn(7, 3))
    assert 0.0 <= layer.last_sparsity <= 1.0


def test_thermal_linear_loads_a_linear_layer(context: ThermalContext) -> None:
    plain = torch.nn.Linear(5, 3)
    layer = ThermalLinear(5, 3, context=context)
    layer.load_state_dict(plain.state_dict())
    inputs = torch.randn(2, 5)
    torch.testing.assert_close(layer.fields(inputs), plain(inputs))
    layer.num_samples = 4
    assert layer.activation.num_samples == 4


def test_layer_trains_through_the_estimator(context: ThermalContext) -> None:
    """A thermal layer fits a target mean: the loss on tanh(beta f) falls."""
    torch.manual_seed(0)
    layer = ThermalLinear(4, 3, num_samples=8, context=context)
    inputs = torch.randn(64, 4)
    target = torch.tanh(inputs @ torch.randn(4, 3))
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.05)
    with torch.no_grad():
        initial = float(((layer.expectation(inputs) - target) ** 2).mean())
    for _ in range(60):
        optimiser.zero_grad()
        ((layer(inputs) - target) ** 2).mean().backward()
        optimiser.step()
    with torch.no_grad():
        final = float(((layer.expectation(inputs) - target) ** 2).mean())
    assert final < 0.5 * initial
