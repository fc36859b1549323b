"""Checkpoints: tensors in safetensors, config and optimiser state in JSON, both written atomically.

A checkpoint at iteration n is two files in one directory:

* `checkpoint-<n>.safetensors`: the per-step parameters (`steps.<i>.weights`, ...), the AdamW
  moments (`optimizer.<p>.exp_avg`, `optimizer.<p>.exp_avg_sq`), the persistent chains
  (`fantasy`, empty for fresh chains; `train.Trainer.fantasy`), and each step's correlation penalty and last measured
  autocorrelation (`penalty`, `autocorrelation`);
* `checkpoint-<n>.json`: the config (and the preset it started from, when known), the
  iteration, AdamW's hyper-parameters and step counts, and the SHA-256 of the tensors file, so a
  truncated or altered file is caught on load.

Each file is written to a temporary name in the same directory, flushed, and renamed; the JSON
is written last, so a checkpoint exists only once both files are complete. A failed write removes
its temporary file; `remove_partial_files` clears those of a process that was killed mid-write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bitflip_dtm.config import Config, ConfigError
from tsu_core.files import atomic_write, sha256

FORMAT = "bitflip-dtm-checkpoint-2"
PATTERN = re.compile(r"checkpoint-(\d+)\.json$")
PARTIAL = re.compile(r"\.checkpoint-\d+\.(json|safetensors)\..*\.tmp$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: config, iteration, tensors and the JSON metadata."""

    path: Path
    config: Config
    iteration: int
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]


def save_checkpoint(trainer: Any, directory: str | Path, preset: str | None = None) -> Path:
    """Write the trainer's state (and the name of the preset the run started from, when given);
    returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"checkpoint-{trainer.iteration:08d}"
    tensors = {
        name: value.detach().cpu().contiguous()
        for name, value in trainer.model.state_dict().items()
    }
    optimizer_state = trainer.optimizer.state_dict()
    steps: dict[str, float] = {}
    for index, state in optimizer_state["state"].items():
        for name, value in state.items():
            if name == "step":
                steps[str(index)] = float(value)
            else:
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
    tensors["fantasy"] = trainer.fantasy.detach().cpu().contiguous()
    tensors["penalty"] = trainer.penalty.detach().cpu().contiguous()
    tensors["autocorrelation"] = trainer.autocorrelation.detach().cpu().contiguous()
    tensors_path = directory / f"{stem}.safetensors"
    atomic_write(tensors_path, lambda name: save_file(tensors, name))
    groups = [
        {key: value for key, value in group.items() if key != "params"}
        for group in optimizer_state["param_groups"]
    ]
    metadata = {
        "format": FORMAT,
        "iteration": trainer.iteration,
        "config": trainer.config.to_dict(),
        "preset": preset,
        "optimizer": {"param_groups": groups, "steps": steps},
        "tensors": tensors_path.name,
        "sha256": sha256(tensors_path),
    }
    json_path = directory / f"{stem}.json"
    text = json.dumps(metadata, indent=1, default=_json_default)
    atomic_write(json_path, lambda name: Path(name).write_text(text))
    return json_path


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's JSON")


def remove_partial_files(directory: str | Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (a process killed
    while saving); returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    partial = [path for path in directory.iterdir() if PARTIAL.match(path.name)]
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The JSON of the highest-numbered checkpoint in a directory (None if there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [
        (int(match.group(1)), path)
        for path in directory.iterdir()
        if (match := PATTERN.match(path.name))
    ]
    return max(found)[1] if found else None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (its JSON path, or a directory for the latest one).

    Raises:
        CheckpointError: no checkpoint, unreadable JSON, a missing or altered tensors file.
    """
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no checkpoint-*.json in this directory")
        path = latest
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    fix = "delete this checkpoint (both files) to resume from an earlier one"
    try:
        metadata = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({error}); {fix}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise CheckpointError(
            f"{path}: not a {FORMAT} file (format {found!r}); checkpoints of earlier versions "
            "hold a different model: train again, or " + fix
        )
    tensors_path = path.parent / str(metadata.get("tensors", ""))
    if not tensors_path.is_file():
        raise CheckpointError(f"{path}: its tensors file {tensors_path.name} is missing; {fix}")
    if sha256(tensors_path) != metadata.get("sha256"):
        raise CheckpointError(
            f"{tensors_path}: corrupt tensors file (SHA-256 differs from the one recorded in "
            f"{path.name}: truncated or altered); {fix}"
        )
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{tensors_path}: unreadable safetensors file ({error}); {fix}"
        ) from None
    try:
        config = Config.from_dict(metadata["config"])
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: the stored config is invalid ({error}); {fix}") from None
    return Checkpoint(path, config, int(metadata["iteration"]), tensors, metadata)


def restore(trainer: Any, checkpoint: Checkpoint) -> None:
    """Load a checkpoint's parameters, AdamW state, chains and iteration into a trainer."""
    if checkpoint.config.to_dict() != trainer.config.to_dict():
        changed = sorted(
            key
            for key, value in checkpoint.config.to_dict().items()
            if trainer.config.to_dict().get(key) != value
        )
        raise CheckpointError(
            f"{checkpoint.path}: written with a different config (fields {changed} differ); "
            "resume with the checkpoint's config or start a new directory"
        )
    device = trainer.device
    model_state = {
        key: value.to(device)
        for key, value in checkpoint.tensors.items()
        if key.startswith("steps.")
    }
    trainer.model.load_state_dict(model_state)
    template = trainer.optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index_text, step in checkpoint.metadata["optimizer"]["steps"].items():
        index = int(index_text)
        state[index] = {
            "step": torch.tensor(step),
            "exp_avg": checkpoint.tensors[f"optimizer.{index}.exp_avg"].to(device),
            "exp_avg_sq": checkpoint.tensors[f"optimizer.{index}.exp_avg_sq"].to(device),
        }
    groups = checkpoint.metadata["optimizer"]["param_groups"]
    param_groups = [
        {**stored, "params": current["params"]}
        for stored, current in zip(groups, template["param_groups"], strict=True)
    ]
    for group in param_groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    trainer.optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    trainer.fantasy = checkpoint.tensors["fantasy"].to(device=device, dtype=torch.int8)
    trainer.penalty = checkpoint.tensors["penalty"].clone()
    trainer.autocorrelation = checkpoint.tensors["autocorrelation"].clone()
    trainer.iteration = checkpoint.iteration


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A `DTM` with a checkpoint's parameters (for sampling and evaluation)."""
    from bitflip_dtm.model import DTM

    checkpoint = load_checkpoint(path)
    model = DTM(checkpoint.config).to(device)
    model.load_state_dict(
        {
            key: value.to(device)
            for key, value in checkpoint.tensors.items()
            if key.startswith("steps.")
        }
    )
    return model
