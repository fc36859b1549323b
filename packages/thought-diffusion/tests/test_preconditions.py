"""Each command checks what it needs before its long work: a missing extra, data file or
writable output is one line on stderr and status 2, and no training or model building starts."""

from __future__ import annotations

import sys

import pytest

from thought_diffusion import checkpoint, cli


@pytest.fixture(autouse=True)
def no_long_work(monkeypatch):
    """Reading the text, training or building a model fails the test: the checks come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the long work started before the checks")

    for name in ("read_text", "train_model", "build_tokenizer"):
        monkeypatch.setattr(cli, name, refuse)
    monkeypatch.setattr(checkpoint.Checkpoint, "model", refuse)


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("thought-diffusion: error: "), error
    return error


def test_train_on_a_missing_file_or_into_a_file(tmp_path, capsys):
    missing = tmp_path / "text.txt"
    error = _error(capsys, ["train", "--data", str(missing), "--out", str(tmp_path / "run")])
    assert error == f"thought-diffusion: error: --data {missing}: no such file\n"
    missing.write_text("some text")
    error = _error(capsys, ["train", "--data", str(missing), "--out", str(missing / "run")])
    assert f"--out {missing / 'run'}: cannot create" in error


def test_bpe_without_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    data = tmp_path / "text.txt"
    data.write_text("some text")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--tokenizer", "bpe"]
    error = _error(capsys, argv)
    assert (
        "train --tokenizer bpe needs the [bpe] extra: pip install 'thought-diffusion[bpe]'" in error
    )


def test_generate_from_a_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "checkpoint.safetensors"
    error = _error(capsys, ["generate", "--checkpoint", str(missing), "--prompt", "the"])
    assert error == f"thought-diffusion: error: --checkpoint {missing}: no such file\n"
