"""The FID feature extractor of a run: where it lives, which data it was trained on, and the rule
that it is reused only for that data.

`bitflip-dtm evaluate` trains the extractor (`evaluate.train_classifier`) on the quantised
training images the first time a run is evaluated and saves it in the run directory, with the
data set's name and a fingerprint of those images (the SHA-256 of their shape, dtype and bytes)
in the safetensors metadata. A later evaluation reuses it only when the fingerprint matches, so
an FID is never computed with features learned on other data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open

from bitflip_dtm.config import Config

log = logging.getLogger(__name__)
EPOCHS = 10


class ExtractorError(ValueError):
    """A feature extractor file does not belong to the data being evaluated."""


class Training(NamedTuple):
    """What training a feature extractor took: wall-clock seconds and training accuracy."""

    seconds: float
    accuracy: float


def extractor_path(run: Path, config: Config) -> Path:
    """Where a run keeps its feature extractor by default: named for its data set and size."""
    return run / f"classifier-{config.dataset}-{config.image_size}.safetensors"


def fingerprint(images: torch.Tensor) -> str:
    """The SHA-256 of an image tensor's shape, dtype and bytes (hex)."""
    digest = hashlib.sha256(f"{tuple(images.shape)} {images.dtype}".encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def trained_on(path: Path) -> dict[str, str]:
    """The data record in an extractor file's metadata: `dataset`, `images_sha256`,
    `num_images` (empty for a file written without one)."""
    try:
        with safe_open(str(path), framework="pt") as stored:
            metadata = stored.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ExtractorError(f"{path}: unreadable feature extractor ({error}); delete it") from None
    keys = ("dataset", "images_sha256", "num_images")
    return {key: metadata[key] for key in keys if key in metadata}


def check_extractor(path: Path, record: dict[str, str]) -> None:
    """Raise `ExtractorError` unless the extractor at `path` was trained on the data `record`
    describes (same fingerprint)."""
    stored = trained_on(path)
    fix = f"delete {path} to train a new one, or name another file with --classifier"
    if "images_sha256" not in stored:
        raise ExtractorError(f"{path}: feature extractor records no training data set; {fix}")
    if stored["images_sha256"] != record["images_sha256"]:
        raise ExtractorError(
            f"{path}: feature extractor trained on {stored.get('num_images', '?')} "
            f"{stored.get('dataset', '?')} images (SHA-256 {stored['images_sha256'][:12]}), not "
            f"on the {record['num_images']} {record['dataset']} images evaluated here "
            f"(SHA-256 {record['images_sha256'][:12]}); {fix}"
        )


def ensure_extractor(
    path: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    dataset: str,
    device: str | torch.device = "cpu",
    epochs: int = EPOCHS,
) -> Training | None:
    """Make `path` hold a feature extractor trained on `images` (N, C, S, S) in [0, 1].

    An existing file is checked (`check_extractor`) and reused; a missing one is trained and
    saved with its data record.

    Returns:
        None when the file was reused, else what training it took.
    """
    from bitflip_dtm.evaluate import save_classifier, train_classifier

    path = Path(path)
    record = {
        "dataset": dataset,
        "images_sha256": fingerprint(images),
        "num_images": str(images.shape[0]),
    }
    if path.exists():
        check_extractor(path, record)
        return None
    log.info("training a feature extractor on %d %s images for %s", len(images), dataset, path)
    started = time.perf_counter()
    classifier, accuracy = train_classifier(images, labels, epochs=epochs, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(classifier.cpu(), path, metadata=record)
    return Training(time.perf_counter() - started, accuracy)
