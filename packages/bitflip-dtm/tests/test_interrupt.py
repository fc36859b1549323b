"""A real `bitflip-dtm train` process: the first SIGTERM or SIGINT saves a checkpoint at the end
of the iteration and exits 0, the run resumes from it, and a second signal stops it at once."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from bitflip_dtm.checkpoint import latest_checkpoint, load_checkpoint
from bitflip_dtm.cli import main

BACKEND = os.environ.get("TSU_BACKEND") or "reference"
TINY = ["--preset", "tiny", "--set", "num_steps=2", "--set", "latents_per_patch=2",
        "--set", "fantasy_chains=8", "--set", "batch_size=8", "--set", "steps_per_iteration=2"]  # fmt: skip
ITERATING = r"train:.*\|\s*[1-9]\d*/"  # tqdm's bar after the first iteration


def _start(out, *extra):
    command = [sys.executable, "-m", "bitflip_dtm.cli", "train", "--device", "cpu",
               "--backend", BACKEND, *TINY, "--out", str(out), *extra]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(f"{out}.stderr", "w") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment)


def _wait_for(process, pattern, timeout=120.0):
    """The first match of `pattern` in the process's stderr so far, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    path = process.args[process.args.index("--out") + 1] + ".stderr"
    while time.monotonic() < deadline:
        with open(path) as stream:
            match = re.search(pattern, stream.read())
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    with open(path) as stream:
        pytest.fail(f"no {pattern!r} in the training process's stderr:\n{stream.read()[-2000:]}")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_saves_a_checkpoint_and_the_run_resumes(tmp_path, number, capsys, caplog):
    out = tmp_path / "run"
    process = _start(out, "--iterations", "100000")
    _wait_for(process, ITERATING)
    process.send_signal(number)
    assert process.wait(timeout=60) == 0
    saved = _wait_for(process, r"stopped by (\w+) at iteration (\d+); checkpoint saved to (\S+)")
    assert saved.group(1) == signal.Signals(number).name
    iteration = int(saved.group(2))
    assert latest_checkpoint(out) == out / f"checkpoint-{iteration:08d}.json"
    assert str(latest_checkpoint(out)) == saved.group(3)
    assert load_checkpoint(out).iteration == iteration >= 1
    assert not list(out.glob(".*.tmp"))

    caplog.set_level("INFO", logger="bitflip_dtm")
    arguments = ["train", "--device", "cpu", "--backend", BACKEND, "--out", str(out)]
    assert main([*arguments, "--iterations", str(iteration + 2)]) == 0
    assert f"(iteration {iteration})" in caplog.text
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["iterations"] == iteration + 2
    assert load_checkpoint(out).iteration == iteration + 2


def test_second_signal_stops_at_once(tmp_path):
    out = tmp_path / "run"
    # Iterations of seconds (many draws per chain), so the second signal arrives inside one.
    process = _start(out, "--set", "train_samples=100000", "--iterations", "100000")
    _wait_for(process, r"train:\s+\d+%")
    process.send_signal(signal.SIGTERM)
    _wait_for(process, r"SIGTERM received")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == -signal.SIGTERM
    assert latest_checkpoint(out) is None
