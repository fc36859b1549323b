"""Bits encodings round-trip; loaders read real formats from fixtures written here."""

import gzip

import numpy as np
import pytest
import torch

from bitflip_dtm.config import ConfigError, preset
from bitflip_dtm.data import (
    bits_to_images,
    colour_digits,
    gray_decode,
    gray_encode,
    images_to_bits,
    load_dataset,
    load_mnist,
    read_idx,
)


def test_gray_code_is_a_bijection_with_one_bit_steps():
    levels = torch.arange(256)
    codes = gray_encode(levels)
    assert torch.equal(gray_decode(codes, 8), levels)
    assert len(set(codes.tolist())) == 256
    changed = codes[1:] ^ codes[:-1]
    assert torch.all((changed & (changed - 1)) == 0)  # one bit per step


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("tiny", {}),
        ("mnist28", {"encoding": "gray", "bits_per_channel": 3}),
        ("rgb64", {"image_size": 8, "bits_per_channel": 3}),
    ],
)
def test_bits_round_trip(name, changes):
    config = preset(name, **changes)
    k = config.bits_per_channel
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 2**k, (5, config.channels, config.image_size, config.image_size),
                           generator=generator)  # fmt: skip
    images = levels.float() / (2**k - 1)
    bits = images_to_bits(images, config)
    assert bits.shape == (5, config.num_bits) and bits.dtype == torch.uint8
    assert torch.allclose(bits_to_images(bits, config), images)


def test_bit_layout_is_pixel_major():
    config = preset("rgb64", image_size=2, bits_per_channel=1)
    images = torch.zeros(1, 3, 2, 2)
    images[0, 2, 1, 0] = 1.0  # blue at row 1, col 0
    bits = images_to_bits(images, config)[0]
    assert bits.nonzero().ravel().tolist() == [(1 * 2 + 0) * 3 + 2]


def _write_idx(path, array, compress):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_loader(tmp_path, compress):
    suffix = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28))
    labels = np.arange(30) % 10
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    loaded, loaded_labels = load_mnist(tmp_path)
    assert loaded.shape == (30, 1, 28, 28)
    assert torch.allclose(loaded[:, 0], torch.from_numpy(images / 255).float())
    assert loaded_labels.tolist() == labels.tolist()
    config = preset("mnist28", data_path=str(tmp_path))
    train, _ = load_dataset(config, "train")
    held, _ = load_dataset(config, "held-out")
    assert train.shape[0] + held.shape[0] == 30
    coloured, _ = load_dataset(preset("rgb64", image_size=16, data_path=str(tmp_path)))
    assert coloured.shape == (24, 3, 16, 16)


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    with pytest.raises(ConfigError, match="no t10k-images"):
        load_mnist(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_mnist(tmp_path / "missing")


def test_coloured_digits_keep_foreground_and_background_apart():
    digits = torch.zeros(50, 1, 8, 8)
    digits[:, :, 2:6, 3:5] = 1.0
    images = colour_digits(digits, 16, torch.Generator().manual_seed(0))
    foreground, background = images[:, :, 8, 8], images[:, :, 0, 0]
    assert images.shape == (50, 3, 16, 16)
    assert torch.all((foreground - background).norm(dim=1) >= 0.5)


def test_sklearn_digits():
    pytest.importorskip("sklearn")
    images, labels = load_dataset(preset("mnist28", dataset="digits", image_size=8))
    assert images.shape == (1497, 1, 8, 8) and labels.max() == 9
