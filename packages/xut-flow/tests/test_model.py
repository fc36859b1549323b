"""The XUT model: shapes, parameter count, RoPE, TREAD, the attention kernels."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xut_flow.config import ModelConfig, preset
from xut_flow.model import (
    XUT,
    Attention,
    _reinsert,
    apply_rope,
    attention_implementation,
    grid_positions,
    parameter_count,
    rope_angles,
)

TINY = preset("tiny")


@functools.partial(jax.jit, static_argnums=(0, 5))
def _jitted(graphdef, state, x, t, text, deterministic, key):
    return nnx.merge(graphdef, state)(x, t, text, deterministic=deterministic, key=key)


def _apply(model, x, t, text, *, deterministic=True, key=None):
    """The model's forward pass, compiled (eager dispatch of every op is slow on CPU)."""
    graphdef, state = nnx.split(model)
    return _jitted(graphdef, state, x, t, text, deterministic, key)


def _perturbed(config: ModelConfig, seed: int = 0) -> XUT:
    """A model whose zero-initialised gates and output are made non-zero, so every block acts."""
    model = XUT(config, rngs=nnx.Rngs(seed))
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [
        leaf + 0.1 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)
    ]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


def _inputs(batch: int, height: int, width: int, config: ModelConfig = TINY):
    key = jax.random.key(3)
    first, second, third = jax.random.split(key, 3)
    x = jax.random.normal(first, (batch, height, width, config.latent_channels))
    t = jax.random.uniform(second, (batch,))
    text = jax.random.normal(third, (batch, config.text_dim))
    return x, t, text


@pytest.mark.parametrize("height,width", [(8, 8), (4, 12)])
def test_output_shape_matches_input_any_divisible_size(height, width):
    model = _perturbed(TINY)
    x, t, text = _inputs(3, height, width)
    out = _apply(model, x, t, text)
    assert out.shape == x.shape and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    routed = _apply(model, x, t, text, deterministic=False, key=jax.random.key(0))
    assert routed.shape == x.shape


def test_rejects_latent_not_divisible_by_patch():
    model = XUT(TINY, rngs=nnx.Rngs(0))
    x, t, text = _inputs(1, 7, 8)
    with pytest.raises(ValueError, match="divisible"):
        model(x, t, text)


def _independent_count(config: ModelConfig) -> int:
    """Parameter count written out by hand from the architecture description."""
    dim, width, mlp = config.model_dim, config.num_heads * config.head_dim, config.mlp_dim
    linear = lambda fan_in, fan_out: fan_in * fan_out + fan_out  # noqa: E731
    attention = 3 * linear(dim, width) + linear(width, dim) + 2 * config.head_dim
    block = dim + attention + linear(dim, 2 * mlp) + linear(mlp, dim) + 6 * dim  # scales, offset
    # attention_norm and mlp_norm have no scale (AdaLN); query/key norms have one each.
    block -= dim
    cross = attention + dim
    patch = config.patch_size**2 * config.latent_channels
    total = patch * dim + dim  # patch embedding convolution
    total += linear(config.timestep_frequencies, dim) + linear(dim, dim)
    total += linear(config.text_dim, dim) + linear(dim, 6 * dim)
    total += config.depth * config.encoder_blocks * block
    total += config.depth * config.decoder_blocks * block + config.depth * cross
    total += linear(dim, 2 * dim) + linear(dim, patch)
    return total


def test_parameter_count_of_full_preset_without_allocating():
    config = preset("xut-small")
    count = parameter_count(config)
    print(f"XUT-Small parameters: {count:,}")
    assert count == _independent_count(config)
    assert parameter_count(TINY) == _independent_count(TINY)
    assert parameter_count(TINY) == sum(
        leaf.size for leaf in jax.tree.leaves(nnx.state(XUT(TINY, rngs=nnx.Rngs(0)), nnx.Param))
    )


