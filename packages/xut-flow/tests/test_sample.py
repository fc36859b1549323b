"""Samplers: exact on flows they integrate exactly; guidance algebra; generation end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xut_flow.config import preset
from xut_flow.model import XUT
from xut_flow.sample import generate, guided_velocity, integrate, save_grid


def test_euler_follows_the_straight_line_flow_exactly():
    # The rectified flow of one data point a: v(x, t) = (a - x) / (1 - t), paths are lines.
    target = jnp.array([[2.0, -1.0, 0.5]])
    x0 = jnp.array([[0.3, 0.7, -1.2]])
    for steps in (1, 3, 10):
        end = integrate(lambda x, t: (target - x) / (1 - t[:, None]), x0, steps, "euler")
        np.testing.assert_allclose(end, target, rtol=1e-5, atol=1e-5)


def test_heun_is_exact_for_velocity_linear_in_time():
    # v = b + c t  =>  x(1) = x0 + b + c / 2; Heun (trapezoid) is exact, Euler is not.
    b, c = jnp.array([[1.0, -2.0]]), jnp.array([[3.0, 0.5]])
    x0 = jnp.array([[0.1, 0.2]])
    exact = x0 + b + c / 2
    velocity = lambda x, t: b + c * t[:, None]  # noqa: E731
    np.testing.assert_allclose(integrate(velocity, x0, 4, "heun"), exact, rtol=1e-6)
    euler = integrate(velocity, x0, 4, "euler")
    np.testing.assert_allclose(euler, x0 + b + c * (0 + 1 + 2 + 3) / 16, rtol=1e-6)
    assert not np.allclose(euler, exact)


def test_guidance_combines_conditional_and_unconditional():
    def model(x, t, text, deterministic=True):
        return x * 0 + text.sum(-1)[:, None] + 1.0

    text = jnp.array([[1.0, 2.0]])
    x, t = jnp.zeros((1, 2)), jnp.zeros((1,))
    for scale in (1.0, 0.0, 3.0):
        # conditional 4, unconditional 1: 1 + s (4 - 1)
        expected = 1.0 + scale * 3.0
        np.testing.assert_allclose(guided_velocity(model, text, scale)(x, t), expected)


def test_generate_and_grid(tmp_path):
    config = preset("tiny")
    model = XUT(config, rngs=nnx.Rngs(0))
    text = jax.random.normal(jax.random.key(0), (4, config.text_dim))
    samples = generate(model, text, (8, 8, 4), steps=2, method="heun", cfg_scale=2.0, seed=1)
    assert samples.shape == (4, 8, 8, 4)
    again = generate(model, text, (8, 8, 4), steps=2, method="heun", cfg_scale=2.0, seed=1)
    np.testing.assert_array_equal(samples, again)
    path = save_grid(np.asarray(samples)[..., 0], tmp_path / "grid.png", columns=2)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError):
        integrate(lambda x, t: x, jnp.zeros((1, 1)), 0)
