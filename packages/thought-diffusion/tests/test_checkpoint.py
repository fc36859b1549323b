"""Checkpoints: verified on load (a flipped byte or a truncated file is a clear error), the
previous save kept and used when the newest is damaged, no partial file after a failed write."""

from __future__ import annotations

import dataclasses
import logging
import struct
from pathlib import Path

import pytest
import torch

from thought_diffusion import cli
from thought_diffusion.checkpoint import (
    CheckpointError,
    latest_intact,
    read_checkpoint,
    save_checkpoint,
)
from thought_diffusion.config import ModelConfig, TrainConfig
from thought_diffusion.data import TokenData, generated_text
from thought_diffusion.model import ThoughtDiffusionLM
from thought_diffusion.tokenizer import ByteTokenizer
from thought_diffusion.train import train_model


def _save(path, tiny_config, step):
    torch.manual_seed(step)
    model = ThoughtDiffusionLM(tiny_config())
    save_checkpoint(path, model, None, step, torch.Generator(), TrainConfig(), "{}")
    return model


def _flip_a_tensor_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    (header,) = struct.unpack("<Q", content[:8])
    content[8 + header + (len(content) - 8 - header) // 2] ^= 0x10
    path.write_bytes(bytes(content))


def test_each_save_keeps_the_previous_one(tmp_path, tiny_config):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)
    second = _save(path, tiny_config, 2)
    assert read_checkpoint(path).step == 2
    assert read_checkpoint(tmp_path / "checkpoint.prev.safetensors").step == 1
    for name, value in second.state_dict().items():
        assert torch.equal(read_checkpoint(path).model_state()[name], value), name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.prev.safetensors",
        "checkpoint.safetensors",
    ]


def test_a_flipped_byte_is_caught_and_the_previous_save_used(tmp_path, tiny_config, caplog):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)
    _save(path, tiny_config, 2)
    _flip_a_tensor_byte(path)
    with pytest.raises(CheckpointError, match="damaged checkpoint .*checkpoint.prev.safetensors"):
        read_checkpoint(path)
    caplog.set_level(logging.WARNING)
    assert latest_intact(tmp_path).step == 1
    assert "damaged checkpoint" in caplog.text and "resuming from" in caplog.text
    _flip_a_tensor_byte(tmp_path / "checkpoint.prev.safetensors")
    with pytest.raises(CheckpointError, match="checkpoint.safetensors.*; and .*prev"):
        latest_intact(tmp_path)


def test_a_truncated_file_is_a_clear_error(tmp_path, tiny_config):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="unreadable checkpoint .*truncated"):
        read_checkpoint(path)


def test_a_failed_write_leaves_the_old_checkpoint_and_no_partial_file(
    tmp_path, tiny_config, monkeypatch
):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)

    def fill_the_disk(tensors, name, metadata):
        Path(name).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("thought_diffusion.checkpoint.save_file", fill_the_disk)
    with pytest.raises(OSError, match="No space"):
        _save(path, tiny_config, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]
    assert read_checkpoint(path).step == 1


def test_training_resumes_from_the_previous_save_and_replaces_the_damaged_one(
    tmp_path, tiny_config
):
    tokenizer = ByteTokenizer()
    data = TokenData(tokenizer.encode(generated_text(300)))
    config = tiny_config(vocab_size=tokenizer.vocab_size, max_length=16)
    values = dict(batch_size=2, turn_length=12, num_turns=2, eval_batches=1, precision="fp32")
    train = TrainConfig(steps=2, checkpoint_interval=1, **values)
    train_model(config, train, data, tmp_path, tokenizer.to_json(), progress=False)
    leftover = tmp_path / ".checkpoint.safetensors.k2x9.tmp"  # of a process killed mid-write
    leftover.write_bytes(b"partial")
    _flip_a_tensor_byte(tmp_path / "checkpoint.safetensors")  # step 2; step 1 is intact
    _, rows = train_model(config, train, data, tmp_path, tokenizer.to_json(), progress=False)
    assert [row["step"] for row in rows] == [2]  # step 2 again, from step 1
    assert not leftover.exists()
    assert read_checkpoint(tmp_path / "checkpoint.safetensors").step == 2
    # the damaged save was replaced, not kept as the previous one
    assert read_checkpoint(tmp_path / "checkpoint.prev.safetensors").step == 1


def test_the_command_line_reports_a_damaged_checkpoint_in_one_line(tmp_path, tiny_config, capsys):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)
    _flip_a_tensor_byte(path)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["generate", "--checkpoint", str(path), "--prompt", "a", "--length", "4"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("thought-diffusion: error: ") and "damaged checkpoint" in error
    assert error.count("\n") == 1 and "Traceback" not in error


def test_a_config_stored_before_write_with_memory_keeps_its_meaning(tiny_config):
    stored = tiny_config().to_dict()
    assert stored.pop("write_with_memory") is False  # the default for new models
    assert ModelConfig.from_dict(stored).write_with_memory is True
    assert ModelConfig.from_dict(tiny_config().to_dict()).write_with_memory is False


def test_a_run_stored_before_memory_history_keeps_its_episodes(tmp_path, tiny_config):
    """A run saved without `memory_history` resumes with every episode from its first turn."""
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_config, 1)
    assert read_checkpoint(path).train_config.memory_history == "varied"  # new runs
    stored = dataclasses.asdict(TrainConfig())
    del stored["memory_history"]
    assert TrainConfig.from_dict(stored).memory_history == "full"
