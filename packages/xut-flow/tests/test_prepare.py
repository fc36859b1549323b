"""Offline image sources for shard building: MNIST idx files, image folders, sklearn digits."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tsu_core.testing.matrix import once_per_package
from tsu_core.testing.memory import ON_LINUX, check_estimate, measure_peak
from xut_flow.prepare import class_embeddings, count_images, load_images, read_idx


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
    # Converted in float32: within a few roundings of 1 ulp at 1 of the exact value.
    np.testing.assert_allclose(loaded[:, 2:30, 2:30, 0], 2 * images / 255 - 1, rtol=0, atol=3e-7)
    assert (loaded[:, :2] == -1).all()  # padding is background
    np.testing.assert_array_equal(loaded_labels, labels)
    assert names[7] == "a handwritten digit seven"
    assert count_images(f"mnist:{tmp_path}") == 5


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
    assert count_images(f"folder:{tmp_path}") == 4


def test_digits_and_random_class_codes():
    pytest.importorskip("sklearn")
    images, labels, names = load_images("digits")
    assert images.shape == (1797, 32, 32, 1) and len(names) == 10 and labels.max() == 9
    assert count_images("digits") == 1797
    codes = class_embeddings(names, "random", dim=384)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(codes, class_embeddings(names, "random", dim=384))


@once_per_package
@pytest.mark.skipif(not ON_LINUX, reason="reads /proc; ru_maxrss in KiB")
def test_the_prepare_memory_estimate_is_within_a_factor_of_a_measured_run(tmp_path):
    """Shards of 8,000 random MNIST-sized images: the peak of `build_shards` is at least the
    estimate and at most twice it plus 1.5 GiB (JAX's runtime, compiling the autoencoder, is
    not part of the estimate)."""
    count = 8000
    images = np.random.default_rng(0).integers(0, 256, (count, 28, 28))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(count) % 10)
    setup = """
import jax
jax.config.update("jax_platforms", "cpu")
from xut_flow.prepare import build_shards, prepare_memory
jax.numpy.zeros(1).block_until_ready()
"""
    work = f"""build_shards("mnist:{tmp_path}", {str(tmp_path / "out")!r}, text_encoder="random",
             autoencoder_steps=1)"""
    estimate = f"prepare_memory({count})"
    check_estimate(*measure_peak(setup, work, estimate), factor=2, slack=1536 * 2**20)
