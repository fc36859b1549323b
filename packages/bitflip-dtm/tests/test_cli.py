"""The CLI: resuming with flags that disagree with the run is an error naming them; `evaluate`
keeps its feature extractor in the run directory and refuses one trained on other data;
`--by-class` needs a model with label bits."""

import json
import os

import pytest
import torch

from bitflip_dtm.checkpoint import load_checkpoint
from bitflip_dtm.cli import main
from bitflip_dtm.extractor import ensure_extractor

BACKEND = os.environ.get("TSU_BACKEND") or "reference"
COMMON = ["--device", "cpu", "--backend", BACKEND]
TINY = ["--preset", "tiny", "--set", "num_steps=2", "--set", "latents_per_patch=2",
        "--set", "fantasy_chains=8", "--set", "batch_size=8", "--set", "steps_per_iteration=2"]  # fmt: skip


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *COMMON, *TINY, "--out", str(out), "--iterations", "2"]) == 0
    return out


def _train(out, *flags):
    return main(["train", *COMMON, "--out", str(out), *flags])


def test_resume_with_conflicting_flags_names_them(run, capsys):
    assert load_checkpoint(run).metadata["preset"] == "tiny"
    capsys.readouterr()
    assert _train(run, "--preset", "mnist28") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "--preset mnist28 (the run has tiny)" in error
    assert _train(run, "--set", "batch_size=4", "--set", "learning_rate=0.05") == 2
    error = capsys.readouterr().err
    assert "batch_size=4 (the run has 8)" in error and "learning_rate" not in error
    assert _train(run, "--preset", "tiny") == 2  # tiny's own num_steps, not the run's 2
    assert "num_steps=4 (the run has 2)" in capsys.readouterr().err
    assert load_checkpoint(run).iteration == 2


def test_resume_with_agreeing_flags_continues(run, capsys):
    assert _train(run, *TINY, "--iterations", "3") == 0  # the command that started it
    assert _train(run, "--iterations", "4", "--set", "checkpoint_every=1") == 0
    assert load_checkpoint(run).iteration == 4
    assert load_checkpoint(run).config.checkpoint_every == 1


def test_evaluate_keeps_its_extractor_in_the_run(run, tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    evaluate = ["evaluate", *COMMON, "--checkpoint", str(run), "--num-samples", "32"]
    capsys.readouterr()
    assert main(evaluate) == 0
    output = capsys.readouterr()
    extractor = run / "classifier-two-patterns-3.safetensors"
    trained = [line for line in output.err.splitlines() if "trained the FID" in line]
    assert len(trained) == 1 and trained[0].endswith(f"saved to {extractor}")
    assert " s (training accuracy" in trained[0]
    assert json.loads(output.out.splitlines()[-1])["what"] == "quality"
    announced = [line for line in output.err.splitlines() if line.startswith("bitflip-dtm: d")]
    assert announced == [f"bitflip-dtm: device cpu, backend {BACKEND}"]
    assert list(elsewhere.iterdir()) == []
    assert main(evaluate) == 0
    assert "trained the FID" not in capsys.readouterr().err

    other = tmp_path / "other.safetensors"
    ensure_extractor(other, torch.rand(32, 1, 3, 3), torch.arange(32) % 2, "noise", epochs=1)
    assert main([*evaluate, "--classifier", str(other)]) == 2
    started, error = capsys.readouterr().err.strip().splitlines()  # found when it is read
    assert started == f"bitflip-dtm: device cpu, backend {BACKEND}"
    assert "trained on 32 noise images" in error and "128 two-patterns images" in error


def test_by_class_is_refused_for_a_model_without_labels(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    sample = ["sample", *COMMON, "--checkpoint", str(run), "--num-samples", "4", "--by-class"]
    assert main([*sample, "--out", str(out)]) == 2
    assert "--by-class: this model has no label bits" in capsys.readouterr().err
    assert not out.exists()
