"""A real `thought-diffusion train` process: the first SIGTERM or SIGINT saves a checkpoint at
the end of the step and exits 0, the same command resumes from it, and a second signal stops the
process at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from thought_diffusion import cli
from thought_diffusion.checkpoint import read_checkpoint
from thought_diffusion.data import generated_text

TINY = ["--batch-size", "2", "--turn-length", "16", "--num-turns", "2", "--precision", "fp32",
        "--eval-interval", "1000000", "--eval-batches", "1", "--checkpoint-interval", "1000000"]  # fmt: skip
ITERATING = r"train:.*\|\s*[1-9]\d*/"  # tqdm's bar after the first step


def _start(tmp_path, *extra):
    data = tmp_path / "text.txt"
    data.write_text(generated_text(300))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "thought_diffusion.cli", "train", "--data", str(data),
               "--out", str(out), "--device", "cpu", *TINY, *extra]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "stderr", "w") as stderr:  # the child keeps its own descriptor
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, env=environment, text=True
        )
    return process, command[3:], out


def _wait_for(process, path, pattern, timeout=120.0):
    """The first match of `pattern` in the process's stderr so far, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text())
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no {pattern!r} in the training process's stderr:\n{path.read_text()[-2000:]}")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_saves_a_checkpoint_and_the_run_resumes(tmp_path, number, capsys, caplog):
    process, arguments, out = _start(tmp_path, "--steps", "1000000")
    _wait_for(process, tmp_path / "stderr", ITERATING)
    process.send_signal(number)
    assert process.wait(timeout=60) == 0
    assert process.stdout.read() == ""  # no summary: the run did not finish
    saved = _wait_for(
        process, tmp_path / "stderr", r"stopped by (\w+) at step (\d+); checkpoint saved to (\S+)"
    )
    assert saved.group(1) == signal.Signals(number).name
    step = int(saved.group(2))
    assert saved.group(3) == str(out / "checkpoint.safetensors")
    assert read_checkpoint(out / "checkpoint.safetensors").step == step >= 1
    assert not list(out.glob(".*.tmp"))

    # The same command with a larger budget continues from that step.
    caplog.set_level("INFO", logger="thought_diffusion")
    arguments[arguments.index("--steps") + 1] = str(step + 2)
    cli.main(arguments)
    assert f"at step {step}" in caplog.text
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == step + 2
    assert read_checkpoint(out / "checkpoint.safetensors").step == step + 2
    with (out / "log.csv").open() as log:
        steps = [int(line.split(",")[0]) for line in log.readlines()[1:]]
    assert steps == list(range(1, step + 3))


def test_second_signal_stops_at_once(tmp_path):
    # Steps of a second or so, so that the second signal arrives inside one.
    process, _, out = _start(tmp_path, "--steps", "1000000", "--batch-size", "64")
    _wait_for(process, tmp_path / "stderr", ITERATING)
    process.send_signal(signal.SIGTERM)
    _wait_for(process, tmp_path / "stderr", r"SIGTERM received")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == -signal.SIGTERM
    assert not (out / "checkpoint.safetensors").exists()
