"""The command line on a tiny run: `run.json` makes `sample` use the run's preset, a
conflicting `--preset` is a one-line error, a damaged newest step falls back, and a run with no
intact step is one line on stderr."""

from __future__ import annotations

import json
import logging
import shutil

import jax
import pytest

import tsu_core
from xut_flow import cli
from xut_flow.data import save_shard, synthetic_shard
from xut_flow.run_record import read_run

# The tiny preset (text width 16) on 8x8x4 latents, one checkpoint per step, 3 steps.
TINY = ["--preset", "tiny", "--batch-size", "8", "--warmup-steps", "1", "--log-every", "1",
        "--checkpoint-every", "1", "--epoch-checkpoint-every", "0", "--noise-source", "jax"]  # fmt: skip


def train_command(shard, output, *extra):
    return ["train", "--data", str(shard), "--out", str(output), *extra]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A shard and a run trained for 3 steps by `xut-flow train` (steps 1, 2, 3 kept)."""
    root = tmp_path_factory.mktemp("tiny")
    shard = root / "shard.npz"
    save_shard(synthetic_shard(40, (4, 8, 8), text_dim=16, seed=1), shard)
    cli.main(train_command(shard, root / "run", *TINY, "--max-steps", "3"))
    return shard, root / "run"


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def _sample(run, shard, tmp_path, *extra):
    cli.main(["sample", "--checkpoint", str(run), "--data", str(shard), "--num-samples", "2",
              "--steps", "1", "--cfg-scale", "1", "--out", str(tmp_path / "grid.png"),
              *extra])  # fmt: skip


def test_train_records_the_preset(tiny_run):
    _, run = tiny_run
    record = read_run(run)
    assert record.preset == "tiny"
    assert (record.model.model_dim, record.model.text_dim) == (64, 16)
    assert sorted(int(p.name) for p in (run / "checkpoints" / "steps").iterdir()) == [1, 2, 3]


def test_sample_uses_the_run_preset(tiny_run, tmp_path, capsys, caplog):
    shard, run = tiny_run
    caplog.set_level(logging.INFO)
    _sample(run, shard, tmp_path)  # no --preset: the default would be xut-small
    output = capsys.readouterr()
    assert json.loads(output.out)["checkpoint_step"] == 3
    # One line names the device and the backend of the noise; Orbax's and JAX's INFO logs
    # (restoring a checkpoint, starting platforms) are hidden without -v.
    device = "cpu" if jax.devices()[0].platform == "cpu" else "cuda:0"
    assert output.err.splitlines() == [
        f"xut-flow: device {device}, backend {tsu_core.get_backend().name}"
    ]
    assert [r.name for r in caplog.records if r.name.startswith(("absl", "orbax", "jax"))] == []
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_sample_with_another_preset_is_an_error(tiny_run, tmp_path, capsys):
    shard, run = tiny_run
    with pytest.raises(SystemExit) as exit_:
        _sample(run, shard, tmp_path, "--preset", "xut-small")
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "trained with preset 'tiny', not --preset 'xut-small'" in error
    assert "\n" not in error


def test_resume_with_another_preset_is_an_error(tiny_run, tmp_path, capsys):
    shard, run = tiny_run
    run = _copy(run, tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(train_command(shard, run, "--preset", "xut-small", "--max-steps", "4"))
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "preset 'tiny', not 'xut-small'" in error and "\n" not in error


def _flip_largest_array_file(step_directory):
    path = max(step_directory.rglob("ocdbt.process_*/d/*"), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_sample_falls_back_from_a_damaged_newest_step(tiny_run, tmp_path, capsys, caplog):
    shard, run = tiny_run
    run = _copy(run, tmp_path)
    _flip_largest_array_file(run / "checkpoints" / "steps" / "3")
    caplog.set_level(logging.WARNING, logger="xut_flow")
    _sample(run, shard, tmp_path)
    assert json.loads(capsys.readouterr().out)["checkpoint_step"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "xut_flow.checkpoints"]
    assert len(warnings) == 1 and "steps/3" in warnings[0] and "step steps/2" in warnings[0]


def test_no_intact_step_is_one_line(tiny_run, tmp_path, capsys):
    shard, run = tiny_run
    run = _copy(run, tmp_path)
    for step in (1, 2, 3):
        _flip_largest_array_file(run / "checkpoints" / "steps" / str(step))
    with pytest.raises(SystemExit) as exit_:
        _sample(run, shard, tmp_path)
    assert exit_.value.code == 2
    started, error = capsys.readouterr().err.splitlines()  # found when the steps are read
    assert started.startswith("xut-flow: device ")
    assert error.startswith("xut-flow: error: ") and "no intact checkpoint" in error
