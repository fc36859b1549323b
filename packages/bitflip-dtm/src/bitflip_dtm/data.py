"""Images to bits and back, and the data sets (all offline).

Bits of a batch of images (B, C, H, W) with values in [0, 1] are laid out pixel by pixel:
bit `(row * W + col) * P + plane` with `P = C * k` planes, plane `channel * k + j` holding bit j
(most significant first) of that channel's k-bit Gray code. Spins are `s = 2 x - 1`.

Data sets: MNIST from idx files (`.gz` or not; a directory or a file path), scikit-learn's
bundled 8x8 digits, coloured MNIST generated here (digits upscaled, random foreground and
background colours), and a two-pattern set for tests.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional

from bitflip_dtm.config import NUM_CLASSES, Config, ConfigError
from tsu_core.cli_convention import require_module

log = logging.getLogger(__name__)

HELD_OUT = 2000  # MNIST t10k: the last 2,000 digits are held out, the first 8,000 train
# Images converted at a time, to bits (`data_spins`) or to colour (`colour_digits`).
CONVERSION_CHUNK = 1024


# -- bits ----------------------------------------------------------------------------------------
def gray_encode(levels: torch.Tensor) -> torch.Tensor:
    """The Gray code `g = n xor (n >> 1)` of integer levels."""
    return levels ^ (levels >> 1)


def gray_decode(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The inverse of `gray_encode`: `n = g xor (g >> 1) xor (g >> 2) ...`."""
    levels = codes.clone()
    shift = 1
    while shift < bits:
        levels = levels ^ (levels >> shift)
        shift *= 2
    return levels


def images_to_bits(images: torch.Tensor, config: Config) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1] to (B, D) bits in {0, 1} (uint8), laid out as above."""
    if images.ndim != 4 or images.shape[1] != config.channels:
        raise ValueError(
            f"images: expected shape (B, {config.channels}, H, W), got {tuple(images.shape)}"
        )
    if config.encoding == "threshold":
        planes = (images > 0.5).to(torch.uint8).unsqueeze(2)  # (B, C, 1, H, W)
    else:
        k = config.bits_per_channel
        levels = torch.round(images.clamp(0, 1) * (2**k - 1)).to(torch.int64)
        codes = gray_encode(levels)
        shifts = torch.arange(k - 1, -1, -1, device=images.device)
        planes = ((codes.unsqueeze(2) >> shifts.view(1, 1, k, 1, 1)) & 1).to(torch.uint8)
    batch = images.shape[0]
    # (B, C, k, H, W) -> (B, H, W, C * k) -> (B, D)
    return planes.permute(0, 3, 4, 1, 2).reshape(batch, -1).contiguous()


def bits_to_images(bits: torch.Tensor, config: Config) -> torch.Tensor:
    """The inverse of `images_to_bits`: (B, D) bits to (B, C, H, W) images in [0, 1]. Label
    bits after the image's (`config.label_copies`) are ignored."""
    size, channels, k = config.image_size, config.channels, config.bits_per_channel
    bits = bits[:, : config.num_image_bits]
    planes = bits.to(torch.int64).reshape(-1, size, size, channels, k).permute(0, 3, 4, 1, 2)
    if config.encoding == "threshold":
        return planes[:, :, 0].to(torch.float32)
    shifts = torch.arange(k - 1, -1, -1, device=bits.device)
    codes = (planes << shifts.view(1, 1, k, 1, 1)).sum(2)
    return gray_decode(codes, k).to(torch.float32) / (2**k - 1)


def bits_to_spins(bits: torch.Tensor) -> torch.Tensor:
    """{0, 1} -> {-1, +1} (int8)."""
    return (2 * bits.to(torch.int8) - 1).to(torch.int8)


def spins_to_bits(spins: torch.Tensor) -> torch.Tensor:
    """{-1, +1} -> {0, 1} (uint8)."""
    return (spins > 0).to(torch.uint8)


def label_spins(labels: torch.Tensor, config: Config) -> torch.Tensor:
    """Class labels (B,) to the label bits as spins (B, 10 * label_copies): `label_copies`
    one-hot codes, +1 at the class and -1 elsewhere."""
    one_hot = functional.one_hot(labels.to(torch.int64), NUM_CLASSES).to(torch.int8)
    return (2 * one_hot - 1).repeat(1, config.label_copies)


def data_spins(images: torch.Tensor, labels: torch.Tensor | None, config: Config) -> torch.Tensor:
    """The visible spins (B, D) of images and, when the config has label bits, their labels.

    Converted `CONVERSION_CHUNK` images at a time: the int64 levels and bit planes of the whole
    training set would be many times its size."""
    count = images.shape[0]
    spins = torch.empty((count, config.num_image_bits), dtype=torch.int8, device=images.device)
    for start in range(0, count, CONVERSION_CHUNK):
        chunk = images[start : start + CONVERSION_CHUNK]
        spins[start : start + CONVERSION_CHUNK] = bits_to_spins(images_to_bits(chunk, config))
    if not config.label_copies:
        return spins
    if labels is None:
        raise ConfigError(
            f"label_copies={config.label_copies}: the model has label bits, so it needs the "
            "images' labels"
        )
    return torch.cat([spins, label_spins(labels, config).to(spins.device)], dim=1)