def test_rope_scores_depend_only_on_relative_position():
    head_dim, base = 16, 100.0
    key_q, key_k = jax.random.split(jax.random.key(0))
    query = jax.random.normal(key_q, (1, 1, 1, head_dim))
    key = jax.random.normal(key_k, (1, 1, 1, head_dim))

    def score(position_q, position_k):
        angles_q = rope_angles(jnp.array([position_q], jnp.float32), head_dim, base)
        angles_k = rope_angles(jnp.array([position_k], jnp.float32), head_dim, base)
        return float(jnp.sum(apply_rope(query, angles_q) * apply_rope(key, angles_k)))

    reference = score((1.0, 2.0), (3.5, -1.0))
    for shift in [(0.0, 0.0), (4.0, -7.0), (-2.25, 10.5)]:
        moved = score((1.0 + shift[0], 2.0 + shift[1]), (3.5 + shift[0], -1.0 + shift[1]))
        assert moved == pytest.approx(reference, rel=1e-4, abs=1e-4)
    assert score((1.0, 2.0), (4.5, -1.0)) != pytest.approx(reference, rel=1e-3)
    # Rotation preserves norms.
    angles = rope_angles(jnp.array([[5.0, -3.0]]), head_dim, base)
    np.testing.assert_allclose(
        jnp.linalg.norm(apply_rope(query, angles)), jnp.linalg.norm(query), rtol=1e-5
    )


def test_grid_positions_keep_aspect_ratio():
    square = grid_positions(4, 4, reference=8)
    wide = grid_positions(2, 4, reference=8)
    # One scale for both axes: unit spacing 8/4 = 2 in both grids.
    assert float(square[1, 1] - square[0, 1]) == pytest.approx(2.0)
    assert float(wide[4, 0] - wide[0, 0]) == pytest.approx(2.0)
    assert float(wide[:, 1].max() - wide[:, 1].min()) == pytest.approx(6.0)
    assert float(wide[:, 0].max() - wide[:, 0].min()) == pytest.approx(2.0)


def test_tread_is_off_at_inference():
    model = _perturbed(TINY)
    x, t, text = _inputs(2, 8, 8)
    inference = _apply(model, x, t, text, deterministic=True)
    with_key = _apply(model, x, t, text, deterministic=True, key=jax.random.key(5))
    np.testing.assert_array_equal(inference, with_key)
    # The same weights without TREAD at all give the same inference output.
    graphdef, state = nnx.split(model)
    without = nnx.merge(nnx.split(XUT(TINY.replace(tread_rate=0.0), rngs=nnx.Rngs(0)))[0], state)
    np.testing.assert_allclose(
        _apply(without, x, t, text, deterministic=False), inference, rtol=1e-6
    )
    # Training routes tokens: the output changes and depends on the routing key.
    first = _apply(model, x, t, text, deterministic=False, key=jax.random.key(1))
    second = _apply(model, x, t, text, deterministic=False, key=jax.random.key(2))
    assert float(jnp.abs(first - inference).max()) > 1e-3
    assert float(jnp.abs(first - second).max()) > 1e-3
    assert not model.routing_active(True) and model.routing_active(False)
    with pytest.raises(ValueError, match="key"):
        model(x, t, text, deterministic=False)


def test_text_conditions_the_output():
    model = _perturbed(TINY)
    x, t, text = _inputs(2, 8, 8)
    difference = _apply(model, x, t, text) - _apply(model, x, t, jnp.zeros_like(text))
    assert float(jnp.abs(difference).max()) > 1e-3


def test_attention_choice():
    small = preset("xut-small")
    on_cuda = jax.default_backend() == "gpu" and hasattr(jax.devices()[0], "compute_capability")
    assert attention_implementation(small) == ("cudnn" if on_cuda else "xla")
    assert attention_implementation(TINY) == "xla"  # float32 compute: never cuDNN
    assert attention_implementation(small.replace(attention="xla")) == "xla"
    assert attention_implementation(small.replace(attention="cudnn")) == "cudnn"
    with pytest.raises(ValueError, match="bfloat16"):
        TINY.replace(attention="cudnn")
    with pytest.raises(ValueError, match="attention"):
        TINY.replace(attention="flash")


