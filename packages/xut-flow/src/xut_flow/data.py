"""Shards of (keys, latents (N, C, H, W), text embeddings (N, D)) and a deterministic loader.

Formats:
- native `.npz`: arrays `keys` (strings), `latents`, `text_embeddings`;
- native `.safetensors`: tensors `latents`, `text_embeddings`, keys as JSON in the metadata;
- the seed's `.pt` (read only, when torch is installed): a dict holding `keys`, `latents` and
  `text_embeddings` (also accepted: `embeddings`, `text_embedding`), loaded with
  `weights_only=True`.

Data order is a function of (seed, global step) only, so a resumed run sees exactly the batches
an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_TEXT_NAMES = ("text_embeddings", "embeddings", "text_embedding")


@dataclass
class Shard:
    """One shard: `keys` (N,), `latents` (N, C, H, W) float, `text_embeddings` (N, D) float."""

    keys: list[str]
    latents: np.ndarray
    text_embeddings: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.keys)
        if self.latents.ndim != 4 or self.latents.shape[0] != count:
            raise ValueError(f"latents: expected ({count}, C, H, W), got {self.latents.shape}")
        if self.text_embeddings.ndim != 2 or self.text_embeddings.shape[0] != count:
            raise ValueError(
                f"text_embeddings: expected ({count}, D), got {self.text_embeddings.shape}"
            )

    def __len__(self) -> int:
        return len(self.keys)


def _atomic_path(path: Path) -> Path:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(handle)
    return Path(temporary)


def save_shard(shard: Shard, path: str | Path) -> Path:
    """Write a shard as `.npz` or `.safetensors` (by suffix), atomically (temp file, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _atomic_path(path)
    latents = np.ascontiguousarray(shard.latents, dtype=np.float32)
    text = np.ascontiguousarray(shard.text_embeddings, dtype=np.float32)
    if path.suffix == ".npz":
        with open(temporary, "wb") as handle:
            np.savez(handle, keys=np.asarray(shard.keys), latents=latents, text_embeddings=text)
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(
            {"latents": latents, "text_embeddings": text},
            str(temporary),
            metadata={"keys": json.dumps(list(shard.keys))},
        )
    else:
        temporary.unlink()
        raise ValueError(f"shard path: expected a .npz or .safetensors suffix, got {path}")
    os.replace(temporary, path)
    return path


def load_shard(path: str | Path) -> Shard:
    """Read a shard in any supported format (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return Shard(
                [str(key) for key in arrays["keys"]], arrays["latents"], arrays["text_embeddings"]
            )
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            keys = json.loads((handle.metadata() or {}).get("keys", "null"))
            latents = handle.get_tensor("latents")
            text = handle.get_tensor("text_embeddings")
        if keys is None:
            keys = [str(index) for index in range(len(latents))]
        return Shard(list(keys), latents, text)
    if path.suffix == ".pt":
        return _load_torch_shard(path)
    raise ValueError(f"shard path: expected .npz, .safetensors or .pt, got {path}")


def check_shard_path(path: str | Path) -> None:
    """Check, without reading it, that `path` is a shard file `load_shard` can read.

    Raises:
        FileNotFoundError: there is no file at `path`.
        ValueError: its suffix is not a shard format's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such shard file")
    if path.suffix not in (".npz", ".safetensors", ".pt"):
        raise ValueError(f"shard path: expected .npz, .safetensors or .pt, got {path}")


def _load_torch_shard(path: Path) -> Shard:
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"{path}: reading the seed's .pt shards needs torch; pip install 'xut-flow[torch]' "
            "or convert the shard to .npz / .safetensors"
        ) from error
    content = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or "latents" not in content:
        raise ValueError(f"{path}: expected a dict with 'latents', got {type(content).__name__}")
    text_name = next((name for name in _TEXT_NAMES if name in content), None)
    if text_name is None:
        raise ValueError(f"{path}: expected one of {_TEXT_NAMES} beside 'latents'")
    latents = content["latents"].float().numpy()
    text = content[text_name].float().numpy()
    keys = [str(key) for key in content.get("keys", range(len(latents)))]
    return Shard(keys, latents, text)


