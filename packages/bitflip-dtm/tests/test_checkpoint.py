"""Checkpoints round-trip, resume bit-for-bit, and reject corrupt files with clear errors."""

import json
from pathlib import Path

import pytest
import torch

from bitflip_dtm.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_files,
    restore,
    save_checkpoint,
)
from bitflip_dtm.data import load_dataset
from bitflip_dtm.train import Trainer


def _trainer(backend, config):
    images, _ = load_dataset(config)
    return Trainer(config, images, backend=backend)


def _parameters(trainer):
    return {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}


@pytest.mark.parametrize("chains", ["persistent", "fresh-persistent-noise"])
def test_round_trip_and_resume_give_identical_next_step(backend, tmp_path, tiny_training, chains):
    tiny_training = tiny_training.replace(chains=chains)
    first = _trainer(backend, tiny_training)
    first.train(iterations=1)
    path = save_checkpoint(first, tmp_path)
    assert latest_checkpoint(tmp_path) == path
    before = _parameters(first)
    first.train_step()
    expected = _parameters(first)

    second = _trainer(backend, tiny_training)
    restore(second, load_checkpoint(tmp_path))
    assert second.iteration == 1
    for name, value in _parameters(second).items():
        assert torch.equal(value, before[name]), name
    assert torch.equal(second.fantasy, load_checkpoint(path).tensors["fantasy"])
    second.train_step()
    for name, value in _parameters(second).items():
        assert torch.equal(value, expected[name]), name
    for group_first, group_second in zip(
        first.optimizer.state_dict()["state"].values(),
        second.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        for key in group_first:
            assert torch.equal(group_first[key], group_second[key])


def test_latest_is_the_highest_iteration(backend, tmp_path, tiny_training):
    trainer = _trainer(backend, tiny_training)
    save_checkpoint(trainer, tmp_path)
    trainer.train_step()
    path = save_checkpoint(trainer, tmp_path)
    assert latest_checkpoint(tmp_path) == path
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_write_leaves_no_files(backend, tmp_path, tiny_training, monkeypatch):
    def fail_half_way(tensors, name):
        Path(name).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bitflip_dtm.checkpoint.save_file", fail_half_way)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(_trainer(backend, tiny_training), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_partial_files_of_a_killed_write_are_removed(tmp_path):
    partial = tmp_path / ".checkpoint-00000007.safetensors.k2x9.tmp"
    other = tmp_path / ".notes.tmp"
    partial.write_bytes(b"partial")
    other.write_text("not ours")
    assert remove_partial_files(tmp_path) == [partial]
    assert not partial.exists() and other.exists()


def test_corrupt_checkpoints_give_clear_errors(backend, tmp_path, tiny_training):
    trainer = _trainer(backend, tiny_training)
    path = save_checkpoint(trainer, tmp_path)
    tensors = path.with_suffix(".safetensors")
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt tensors file"):
        load_checkpoint(path)
    tensors.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint metadata"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)


def test_a_checkpoint_of_another_config_is_refused(backend, tmp_path, tiny_training):
    trainer = _trainer(backend, tiny_training)
    path = save_checkpoint(trainer, tmp_path)
    metadata = json.loads(path.read_text())
    metadata["config"]["learning_rate"] = 0.5
    path.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="learning_rate"):
        restore(_trainer(backend, tiny_training), load_checkpoint(path))
    metadata["config"]["num_steps"] = 0
    path.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="stored config is invalid"):
        load_checkpoint(path)
