import numpy as np
import pytest
import torch

from tsu_core.testing.stats import mean_tolerance
from tsu_torch import ThermalContext
from tsu_torch.attention import ThermodynamicAttention, sample_attention_weights


def _pair(
    batch_first: bool, **options
) -> tuple[ThermodynamicAttention, torch.nn.MultiheadAttention]:  # noqa: ANN003
    torch.manual_seed(0)
    exact = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=torch.float64)
    thermal = ThermodynamicAttention(8, 2, batch_first=batch_first, dtype=torch.float64, **options)
    thermal.load_state_dict(exact.state_dict())
    return thermal, exact


@pytest.mark.parametrize("batch_first", [True, False])
def test_exact_mode_matches_multihead_attention_with_masks(batch_first: bool) -> None:
    thermal, reference = _pair(batch_first, exact=True)
    batch, length = 3, 5
    shape = (batch, length, 8) if batch_first else (length, batch, 8)
    query, key, value = (torch.randn(shape, dtype=torch.float64) for _ in range(3))
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[1, -2:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)
    for options in (
        {},
        {"key_padding_mask": padding},
        {"attn_mask": causal},
        {"attn_mask": causal.isinf(), "key_padding_mask": padding},
        {"average_attn_weights": False},
    ):
        ours = thermal(query, key, value, **options)
        theirs = reference(query, key, value, **options)
        torch.testing.assert_close(ours[0], theirs[0])
        torch.testing.assert_close(ours[1], theirs[1])
    ours = thermal(query, key, value, is_causal=True, need_weights=False)[0]
    theirs = reference(query, key, value, attn_mask=causal, need_weights=False)[0]
    torch.testing.assert_close(ours, theirs)


def _identity_projections(layer: ThermodynamicAttention) -> None:
    with torch.no_grad():
        eye = torch.eye(layer.embed_dim, dtype=layer.in_proj_weight.dtype)
        layer.in_proj_weight.copy_(torch.cat([eye, eye, eye]))
        layer.in_proj_bias.zero_()
        layer.out_proj.weight.copy_(eye)
        layer.out_proj.bias.zero_()


def test_sampled_output_converges_at_the_sampling_rate(context: ThermalContext) -> None:
    """Every coordinate of the sampled output lies within the Bernstein bound for the mean of k
    draws of v_j, j ~ softmax, around the exact output; the bound shrinks as 1/sqrt(k)."""
    torch.manual_seed(3)
    batch, length, dim = 2, 6, 8
    thermal = ThermodynamicAttention(dim, 2, batch_first=True, dtype=torch.float64, context=context)
    _identity_projections(thermal)
    exact = ThermodynamicAttention(dim, 2, batch_first=True, dtype=torch.float64, exact=True)
    exact.load_state_dict(thermal.state_dict())
    inputs = 2 * torch.randn(batch, length, dim, dtype=torch.float64)
    with torch.no_grad():
        target, probabilities = exact(
            inputs, inputs, inputs, average_attn_weights=False, is_causal=True
        )
        values = inputs.view(batch, length, 2, 4).transpose(1, 2)  # (batch, heads, source, d)
        second = (probabilities @ values**2).transpose(1, 2).reshape(batch, length, dim)
        variance = (second - target**2).clamp_min(0).numpy()
        spread = 2 * float(values.abs().max())
        errors = []
        for num_samples in (1, 16, 256, 2048):
            thermal.num_samples = num_samples
            output, _ = thermal(inputs, inputs, inputs, is_causal=True)
            error = np.abs((output - target).numpy())
            tolerance = mean_tolerance(
                variance, num_samples, num_tests=4 * error.size, spread=spread
            )
            assert np.all(error <= tolerance + 1e-12), num_samples
            errors.append(float((error**2).mean()))
    # the root-mean-square error shrinks roughly as 1/sqrt(k) (2048 draws vs 1: ~45x)
    assert errors[-1] < errors[0] / 100


def test_weights_are_frequencies_and_respect_masks(context: ThermalContext) -> None:
    logits = torch.tensor([[0.0, 1.0, float("-inf"), 2.0]] * 3)
    weights = sample_attention_weights(logits, context, beta=1.0, num_samples=7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[:, 2] == 0)
    assert torch.all((weights * 7 - (weights * 7).round()).abs() < 1e-6)


def test_straight_through_gradient_is_the_softmax_gradient(context: ThermalContext) -> None:
    thermal, reference = _pair(True, num_samples=3, context=context)
    query = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 8, dtype=torch.float64)
    direction = torch.randn(2, 4, 8, dtype=torch.float64)
    (thermal(query, memory, memory)[0] * direction).sum().backward()
    ours = query.grad.clone()
    query.grad = None
    (reference(query, memory, memory)[0] * direction).sum().backward()
    torch.testing.assert_close(ours, query.grad)


def test_unbatched_and_temperature(context: ThermalContext) -> None:
    thermal, reference = _pair(False, exact=True)
    sequence = torch.randn(5, 8, dtype=torch.float64)
    torch.testing.assert_close(
        thermal(sequence, sequence, sequence)[0], reference(sequence, sequence, sequence)[0]
    )
    # a very low temperature makes sampling pick the argmax key
    cold = ThermodynamicAttention(
        8, 2, batch_first=True, num_samples=4, temperature=1e-4, context=context
    )
    inputs = torch.randn(1, 5, 8)
    _, weights = cold(inputs, inputs, inputs, average_attn_weights=False)
    assert torch.all(weights.max(-1).values == 1)
