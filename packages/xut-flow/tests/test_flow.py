"""Rectified-flow objective: interpolation, target, timesteps, dropout, noise sources."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tsu_core
from xut_flow.flow import (
    draw_noise,
    drop_text,
    flow_loss,
    interpolate,
    logit_normal,
    velocity_target,
)


def _batch():
    first, second, third = jax.random.split(jax.random.key(0), 3)
    data = jax.random.normal(first, (4, 6, 6, 2))
    noise = jax.random.normal(second, (4, 6, 6, 2))
    normal = jax.random.normal(third, (4,))
    return data, noise, normal


def test_interpolation_endpoints_and_target_is_its_time_derivative():
    data, noise, _ = _batch()
    np.testing.assert_allclose(interpolate(noise, data, jnp.zeros(4)), noise)
    np.testing.assert_allclose(interpolate(noise, data, jnp.ones(4)), data)
    t, h = jnp.full((4,), 0.3), 1e-2
    slope = (interpolate(noise, data, t + h) - interpolate(noise, data, t - h)) / (2 * h)
    np.testing.assert_allclose(slope, velocity_target(noise, data), rtol=1e-3, atol=1e-3)


def test_loss_is_mse_against_data_minus_noise():
    data, noise, normal = _batch()
    text = jnp.ones((4, 3))
    seen = {}

    def oracle(x_t, t, text, *, deterministic, key):
        # Recover x_1 - x_0 from x_t, t and the known noise: the loss must then be zero.
        seen["t"] = t
        t = t[:, None, None, None]
        return (x_t - noise) / t

    loss = flow_loss(oracle, data, text, noise, normal, jax.random.key(1))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(seen["t"], jax.nn.sigmoid(normal), rtol=1e-6)

    def zero(x_t, t, text, *, deterministic, key):
        return jnp.zeros_like(x_t)

    loss = flow_loss(zero, data, text, noise, normal, jax.random.key(1))
    assert float(loss) == pytest.approx(float(jnp.mean((data - noise) ** 2)), rel=1e-6)


def test_logit_normal_timesteps():
    normal = jnp.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(logit_normal(normal), 1 / (1 + np.exp(-np.array([-2.0, 0, 1.5]))))
    np.testing.assert_allclose(logit_normal(normal, 1.0, 0.5), jax.nn.sigmoid(1.0 + 0.5 * normal))


def test_text_dropout_zeroes_rows_below_probability():
    text = jnp.ones((4, 3))
    dropped = drop_text(text, jnp.array([0.1, 0.6, 0.49, 0.5]), 0.5)
    np.testing.assert_array_equal(dropped.sum(1), [0, 3, 0, 3])
    data, noise, normal = _batch()
    rows = {}

    def record(x_t, t, text, *, deterministic, key):
        rows["zeroed"] = int(jnp.sum(jnp.all(text == 0, axis=1)))
        return jnp.zeros_like(x_t)

    flow_loss(record, data, jnp.ones((4, 3)), noise, normal, jax.random.key(0), text_dropout=1.0)
    assert rows["zeroed"] == 4
    flow_loss(record, data, jnp.ones((4, 3)), noise, normal, jax.random.key(0), text_dropout=0.0)
    assert rows["zeroed"] == 0


def test_noise_sources_are_deterministic_and_standard_normal():
    for source in ("tsu", "jax"):
        noise, normal = draw_noise(source, seed=7, step=3, noise_shape=(512, 4, 4, 2))
        again, _ = draw_noise(source, seed=7, step=3, noise_shape=(512, 4, 4, 2))
        other, _ = draw_noise(source, seed=7, step=4, noise_shape=(512, 4, 4, 2))
        np.testing.assert_array_equal(noise, again)
        assert not np.array_equal(noise, other)
        assert normal.shape == (512,)
        values = np.asarray(noise).ravel()
        # Mean and variance of 16,384 draws within 5 standard errors.
        assert abs(values.mean()) < 5 / np.sqrt(values.size)
        assert abs(values.var() - 1) < 5 * np.sqrt(2 / values.size)
    expected = tsu_core.get_backend().gaussian(
        (512, 4, 4, 2), key=tsu_core.Key(7).fold_in(3).split(2)[0]
    )
    np.testing.assert_array_equal(draw_noise("tsu", 7, 3, (512, 4, 4, 2))[0], np.asarray(expected))
