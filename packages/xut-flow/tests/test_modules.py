"""Weights round trips through safetensors and batched application (xut_flow.modules)."""

from __future__ import annotations

import numpy as np
from flax import nnx

from xut_flow.autoencoder import (
    AutoEncoder,
    decode_in_batches,
    encode_in_batches,
    load_autoencoder,
    save_autoencoder,
)


def test_autoencoder_round_trip_and_batches(tmp_path):
    model = AutoEncoder(1, rngs=nnx.Rngs(3))
    images = np.random.default_rng(0).uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
    latents = encode_in_batches(model, images, batch_size=2)  # batches of 2, 2 and 1
    assert np.allclose(latents, np.asarray(model.encode(images)), atol=1e-5)
    loaded = load_autoencoder(save_autoencoder(model, tmp_path / "autoencoder.safetensors"))
    assert loaded.channels == 1
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed
    assert np.array_equal(encode_in_batches(loaded, images), encode_in_batches(model, images))
    assert np.array_equal(decode_in_batches(loaded, latents), decode_in_batches(model, latents))