class ShardDataset:
    """Batches from a list of shards, preloaded into RAM or streamed one shard at a time.

    Each epoch e uses numpy's generator seeded with (seed, e): preloaded, one permutation of all
    examples; streamed, a permutation of the shard order and of each shard's examples. The last
    incomplete batch of an epoch is dropped, so epoch and position follow from the global step.
    """

    def __init__(self, paths: Sequence[str | Path], *, preload: bool = True, seed: int = 0):
        self.paths = [Path(path) for path in paths]
        if not self.paths:
            raise ValueError("paths: expected at least one shard")
        self.preload, self.seed = preload, seed
        self.counts = []
        self._shards: list[Shard] | None = [] if preload else None
        for path in self.paths:
            shard = load_shard(path)
            self.counts.append(len(shard))
            if self._shards is not None:
                self._shards.append(shard)
            first = shard
        self.latent_shape = tuple(first.latents.shape[1:])
        self.text_dim = int(first.text_embeddings.shape[1])
        if preload:
            self._latents = np.concatenate([shard.latents for shard in self._shards])
            self._text = np.concatenate([shard.text_embeddings for shard in self._shards])
        logger.info("dataset: %d examples in %d shards", sum(self.counts), len(self.paths))

    def __len__(self) -> int:
        return sum(self.counts)

    def steps_per_epoch(self, batch_size: int) -> int:
        steps = len(self) // batch_size
        if steps == 0:
            raise ValueError(f"batch size {batch_size} exceeds the dataset's {len(self)} examples")
        return steps

    def batches(
        self, batch_size: int, start_step: int = 0
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield (global step, epoch, latents (B, H, W, C) float32, text (B, D) float32)."""
        per_epoch = self.steps_per_epoch(batch_size)
        step = start_step
        while True:
            epoch, skip = divmod(step, per_epoch)
            for latents, text in self._epoch(epoch, batch_size, skip):
                yield step, epoch, latents.transpose(0, 2, 3, 1), text
                step += 1

    def _epoch(
        self, epoch: int, batch_size: int, skip: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        generator = np.random.default_rng([self.seed, epoch])
        per_epoch = self.steps_per_epoch(batch_size)
        if self.preload:
            order = generator.permutation(len(self))
            for index in range(skip, per_epoch):
                chosen = np.sort(order[index * batch_size : (index + 1) * batch_size])
                yield (
                    self._latents[chosen].astype(np.float32),
                    self._text[chosen].astype(np.float32),
                )
            return
        shard_order = generator.permutation(len(self.paths))
        buffer_latents: list[np.ndarray] = []
        buffer_text: list[np.ndarray] = []
        buffered = produced = 0
        for shard_index in shard_order:
            shard = load_shard(self.paths[shard_index])
            order = generator.permutation(len(shard))
            buffer_latents.append(shard.latents[order])
            buffer_text.append(shard.text_embeddings[order])
            buffered += len(shard)
            while buffered >= batch_size and produced < per_epoch:
                latents = np.concatenate(buffer_latents)
                text = np.concatenate(buffer_text)
                if produced >= skip:
                    yield (
                        latents[:batch_size].astype(np.float32),
                        text[:batch_size].astype(np.float32),
                    )
                produced += 1
                buffer_latents, buffer_text = [latents[batch_size:]], [text[batch_size:]]
                buffered -= batch_size


def synthetic_shard(
    count: int, latent_shape: tuple[int, int, int], text_dim: int, seed: int = 0
) -> Shard:
    """Structured test data: each example's latent is a fixed pattern of its class, with the
    class's embedding as text, so the flow has something learnable (tests and --quick runs)."""
    generator = np.random.default_rng(seed)
    num_classes = 4
    patterns = generator.standard_normal((num_classes, *latent_shape)).astype(np.float32)
    embeddings = generator.standard_normal((num_classes, text_dim)).astype(np.float32)
    labels = generator.integers(0, num_classes, count)
    latents = patterns[labels] + 0.1 * generator.standard_normal((count, *latent_shape))
    return Shard(
        [f"example-{index}" for index in range(count)],
        latents.astype(np.float32),
        embeddings[labels],
    )