# -- loaders -------------------------------------------------------------------------------------
def read_idx(path: str | Path) -> np.ndarray:
    """An array from an idx file (MNIST's format), gzipped or not.

    The header is two zero bytes, a type code (0x08: uint8) and the number of dimensions,
    then one big-endian int32 per dimension.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read an idx file ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of uint8 (bad magic number {data[:4]!r})")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds {body.size} bytes")
    return body.reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise ConfigError(
        f"data_path: no {stem}(.gz) in {directory}; point data_path at a directory holding "
        "MNIST idx files (e.g. ../shared/data/mnist)"
    )


def _mnist_files(path: Path) -> tuple[Path, Path]:
    """The images and labels idx files that `load_mnist(path)` reads."""
    if path.is_dir():
        try:
            return (
                _find_idx(path, "train-images-idx3-ubyte"),
                _find_idx(path, "train-labels-idx1-ubyte"),
            )
        except ConfigError:
            return (
                _find_idx(path, "t10k-images-idx3-ubyte"),
                _find_idx(path, "t10k-labels-idx1-ubyte"),
            )
    labels = Path(str(path).replace("images-idx3", "labels-idx1"))
    if not path.exists():
        raise ConfigError(f"data_path: {path} does not exist; pass --data DIR of MNIST idx files")
    if not labels.exists():
        raise ConfigError(f"data_path: no labels file {labels} beside {path}")
    return path, labels


def check_data(config: Config) -> None:
    """Check, without reading them, that the config's data set can be loaded: MNIST's idx
    files are there, or scikit-learn for the bundled digits.

    Raises:
        ConfigError: the MNIST files are missing.
        Unmet: the digits need scikit-learn, which is not installed.
    """
    if config.dataset == "digits":
        require_module(
            "sklearn", package="bitflip-dtm", extra="digits", needed_by="the digits data set"
        )
    elif config.dataset in ("mnist", "coloured-mnist"):
        _mnist_files(Path(config.data_path))


def dataset_size(config: Config, split: str = "train") -> int:
    """The number of images `load_dataset(config, split)` returns, read from the idx header
    without loading the images."""
    if config.dataset == "two-patterns":
        return 128
    if config.dataset == "digits":
        count, held = 1797, 300
    else:
        images_file, _ = _mnist_files(Path(config.data_path))
        opener = gzip.open if images_file.suffix == ".gz" else open
        with opener(images_file, "rb") as handle:
            count = int.from_bytes(handle.read(8)[4:8], "big")
        held = min(HELD_OUT, count // 5)
    return count - held if split == "train" else held


def load_mnist(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits (N, 1, 28, 28) in [0, 1] and labels (N,) from idx files.

    `path` is a directory with `t10k-images-idx3-ubyte(.gz)` (or `train-...`) and the labels
    beside it, or the images file itself.
    """
    images_file, labels_file = _mnist_files(Path(path))
    images = torch.from_numpy(read_idx(images_file).astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(read_idx(labels_file).astype(np.int64))
    return images, labels


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (1,797), (N, 1, 8, 8) in [0, 1], and labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def colour_digits(digits: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Coloured MNIST: grayscale digits (N, 1, h, w) upscaled to size x size, each drawn in a
    random foreground colour on a random background colour: `x = m * fg + (1 - m) * bg`.

    Colours are uniform in the RGB cube, redrawn until `|fg - bg| >= 0.5` so digits stay visible.
    """
    count = digits.shape[0]
    foreground = torch.rand(count, 3, generator=generator)
    background = torch.rand(count, 3, generator=generator)
    close = (foreground - background).norm(dim=1) < 0.5
    while close.any():
        background[close] = torch.rand(int(close.sum()), 3, generator=generator)
        close = (foreground - background).norm(dim=1) < 0.5
    coloured = torch.empty(count, 3, size, size)
    for start in range(0, count, CONVERSION_CHUNK):  # the upscaled masks, a chunk at a time
        part = slice(start, start + CONVERSION_CHUNK)
        mask = functional.interpolate(
            digits[part], size=(size, size), mode="bilinear", align_corners=False
        )
        fore, back = foreground[part, :, None, None], background[part, :, None, None]
        coloured[part] = mask * fore + (1 - mask) * back
    return coloured


def two_patterns(size: int, channels: int = 1) -> torch.Tensor:
    """Two fixed binary images: a checkerboard and a plus sign (shape (2, C, size, size))."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    checker = ((rows + cols) % 2 == 0).float()
    middle = size // 2
    plus = ((rows == middle) | (cols == middle)).float()
    return torch.stack([checker, plus]).unsqueeze(1).expand(2, channels, size, size).clone()


def load_dataset(config: Config, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, S, S) in [0, 1] at the config's size and labels, for "train" or "held-out".

    MNIST (and coloured MNIST built on it) uses the first 8,000 digits of the file for training
    and the last 2,000 as held out; sklearn digits use the first 1,497 and the last 300.
    """
    if split not in ("train", "held-out"):
        raise ValueError(f"split: expected 'train' or 'held-out', got {split!r}")
    size = config.image_size
    if config.dataset == "two-patterns":
        images = two_patterns(size, config.channels).repeat(64, 1, 1, 1)
        return images, torch.arange(images.shape[0]) % 2
    if config.dataset == "digits":
        images, labels = load_digits()
        held = 300
    else:
        images, labels = load_mnist(config.data_path)
        held = min(HELD_OUT, images.shape[0] // 5)
    chosen = slice(None, -held) if split == "train" else slice(-held, None)
    images, labels = images[chosen], labels[chosen]
    if config.dataset == "coloured-mnist":
        generator = torch.Generator().manual_seed(config.seed + (split == "held-out"))
        images = colour_digits(images, size, generator)
    elif images.shape[-1] != size:
        images = functional.interpolate(images, size=(size, size), mode="bilinear")
    if images.shape[1] != config.channels:
        raise ConfigError(
            f"dataset '{config.dataset}' has {images.shape[1]} channel(s) but channels="
            f"{config.channels}; use channels=3 for coloured-mnist, 1 otherwise"
        )
    log.info("loaded %s (%s): %d images", config.dataset, split, images.shape[0])
    return images.clamp_(0, 1), labels
