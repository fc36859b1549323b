"""The command line end to end on a tiny run: train, generate, evaluate, chat."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

import tsu_core
from thought_diffusion import cli
from thought_diffusion.checkpoint import load_checkpoint
from thought_diffusion.data import generated_text
from thought_diffusion.generate import draw


def test_train_generate_evaluate_chat(tmp_path, monkeypatch, capsys):
    data = tmp_path / "text.txt"
    data.write_text(generated_text(200))
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2"]
    cli.main(
        ["train", *common, "--turn-length", "16", "--eval-batches", "1", "--precision", "fp32"]
    )
    output = capsys.readouterr()
    summary = json.loads(output.out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["thought_parameters"] > 0
    announced = [line for line in output.err.splitlines() if line.startswith("thought-diffusion")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert announced == [f"thought-diffusion: device {device}"]  # training draws no samples
    checkpoint = str(out / "checkpoint.safetensors")

    cli.main(["generate", "--checkpoint", checkpoint, "--prompt", "the king", "--length", "8"])
    assert capsys.readouterr().out.startswith("the king")

    cli.main(["evaluate", "--checkpoint", checkpoint, "--data", str(data), "--batches", "1"])
    result = json.loads(capsys.readouterr().out)
    assert result["use_thoughts"] and 0 <= result["recall_accuracy"] <= 1
    cli.main(["evaluate", "--checkpoint", checkpoint, "--batches", "1"])  # the run's own data
    assert json.loads(capsys.readouterr().out) == result

    stack = tmp_path / "stack.safetensors"
    script = f"hello\n\n/save {stack}\n/reset\n/load {stack}\n/stack\nagain\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    cli.main(["chat", "--checkpoint", checkpoint, "--length", "6"])
    transcript = capsys.readouterr().out
    assert "(empty message" in transcript
    assert f"(thought stack loaded from {stack}: 1 thoughts)" in transcript
    assert transcript.count("model>") == 2

    # Without --length each turn, message and answer, is as long as a training turn (16).
    lengths = []
    generate = cli.generate
    monkeypatch.setattr(
        cli, "generate", lambda *a, **k: lengths.append(a[2].length) or generate(*a, **k)
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n" + "x" * 15 + "\n/quit\n"))
    cli.main(["chat", "--checkpoint", checkpoint])
    transcript = capsys.readouterr().out
    assert lengths == [16 - len("hello\n")]
    assert "(error: the message is 16 tokens; this model's turns are 16" in transcript

    with pytest.raises(SystemExit) as stopped:
        cli.main(["generate", "--checkpoint", checkpoint, "--prompt", "", "--length", "8"])
    assert stopped.value.code == 2
    started, error = capsys.readouterr().err.splitlines()  # where it runs, then one error line
    assert started == f"thought-diffusion: device {device}, backend {tsu_core.get_backend().name}"
    assert error.startswith("thought-diffusion: error: ") and "prompt: it is empty" in error


def test_draws_go_through_the_backend_primitive(monkeypatch):
    calls = []
    backend = tsu_core.get_backend()

    class Recording:
        def categorical(self, logits, *, key, beta):
            calls.append((tuple(logits.shape), key, beta))
            return backend.categorical(logits, key=key, beta=beta)

    monkeypatch.setattr(tsu_core, "get_backend", lambda: Recording())
    draw(torch.zeros(3, 5), tsu_core.Key(2), 0.5, None)
    assert calls == [((3, 5), tsu_core.Key(2), 2.0)]


@pytest.mark.parametrize("kind", [["--context", "all", "--no-thoughts"], []])
def test_train_on_the_fact_recall_mixture_logs_recall(tmp_path, capsys, kind):
    data = tmp_path / "text.txt"
    data.write_text(generated_text(2000))
    out = tmp_path / "run"
    arguments = ["train", "--data", str(data), "--out", str(out), "--steps", "2"]
    arguments += ["--batch-size", "2", "--turn-length", "48", "--num-turns", "3"]
    arguments += ["--memory-probability", "0.5", "--memory-facts", "1,2", "--eval-interval", "2"]
    cli.main([*arguments, "--eval-batches", "1", "--precision", "fp32", *kind])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2
    model, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert extra["train_config"].memory_facts == (1, 2)
    assert model.config.max_length == (144 if kind else 64)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert 0.0 <= float(rows[-1]["recall"]) <= 1.0


def test_resuming_with_conflicting_flags_is_an_error_naming_them(tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text(generated_text(200))
    out = tmp_path / "run"
    start = ["train", "--data", str(data), "--out", str(out), "--batch-size", "2",
             "--turn-length", "16", "--eval-batches", "1", "--precision", "fp32"]  # fmt: skip
    cli.main([*start, "--steps", "1", "--learning-rate", "0.001"])
    capsys.readouterr()

    conflicting = ["--learning-rate", "0.002", "--seed", "3", "--preset", "small", "--no-thoughts"]
    with pytest.raises(SystemExit) as stopped:
        cli.main([*start, "--steps", "2", *conflicting])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "flags conflict with the run being resumed (step 1)" in message
    for expected in [
        "--preset small (the run has tiny)",
        "--learning-rate 0.002 (the run has --learning-rate 0.001)",
        "--seed 3 (the run has --seed 0)",
        "--no-thoughts (the run has thoughts)",
    ]:
        assert expected in message
    assert "--batch-size" not in message and "--steps" not in message
    assert load_checkpoint(out / "checkpoint.safetensors")[1]["step"] == 1

    # The starting command with a larger budget resumes; so does the directory alone.
    cli.main([*start, "--steps", "2", "--learning-rate", "0.001", "--eval-interval", "5"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 2
    cli.main(["train", "--out", str(out), "--steps", "3"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 3
    _, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert extra["train_config"].learning_rate == 0.001 and extra["train_config"].batch_size == 2
    assert extra["run"] == {"preset": "tiny", "tokenizer": "byte", "data": str(data)}


def test_a_new_run_without_data_stops_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", "--out", str(tmp_path / "run"), "--steps", "1"])
    assert stopped.value.code == 2
    expected = "a new run needs --data PATH: a UTF-8 text file to train on"
    assert capsys.readouterr().err == f"thought-diffusion: error: {expected}\n"
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_train_refuses_a_run_larger_than_the_free_memory(tmp_path, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(cli, "train_model", lambda *args, **kwargs: started.append(1) or 1 / 0)
    monkeypatch.setattr(cli, "available_memory", lambda device: 64 * 2**20)
    text = tmp_path / "text.txt"
    text.write_text(generated_text(50))
    argv = ["train", "--data", str(text), "--out", str(tmp_path / "run"), "--device", "cpu"]
    argv += ["--batch-size", "64", "--turn-length", "64"]
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("thought-diffusion: error: "), error
    assert "cpu has 64 MiB available" in error and "--batch-size" in error
    assert "--ignore-memory-check" in error and not started
    with pytest.raises(ZeroDivisionError):  # the check skipped: training starts
        cli.main([*argv, "--ignore-memory-check"])
    assert started
