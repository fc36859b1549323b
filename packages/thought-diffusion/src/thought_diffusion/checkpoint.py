"""Checkpoints: one safetensors file per run, verified on load, written atomically, the
previous one kept.

`checkpoint.safetensors` holds the model, the AdamW state and every rank's generator state; its
metadata the model and train configs, the step, the tokenizer, the optimiser's parameter groups,
how the run was started (`run`: the command line records its preset, tokenizer and data file)
and `sha256`: a SHA-256 over every other metadata entry and every tensor's name, dtype, shape and
bytes. (A digest of the file itself cannot live inside the file; this one covers the same
content.) Loading recomputes it, so a flipped byte or a truncated file is a `CheckpointError`
with one line that says what to do, never a silent resume.

Each save writes a temporary file beside the checkpoint (removed if the write fails) and renames
the checkpoint it replaces to `checkpoint.prev.safetensors`; when the newest is damaged,
`latest_intact` resumes from that one and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from thought_diffusion.config import ModelConfig, TrainConfig
from thought_diffusion.model import ThoughtDiffusionLM
from tsu_core.files import atomic_write

logger = logging.getLogger(__name__)

NEWEST = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged (its checksum differs) or unreadable."""


@dataclass
class Checkpoint:
    """A verified checkpoint: configs, step, tokenizer, how the run started, raw tensors."""

    path: Path
    model_config: ModelConfig
    train_config: TrainConfig
    step: int
    tokenizer: str
    optimizer_groups: list | None
    run: dict[str, str]
    tensors: dict[str, torch.Tensor]

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict."""
        prefix = "model."
        return {
            name[len(prefix) :]: value
            for name, value in self.tensors.items()
            if name.startswith(prefix)
        }

    def model(self, device: torch.device | str = "cpu") -> ThoughtDiffusionLM:
        """The model with the checkpoint's parameters."""
        model = ThoughtDiffusionLM(self.model_config)
        model.load_state_dict(self.model_state())
        return model.to(device)

    def extra(self) -> dict:
        """The dict `load_checkpoint` returns beside the model."""
        return {
            "step": self.step,
            "train_config": self.train_config,
            "tokenizer": self.tokenizer,
            "optimizer_groups": self.optimizer_groups,
            "run": self.run,
            "tensors": self.tensors,
        }


def previous_path(path: str | Path) -> Path:
    """Where the save before `path` is kept: `checkpoint.prev.safetensors` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def content_sha256(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over the metadata (but `sha256` itself) and each tensor's name, dtype, shape
    and bytes, in sorted order."""
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != "sha256":
            digest.update(json.dumps([key, metadata[key]]).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: ThoughtDiffusionLM,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    generator: torch.Generator | None,
    train: TrainConfig,
    tokenizer_json: str,
    rank_generators: list[torch.Tensor] | None = None,
    run: dict[str, str] | None = None,
    keep_previous: bool = True,
) -> None:
    """Write model, optimiser and generator state to one safetensors file, atomically.

    `rank_generators` holds every data-parallel rank's generator state (rank r resumes from
    `generator.r`); `run` says how the run was started. With `keep_previous` the file being
    replaced becomes `checkpoint.prev.safetensors` (off when it is known to be damaged).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{name}": value.detach().cpu().contiguous()
        for name, value in model.state_dict().items()
    }
    optimizer_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{index}.{name}"] = (
                    torch.as_tensor(value).detach().cpu().contiguous()
                )
        optimizer_meta = state["param_groups"]
    if generator is not None:
        tensors["generator"] = generator.get_state()
    for rank, state in enumerate(rank_generators or []):
        tensors[f"generator.{rank}"] = state
    metadata = {
        "model_config": json.dumps(model.config.to_dict()),
        "train_config": json.dumps(asdict(train)),
        "step": str(step),
        "optimizer_groups": json.dumps(optimizer_meta),
        "tokenizer": tokenizer_json,
        "run": json.dumps(run or {}),
    }
    metadata["sha256"] = content_sha256(tensors, metadata)
    atomic_write(
        path,
        lambda name: save_file(tensors, name, metadata=metadata),
        previous_path(path) if keep_previous else None,
    )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint file.

    Raises:
        CheckpointError: no file, an unreadable or truncated file, a checksum that differs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: no file at {path}")
    previous = previous_path(path)
    fix = (
        f"{previous.name} beside it holds the save before it"
        if previous.is_file()
        else "train again, or restore it from a copy"
    )
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated or damaged: {error}); {fix}"
        ) from None
    if "sha256" not in metadata:
        logger.warning("%s: written before checkpoints had checksums; not verified", path)
    elif content_sha256(tensors, metadata) != metadata["sha256"]:
        raise CheckpointError(
            f"{path}: damaged checkpoint (its contents do not match the SHA-256 recorded when "
            f"it was saved: altered or truncated); {fix}"
        )
    try:
        return Checkpoint(
            path=path,
            model_config=ModelConfig.from_dict(json.loads(metadata["model_config"])),
            train_config=TrainConfig.from_dict(json.loads(metadata["train_config"])),
            step=int(metadata["step"]),
            tokenizer=metadata["tokenizer"],
            optimizer_groups=json.loads(metadata["optimizer_groups"]),
            run=json.loads(metadata.get("run", "{}")),
            tensors=tensors,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a thought-diffusion checkpoint ({type(error).__name__}: {error})"
        ) from None


def latest_intact(directory: str | Path) -> Checkpoint | None:
    """The newest checkpoint in a run directory that passes its checksum (None if there is
    none): `checkpoint.safetensors`, or `checkpoint.prev.safetensors` when the newest is damaged
    or missing, with a warning that says so.

    Raises:
        CheckpointError: both are damaged (naming both).
    """
    newest, previous = Path(directory) / NEWEST, Path(directory) / PREVIOUS
    if newest.is_file():
        try:
            return read_checkpoint(newest)
        except CheckpointError as error:
            if not previous.is_file():
                raise
            problem = str(error)
    elif previous.is_file():
        problem = f"{newest}: missing (a save was cut off between its two renames)"
    else:
        return None
    try:
        checkpoint = read_checkpoint(previous)
    except CheckpointError as error:
        raise CheckpointError(f"{problem}; and {error}") from None
    logger.warning("%s; resuming from %s (step %d) instead", problem, previous, checkpoint.step)
    return checkpoint


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[ThoughtDiffusionLM, dict]:
    """A model from a verified checkpoint, and the rest: step, train config, tokenizer, how the
    run started, raw tensors."""
    checkpoint = read_checkpoint(path)
    return checkpoint.model(device), checkpoint.extra()


def restore_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Load the optimiser state saved by `save_checkpoint`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in checkpoint.tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": checkpoint.optimizer_groups})


def same_model(stored: ModelConfig, requested: ModelConfig) -> bool:
    """Whether a checkpoint's model is the one requested; gradient checkpointing only trades
    memory for compute, so it may differ."""
    return replace(stored, gradient_checkpointing=requested.gradient_checkpointing) == requested
