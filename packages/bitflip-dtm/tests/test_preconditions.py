"""Each command checks what it needs before its long work: a missing data set, extra or
writable output is one line on stderr and status 2, and no training or sampling starts."""

from __future__ import annotations

import sys

import pytest

from bitflip_dtm import cli

COMMON = ["--device", "cpu", "--backend", "reference"]


@pytest.fixture(autouse=True)
def no_long_work(monkeypatch):
    """Loading the data set, building a trainer or sampling fails the test: the checks come
    first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the long work started before the checks")

    for name in ("load_dataset", "Trainer", "sample", "load_model"):
        monkeypatch.setattr(cli, name, refuse)


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("bitflip-dtm: error: "), error
    return error


def test_train_on_a_missing_data_folder(tmp_path, capsys):
    missing = tmp_path / "mnist"
    argv = ["train", *COMMON, "--data", str(missing), "--out", str(tmp_path / "run")]
    assert f"data_path: {missing} does not exist; pass --data DIR" in _error(capsys, argv)
    missing.mkdir()
    assert f"no t10k-images-idx3-ubyte(.gz) in {missing}" in _error(capsys, argv)


def test_train_on_digits_without_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    argv = ["train", *COMMON, "--preset", "tiny", "--set", "dataset=digits",
            "--set", "image_size=8", "--out", str(tmp_path / "run")]  # fmt: skip
    error = _error(capsys, argv)
    assert (
        "the digits data set needs the [digits] extra: pip install 'bitflip-dtm[digits]'" in error
    )


def test_outputs_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    error = _error(capsys, ["train", *COMMON, "--preset", "tiny", "--out", str(blocker / "run")])
    assert f"--out {blocker / 'run'}: cannot create" in error
    argv = ["sample", *COMMON, "--checkpoint", "run", "--out", str(blocker / "grid.png")]
    assert f"--out {blocker / 'grid.png'}: cannot create {blocker}" in _error(capsys, argv)


def test_evaluate_with_inception_weights_without_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    argv = ["evaluate", *COMMON, "--checkpoint", "run", "--inception-weights", "weights.pth"]
    assert "needs the [fid] extra: pip install 'bitflip-dtm[fid]'" in _error(capsys, argv)


def test_train_larger_than_the_free_memory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "available_memory", lambda device: 64 * 2**20)
    argv = ["train", *COMMON, "--preset", "rgb64", "--set", "dataset=two-patterns",
            "--out", str(tmp_path / "run")]  # fmt: skip
    error = _error(capsys, argv)
    assert "bitflip-dtm train (preset rgb64: 128 images of 3x64x64, 100 steps" in error
    assert "of memory (an estimate) and cpu has 64 MiB available" in error
    assert "--ignore-memory-check to start anyway" in error
    with pytest.raises(AssertionError, match="the long work started"):  # the check skipped
        cli.main([*argv, "--ignore-memory-check"])