def _reference_attention(module: Attention, x, angles, context, context_angles):
    """softmax(q k^T / sqrt(d)) v per head, written out with einsum."""
    shape = (module.num_heads, module.head_dim)
    query = module.query_norm(module.query(x).reshape(*x.shape[:2], *shape))
    key = module.key_norm(module.key(context).reshape(*context.shape[:2], *shape))
    value = module.value(context).reshape(*context.shape[:2], *shape)
    query, key = apply_rope(query, angles), apply_rope(key, context_angles)
    scores = jnp.einsum("btnh,bsnh->bnts", query, key) / np.sqrt(module.head_dim)
    attended = jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(scores, axis=-1), value)
    return module.output(attended.reshape(*x.shape[:2], -1))


def _attention_case(config: ModelConfig):
    """An attention layer, 8 queries and a context of 16 tokens, with their RoPE angles."""
    module = Attention(config, rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(4), 4)
    x = jax.random.normal(keys[0], (2, 8, config.model_dim))
    context = jax.random.normal(keys[1], (2, 16, config.model_dim))
    angles = rope_angles(jax.random.normal(keys[2], (8, 2)), config.head_dim, config.rope_base)
    context_angles = rope_angles(
        jax.random.normal(keys[3], (2, 16, 2)), config.head_dim, config.rope_base
    )
    return module, x, angles, context, context_angles


@pytest.mark.parametrize("cross", [False, True])
def test_xla_attention_matches_reference_einsum(cross):
    module, x, angles, context, context_angles = _attention_case(TINY.replace(attention="xla"))
    if not cross:
        context, context_angles = x, angles
    out = module(x, angles, context, context_angles)
    reference = _reference_attention(module, x, angles, context, context_angles)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(
    attention_implementation(preset("tiny", compute_dtype="bfloat16")) != "cudnn",
    reason="cuDNN flash attention needs an NVIDIA GPU",
)
def test_cudnn_attention_matches_xla():
    config = preset("tiny", compute_dtype="bfloat16", head_dim=64, num_heads=2, model_dim=128)
    module, *inputs = _attention_case(config.replace(attention="xla"))
    xla = module(*inputs).astype(jnp.float32)
    module, *inputs = _attention_case(config.replace(attention="cudnn"))  # the same weights
    cudnn = module(*inputs).astype(jnp.float32)
    # Both take the same bf16 q, k, v; they differ only in summation order and rounding.
    np.testing.assert_allclose(cudnn, xla, atol=2e-2 * float(jnp.abs(xla).max()))


def test_reinsert_and_its_gradient_match_a_dense_formula():
    keys = jax.random.split(jax.random.key(7), 4)
    full = jax.random.normal(keys[0], (3, 6, 4))
    routed = jax.random.normal(keys[1], (3, 2, 4))
    weight = jax.random.normal(keys[2], (3, 6, 4))
    index = jax.lax.top_k(jax.random.uniform(keys[3], (3, 6)), 2)[1]
    chosen = jax.nn.one_hot(index, 6).sum(1)[..., None]  # (3, 6, 1), 1 where a token was kept
    dense = full * (1 - chosen) + jnp.einsum("bkt,bkd->btd", jax.nn.one_hot(index, 6), routed)
    np.testing.assert_allclose(_reinsert(full, routed, index), dense, rtol=1e-6)

    def objective(full, routed):
        return jnp.sum(weight * _reinsert(full, routed, index))

    grad_full, grad_routed = jax.grad(objective, argnums=(0, 1))(full, routed)
    np.testing.assert_allclose(grad_full, weight * (1 - chosen), rtol=1e-6)
    np.testing.assert_allclose(
        grad_routed, jnp.take_along_axis(weight, index[..., None], axis=1), rtol=1e-6
    )
