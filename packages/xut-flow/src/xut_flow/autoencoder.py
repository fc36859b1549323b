"""A small convolutional autoencoder, trained by this package, that maps images to latents.

No pretrained image VAE ships on PyPI, so small data sets (MNIST, 8x8 digits, an image folder)
are encoded by this model: (H, W, channels) in [-1, 1] -> (H/2, W/2, 4) latents, trained with
MSE reconstruction. Latents are divided by their standard deviation (`latent_scale`) so the
flow sees unit-variance data. Weights are saved as safetensors, atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from xut_flow.modules import assign, in_batches, load_module, save_module

logger = logging.getLogger(__name__)


class AutoEncoder(nnx.Module):
    """encoder: conv 3x3 -> conv 4x4 stride 2 -> conv 3x3 to 4 channels; decoder mirrors it."""

    def __init__(self, channels: int = 1, latent_channels: int = 4, width: int = 32, *, rngs):
        conv = nnx.Conv
        self.channels, self.latent_channels = channels, latent_channels
        self.encode_in = conv(channels, width, (3, 3), rngs=rngs)
        self.encode_down = conv(width, 2 * width, (4, 4), strides=(2, 2), rngs=rngs)
        self.encode_out = conv(2 * width, latent_channels, (3, 3), rngs=rngs)
        self.decode_in = conv(latent_channels, 2 * width, (3, 3), rngs=rngs)
        self.decode_up = nnx.ConvTranspose(2 * width, width, (4, 4), strides=(2, 2), rngs=rngs)
        self.decode_out = conv(width, channels, (3, 3), rngs=rngs)
        self.latent_scale = nnx.Variable(jnp.ones(()))

    def encode(self, images: jax.Array) -> jax.Array:
        hidden = jax.nn.silu(self.encode_in(images))
        hidden = jax.nn.silu(self.encode_down(hidden))
        return self.encode_out(hidden) / self.latent_scale[...]

    def decode(self, latents: jax.Array) -> jax.Array:
        hidden = jax.nn.silu(self.decode_in(latents * self.latent_scale[...]))
        hidden = jax.nn.silu(self.decode_up(hidden))
        return jnp.tanh(self.decode_out(hidden))


def train_autoencoder(
    images: np.ndarray,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> AutoEncoder:
    """Fit the autoencoder to images (N, H, W, C) in [-1, 1]; set latent_scale to the std."""
    model = AutoEncoder(images.shape[-1], rngs=nnx.Rngs(seed))
    graphdef, params, scale = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        def loss_function(params):
            module = nnx.merge(graphdef, params, scale)
            return jnp.mean(jnp.square(module.decode(module.encode(batch)) - batch))

        loss, grads = jax.value_and_grad(loss_function)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    generator = np.random.default_rng(seed)
    bar = tqdm(range(steps), disable=not progress, desc="autoencoder")
    for index in bar:
        batch = images[generator.integers(0, len(images), batch_size)]
        params, opt_state, loss = step(params, opt_state, jnp.asarray(batch))
        if index % 100 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    model = nnx.merge(graphdef, params, scale)
    sample = np.asarray(model.encode(jnp.asarray(images[: min(len(images), 2048)])))
    assign(model.latent_scale, jnp.asarray(float(sample.std()), jnp.float32))
    logger.info("autoencoder: final loss %.4f, latent std %.3f", float(loss), float(sample.std()))
    return model


def encode_in_batches(model: AutoEncoder, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Latents (N, h, w, 4) of images (N, H, W, C)."""
    return in_batches(lambda batch: model.encode(batch), images, batch_size)


def decode_in_batches(model: AutoEncoder, latents: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Images (N, H, W, C) in [-1, 1] of latents (N, h, w, 4)."""
    return in_batches(lambda batch: model.decode(batch), latents, batch_size)


def save_autoencoder(model: AutoEncoder, path: str | Path) -> Path:
    """Weights as safetensors (flat names), with the channel count in the metadata; atomic."""
    return save_module(model, path, {"channels": model.channels})


def load_autoencoder(path: str | Path) -> AutoEncoder:
    """An autoencoder saved by `save_autoencoder`."""
    return load_module(path, lambda metadata: AutoEncoder(metadata["channels"], rngs=nnx.Rngs(0)))
