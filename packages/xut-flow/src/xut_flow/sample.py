"""ODE samplers for the learned flow (Euler, Heun), classifier-free guidance, PNG grids.

Sampling integrates dx/dt = v(x, t) from t = 0 (noise x_0 ~ N(0, I)) to t = 1 (data) on the
uniform grid t_k = k / n:
    Euler: x_{k+1} = x_k + h v(x_k, t_k)
    Heun:  x' = x_k + h v(x_k, t_k);  x_{k+1} = x_k + h/2 (v(x_k, t_k) + v(x', t_{k+1}))
Guidance: v = v(x, t, 0) + s (v(x, t, c) - v(x, t, 0)); s = 1 is the plain conditional model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from xut_flow.flow import draw_noise

Velocity = Callable[[jax.Array, jax.Array], jax.Array]


def integrate(
    velocity: Velocity, x0: jax.Array, steps: int, method: Literal["euler", "heun"] = "euler"
) -> jax.Array:
    """Integrate dx/dt = velocity(x, t) (t given per example, shape (B,)) from 0 to 1."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    if method not in ("euler", "heun"):
        raise ValueError(f"method: expected 'euler' or 'heun', got {method!r}")
    step_size = 1.0 / steps
    batch = x0.shape[0]

    def body(index: jax.Array, x: jax.Array) -> jax.Array:
        t = jnp.full((batch,), index * step_size, jnp.float32)
        slope = velocity(x, t)
        if method == "euler":
            return x + step_size * slope
        predicted = x + step_size * slope
        return x + 0.5 * step_size * (slope + velocity(predicted, t + step_size))

    return jax.lax.fori_loop(0, steps, body, x0.astype(jnp.float32))


def guided_velocity(model, text: jax.Array, cfg_scale: float) -> Velocity:
    """v(x, t) of a model with classifier-free guidance at `cfg_scale`, text fixed.

    Conditional and unconditional predictions are taken in one batched call.
    """

    def velocity(x: jax.Array, t: jax.Array) -> jax.Array:
        if cfg_scale == 1.0:
            return model(x, t, text, deterministic=True)
        both = model(
            jnp.concatenate([x, x]),
            jnp.concatenate([t, t]),
            jnp.concatenate([text, jnp.zeros_like(text)]),
            deterministic=True,
        )
        conditional, unconditional = jnp.split(both, 2)
        return unconditional + cfg_scale * (conditional - unconditional)

    return velocity


def generate(
    model,
    text: jax.Array,
    latent_shape: tuple[int, int, int],
    *,
    steps: int = 50,
    method: Literal["euler", "heun"] = "euler",
    cfg_scale: float = 1.0,
    seed: int = 0,
    noise_source: Literal["tsu", "jax"] = "tsu",
) -> jax.Array:
    """Latents (B, H, W, C) for text embeddings (B, D), from seeded noise (tsu or jax source)."""
    text = jnp.asarray(text, jnp.float32)
    noise, _ = draw_noise(noise_source, seed, 0, (text.shape[0], *latent_shape))
    from flax import nnx

    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, noise, text):
        return integrate(
            guided_velocity(nnx.merge(graphdef, state), text, cfg_scale), noise, steps, method
        )

    return run(state, noise, text)


def save_grid(images: np.ndarray, path: str | Path, columns: int = 8) -> Path:
    """Tile images (N, H, W) or (N, H, W, 1|3) into one PNG, each scaled to [0, 1] jointly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    low, high = float(images.min()), float(images.max())
    images = (images - low) / max(high - low, 1e-8)
    count = images.shape[0]
    rows = -(-count // columns)
    height, width = images.shape[1:3]
    canvas = np.ones((rows * (height + 1), columns * (width + 1), *images.shape[3:]), np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, canvas, cmap="gray" if canvas.ndim == 2 else None)
    return path
