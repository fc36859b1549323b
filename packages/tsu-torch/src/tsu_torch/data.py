"""Small loaders for the examples: MNIST-style idx files (optionally gzipped) and text files.

Nothing here downloads; point the loaders at files you have (`../shared/data` in this
repository, or your own MNIST / Fashion-MNIST in the same idx layout).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def read_idx(path: str | Path) -> np.ndarray:
    """An idx array (the MNIST format): magic 0x0000 0x08 (uint8) + rank, big-endian sizes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(
            f"{path}: expected an idx file of unsigned bytes (magic 0x00000803 or similar)"
        )
    rank = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def load_mnist(
    directory: str | Path, split: str = "t10k", num_train: int = 8000
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST images in [0, 1] (N, 784) and labels, split into (train, held out).

    With the 10,000-image test set (`t10k`), the first `num_train` images train and the rest
    are held out (8,000 / 2,000 by default).
    """
    directory = Path(directory)
    images = read_idx(_find(directory, f"{split}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{split}-labels-idx1-ubyte"))
    images = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return (images[:num_train], labels[:num_train]), (images[num_train:], labels[num_train:])


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{directory}: no {stem} or {stem}.gz (MNIST idx files expected)")
