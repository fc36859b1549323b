"""Rectified flow: the interpolation, the velocity target, timesteps, the loss and the noise.

    x_t = (1 - t) x_0 + t x_1,   x_0 ~ N(0, I) (noise),   x_1 = data,
    target velocity  v* = d x_t / d t = x_1 - x_0,
    t = sigmoid(m + s n), n ~ N(0, 1)  (logit-normal),
    loss = E || v_theta(x_t, t, c) - (x_1 - x_0) ||^2,
with the text embedding c zeroed with probability p (classifier-free guidance training).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

import tsu_core


def interpolate(noise: jax.Array, data: jax.Array, t: jax.Array) -> jax.Array:
    """x_t = (1 - t) x_0 + t x_1, with t broadcast over the trailing axes."""
    t = t.reshape(t.shape + (1,) * (data.ndim - t.ndim))
    return (1 - t) * noise + t * data


def velocity_target(noise: jax.Array, data: jax.Array) -> jax.Array:
    """v* = x_1 - x_0."""
    return data - noise


def logit_normal(normal: jax.Array, mean: float = 0.0, std: float = 1.0) -> jax.Array:
    """t = sigmoid(mean + std * n) for standard-normal draws n."""
    return jax.nn.sigmoid(mean + std * normal)


def drop_text(text: jax.Array, uniform: jax.Array, probability: float) -> jax.Array:
    """Zero each example's text embedding where uniform < probability."""
    keep = (uniform >= probability).astype(text.dtype)
    return text * keep[:, None]


def flow_loss(
    model: Callable[..., jax.Array],
    data: jax.Array,
    text: jax.Array,
    noise: jax.Array,
    normal: jax.Array,
    key: jax.Array,
    *,
    text_dropout: float = 0.5,
    timestep_mean: float = 0.0,
    timestep_std: float = 1.0,
    deterministic: bool = False,
) -> jax.Array:
    """Mean squared error between the model's velocity and x_1 - x_0 (float32 scalar).

    Arguments:
        model: callable (x_t, t, text, deterministic=, key=) -> velocity.
        data: (B, H, W, C) x_1.
        text: (B, E) text embeddings; each example's is zeroed with probability
            `text_dropout` (classifier-free guidance).
        noise: same shape as `data`, x_0.
        normal: (B,) N(0, 1) draws for t.
        key: JAX key for the CFG dropout and TREAD's token routing.
    """
    dropout_key, routing_key = jax.random.split(key)
    t = logit_normal(normal.astype(jnp.float32), timestep_mean, timestep_std)
    data, noise = data.astype(jnp.float32), noise.astype(jnp.float32)
    x_t = interpolate(noise, data, t)
    uniform = jax.random.uniform(dropout_key, (data.shape[0],))
    conditioned = drop_text(text.astype(jnp.float32), uniform, text_dropout)
    velocity = model(x_t, t, conditioned, deterministic=deterministic, key=routing_key)
    return jnp.mean(jnp.square(velocity.astype(jnp.float32) - velocity_target(noise, data)))


def host_gaussian(shape: tuple[int, ...], key: tsu_core.Key) -> np.ndarray:
    """Standard normal draws from the tsu-core backend that TSU_BACKEND selects (float32)."""
    return np.asarray(tsu_core.get_backend().gaussian(tuple(shape), key=key), dtype=np.float32)


def draw_noise(
    source: Literal["tsu", "jax"],
    seed: int,
    step: int,
    noise_shape: tuple[int, ...],
) -> tuple[jax.Array, jax.Array]:
    """(noise x_0, normal draws for t) for one training step, a function of (seed, step) only.

    "tsu" draws them through tsu-core's Gaussian source; "jax" with jax.random on the device.
    """
    if source == "tsu":
        noise_key, time_key = tsu_core.Key(seed).fold_in(step).split(2)
        return (
            jnp.asarray(host_gaussian(noise_shape, noise_key)),
            jnp.asarray(host_gaussian(noise_shape[:1], time_key)),
        )
    if source == "jax":
        noise_key, time_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), step))
        return (
            jax.random.normal(noise_key, noise_shape, jnp.float32),
            jax.random.normal(time_key, noise_shape[:1], jnp.float32),
        )
    raise ValueError(f"noise source: expected 'tsu' or 'jax', got {source!r}")
