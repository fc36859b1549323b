"""A run directory's record of how it was trained: `run.json`, so that commands need only the
directory.

`train` writes the preset name, the full model config and the training config when a run
starts; `sample` builds the model from it instead of asking the user to repeat the preset, and
resuming `train` with a model that differs from the run's is an error that names the
difference, not a shape mismatch deep inside Orbax.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from tsu_core.files import atomic_write
from xut_flow.config import PRESETS, ModelConfig, TrainConfig

RUN_FILE = "run.json"
# Fields that may differ between a run and the model used on it: the attention kernel computes
# the same function either way.
INTERCHANGEABLE = ("attention",)


class RunConfigError(ValueError):
    """A run's record is unreadable, or a requested model differs from the run's."""


class RunRecord(NamedTuple):
    """What `run.json` holds: the preset the run started from (None when given as a config),
    its model and its training settings."""

    preset: str | None
    model: ModelConfig
    train: TrainConfig


def write_run(
    directory: str | Path, model: ModelConfig, train: TrainConfig, preset: str | None
) -> Path:
    """Record a run's preset and configs in `directory/run.json`, atomically."""
    path = Path(directory) / RUN_FILE
    record = {
        "preset": preset,
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(train),
    }
    atomic_write(path, lambda name: Path(name).write_text(json.dumps(record, indent=1) + "\n"))
    return path


def read_run(directory: str | Path) -> RunRecord | None:
    """The record of the run in `directory` (None: the run predates records, or none ran).

    Raises:
        RunConfigError: the file exists but is not a record this version can read.
    """
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return RunRecord(
            data.get("preset"), ModelConfig(**data["model"]), TrainConfig(**data["train"])
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunConfigError(
            f"{path}: unreadable run record ({type(error).__name__}: {error})"
        ) from None


def model_differences(recorded: ModelConfig, requested: ModelConfig) -> list[str]:
    """The model fields (but `INTERCHANGEABLE`) whose values differ, as `name run -> given`."""
    return [
        f"{field.name} {getattr(recorded, field.name)} -> {getattr(requested, field.name)}"
        for field in dataclasses.fields(ModelConfig)
        if field.name not in INTERCHANGEABLE
        and getattr(recorded, field.name) != getattr(requested, field.name)
    ]


def check_preset(record: RunRecord, directory: str | Path, preset: str | None) -> None:
    """Raise `RunConfigError` when an explicit `preset` is not the one the run was trained
    with (by name when recorded; else by the architecture fields the preset sets)."""
    if preset is None or preset == record.preset:
        return
    if record.preset is not None:
        raise RunConfigError(
            f"{directory} was trained with preset {record.preset!r}, not --preset {preset!r}: "
            "drop --preset to use the run's"
        )
    # The text width and latent channels come from the data, TREAD's rate from a flag.
    shape = PRESETS[preset].replace(
        text_dim=record.model.text_dim,
        latent_channels=record.model.latent_channels,
        tread_rate=record.model.tread_rate,
    )
    differences = model_differences(record.model, shape)
    if differences:
        raise RunConfigError(
            f"{directory}: --preset {preset!r} is not the run's model ({', '.join(differences)}):"
            " drop --preset to use the run's"
        )
