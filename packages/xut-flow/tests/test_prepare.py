"""Offline image sources for shard building: MNIST idx files, image folders, sklearn digits."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from xut_flow.prepare import class_embeddings, load_images, read_idx


def _write_idx(path, array: np.ndarray, type_code: int = 0x08) -> None:
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_fixture(tmp_path):
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    loaded, loaded_labels, names = load_images(f"mnist:{tmp_path}")
    assert loaded.shape == (5, 32, 32, 1) and loaded.min() >= -1 and loaded.max() <= 1
    np.testing.assert_allclose(loaded[:, 2:30, 2:30, 0], 2 * images / 255 - 1, rtol=1e-6)
    assert (loaded[:, :2] == -1).all()  # padding is background
    np.testing.assert_array_equal(loaded_labels, labels)
    assert names[7] == "a handwritten digit seven"


def test_image_folder(tmp_path):
    import matplotlib.image

    for name, value in (("circles", 0.8), ("squares", 0.2)):
        (tmp_path / name).mkdir()
        for index in range(2):
            matplotlib.image.imsave(
                tmp_path / name / f"{index}.png",
                np.full((10, 12), value),
                cmap="gray",
                vmin=0,
                vmax=1,
            )
    images, labels, names = load_images(f"folder:{tmp_path}")
    assert names == ["circles", "squares"] and images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_digits_and_random_class_codes():
    pytest.importorskip("sklearn")
    images, labels, names = load_images("digits")
    assert images.shape == (1797, 32, 32, 1) and len(names) == 10 and labels.max() == 9
    codes = class_embeddings(names, "random", dim=384)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(codes, class_embeddings(names, "random", dim=384))
