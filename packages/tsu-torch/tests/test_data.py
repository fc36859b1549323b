import gzip

import numpy as np
import pytest

from tsu_torch.data import load_mnist, read_idx


def _write_idx(path, array: np.ndarray, compress: bool) -> None:  # noqa: ANN001
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip_and_split(tmp_path, compress: bool) -> None:  # noqa: ANN001
    images = np.random.default_rng(0).integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    (train_x, train_y), (held_x, held_y) = load_mnist(tmp_path, num_train=7)
    assert train_x.shape == (7, 784) and held_x.shape == (3, 784)
    np.testing.assert_allclose(train_x[0], images[0].reshape(-1) / 255.0)
    np.testing.assert_array_equal(held_y, [7, 8, 9])


def test_bad_file_is_rejected(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="idx"):
        read_idx(tmp_path / "bad")
