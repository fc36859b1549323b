"""A real `xut-flow train` process: the first SIGTERM saves a verified checkpoint at the end of
the step and exits 0 with one line naming it; the same command (without `--preset`: the run
records it) resumes from that step."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time

from xut_flow import cli
from xut_flow.checkpoints import MANIFEST, manifest_problem
from xut_flow.data import save_shard, synthetic_shard

TINY = ["--batch-size", "8", "--warmup-steps", "1", "--log-every", "1",
        "--checkpoint-every", "1000", "--epoch-checkpoint-every", "0", "--noise-source", "jax"]  # fmt: skip


def _logged_steps(path):
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [int(row["global_step"]) for row in csv.DictReader(handle)]


def test_sigterm_saves_a_checkpoint_exits_0_and_the_run_resumes(
    tmp_path, compilation_cache, capsys
):
    shard, out = tmp_path / "shard.npz", tmp_path / "run"
    save_shard(synthetic_shard(40, (4, 8, 8), text_dim=16, seed=1), shard)
    arguments = ["train", "--data", str(shard), "--out", str(out), *TINY]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "xut_flow.cli", *arguments, "--preset", "tiny"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=compilation_cache,
            text=True,
        )
    deadline = time.monotonic() + 300
    while len(_logged_steps(out / "log.csv")) < 2:
        assert process.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        assert time.monotonic() < deadline, "the training process never stepped"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, (tmp_path / "stderr").read_text()[-2000:]
    assert process.stdout.read() == ""  # no summary: the run did not finish
    stderr = (tmp_path / "stderr").read_text()
    saved = re.search(r"stopped by SIGTERM at step (\d+); checkpoint saved to (\S+)", stderr)
    assert saved, stderr[-2000:]
    step = int(saved.group(1))
    assert saved.group(2) == str(out / "checkpoints" / "steps" / str(step))
    assert (out / "checkpoints" / "steps" / str(step) / MANIFEST).is_file()
    assert manifest_problem(out / "checkpoints" / "steps" / str(step)) is None
    assert "Traceback" not in stderr

    # The same command, without --preset, continues from that step to step + 2.
    cli.main([*arguments, "--max-steps", str(step + 2)])
    assert json.loads(capsys.readouterr().out)["global_step"] == step + 2
    assert _logged_steps(out / "log.csv") == list(range(1, step + 3))
