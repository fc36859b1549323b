"""The command-line check: a parser that follows docs/cli.md passes, each kind of departure is
reported; the help formatter shows defaults; old spellings store into the new option and warn;
`use_backend` decides what `get_backend()` returns; the checks before long work raise one line;
library logs are quiet unless verbose."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from types import SimpleNamespace

import pytest

from tsu_core import BackendNotFound, get_backend
from tsu_core.cli_convention import (
    CHATTY_LOGGERS,
    DeprecatedSpelling,
    HelpFormatter,
    Unmet,
    announce,
    deviations,
    quiet_libraries,
    require_module,
    require_writable,
    use_backend,
)


def _following() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """A command and its `train` subcommand that follow the convention, with old spellings."""
    parser = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    parser.add_argument(  # the old place, before the subcommand
        "--device", action=DeprecatedSpelling, spelling="--device before the subcommand",
        replacement="demo COMMAND --device",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model", formatter_class=HelpFormatter)
    # No default value, so that the subcommand does not overwrite one given in the old place.
    train.add_argument(
        "--device", default=argparse.SUPPRESS, help="cpu or cuda (default: cuda when present)"
    )
    train.add_argument("--seed", type=int, default=0, help="the seed")
    # Not required=True: argparse would refuse the old spelling, which is another option.
    train.add_argument("--data", help="a data file (required)")
    train.add_argument("--out", default="runs/demo", help="the run directory")
    train.add_argument("--max-minutes", type=float, help="the budget (default: none)")
    train.add_argument("--fresh", action="store_true", help="ignore checkpoints in --out")
    train.add_argument("--set", action="append", default=[], help="FIELD=VALUE, repeatable")
    train.add_argument("--output", dest="out", action=DeprecatedSpelling, replacement="--out")
    train.add_argument(
        "--time-limit",
        dest="max_minutes",
        type=float,
        action=DeprecatedSpelling,
        replacement="--max-minutes",
        convert=lambda seconds: seconds / 60,
    )
    train.add_argument(
        "data_files", nargs="*", action=DeprecatedSpelling, replacement="--data", store_as="data"
    )
    return parser, train


def test_a_parser_that_follows_the_convention_has_no_deviations():
    parser, _ = _following()
    assert deviations(parser, {"train": ["--device", "--seed", "--data", "--out"]}) == []


def test_each_departure_is_reported():
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--backend", default=None, help="the backend (default: TSU_BACKEND)")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train")  # no help line
    train.add_argument("shards", nargs="+", help="shard files")
    train.add_argument("--output", required=True, help="the run directory")
    train.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    train.add_argument("--seed", type=int, default=0, help="the seed")  # plain formatter
    train.add_argument("--steps", type=int)
    found = deviations(parser, {"train": ["--device", "--out"], "sample": []})
    assert found == [
        "demo: subcommand 'train' has no help line in `demo --help`",
        "demo: --backend goes after the subcommand (demo COMMAND --backend ...)",
        "demo train: positional argument 'shards': take it as an option (--data, --out, "
        "--checkpoint, ...), so that every input is named",
        "demo train: --output: use --out",
        "demo train: --max-seconds: use --max-minutes",
        "demo train: --max-seconds: --help shows no default (say what happens without it, or "
        "use tsu_core.cli_convention.HelpFormatter)",
        "demo train: --seed: --help shows no default (say what happens without it, or use "
        "tsu_core.cli_convention.HelpFormatter)",
        "demo train: --steps has no help",
        "demo train: no --device (the convention's name for it)",
        "demo train: no --out (the convention's name for it)",
        "demo: no subcommand 'sample' (expected by the check)",
    ]


def test_a_default_of_none_shown_as_such_is_a_deviation():
    parser = argparse.ArgumentParser(
        prog="demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", help="a data file")
    assert deviations(parser) == [
        "demo: --data: --help shows no default (say what happens without it, or use "
        "tsu_core.cli_convention.HelpFormatter)"
    ]


def test_help_shows_defaults_where_there_are_some():
    _, train = _following()
    text = " ".join(train.format_help().split())
    assert "--seed SEED the seed (default: 0)" in text
    assert "--out OUT the run directory (default: runs/demo)" in text
    assert "--data DATA a data file (required) --out" in text
    assert "ignore checkpoints in --out --set" in text  # a flag: no "(default: False)"
    assert "(default: [])" not in text and "--output" not in text and "--time-limit" not in text
    required = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    required.add_argument("--checkpoint", required=True, help="a checkpoint")
    assert "a checkpoint\n" in required.format_help()  # no "(default: None)"


def test_old_spellings_store_into_the_new_option_and_warn_once(capsys):
    parser, _ = _following()
    arguments = parser.parse_args(["train", "--data", "d", "--output", "o", "--time-limit", "90"])
    assert (arguments.out, arguments.max_minutes) == ("o", 1.5)
    assert capsys.readouterr().err.splitlines() == [
        "demo train: warning: --output is deprecated; use --out",
        "demo train: warning: --time-limit is deprecated; use --max-minutes "
        "(--time-limit 90 is --max-minutes 1.5)",
    ]
    arguments = parser.parse_args(["train", "a.npz", "b.npz"])
    assert arguments.data == ["a.npz", "b.npz"]
    assert capsys.readouterr().err == (
        "demo train: warning: DATA_FILES as a positional argument is deprecated; use --data\n"
    )
    arguments = parser.parse_args(["--device", "cuda", "train", "--data", "d"])
    assert arguments.device == "cuda"
    assert capsys.readouterr().err == (
        "demo: warning: --device before the subcommand is deprecated; use demo COMMAND --device\n"
    )
    arguments = parser.parse_args(["train", "--data", "d"])
    assert (arguments.out, arguments.max_minutes, arguments.data) == ("runs/demo", None, "d")
    assert not hasattr(arguments, "device")
    assert capsys.readouterr().err == ""


def test_use_backend_decides_what_get_backend_returns(monkeypatch):
    monkeypatch.setenv("TSU_BACKEND", "not-installed")  # put back after the test
    use_backend("reference")
    assert get_backend() is get_backend("reference")
    with pytest.raises(BackendNotFound, match="'no-such-backend' is not installed"):
        use_backend("no-such-backend")
    use_backend(None)
    assert os.environ["TSU_BACKEND"] == "reference"


def test_require_module_names_the_extra_and_the_command(monkeypatch):
    require_module("json", package="demo", extra="text", needed_by="demo prepare")  # importable
    monkeypatch.setitem(sys.modules, "json", None)  # what an uninstalled module looks like
    with pytest.raises(Unmet) as unmet:
        require_module(
            "json", package="demo", extra="text", needed_by="demo prepare", instead="pass --x"
        )
    message = str(unmet.value)
    assert message.startswith("demo prepare needs the [text] extra: pip install 'demo[text]'; ")
    assert "or pass --x" in message and "\n" not in message


def test_require_writable_creates_the_directory_or_says_why_not(tmp_path):
    assert require_writable(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    assert require_writable(tmp_path / "c" / "grid.png", "--out", directory=False).is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Unmet, match=r"^--out .*file/run: cannot create .*; choose another --out"):
        require_writable(blocker / "run", "--out")


def test_quiet_libraries_and_verbose(monkeypatch):
    for name in CHATTY_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    quiet_libraries()
    assert not logging.getLogger("jax._src.xla_bridge").isEnabledFor(logging.INFO)
    assert logging.getLogger("absl").isEnabledFor(logging.WARNING)
    quiet_libraries(verbose=True)
    assert logging.getLogger("orbax.checkpoint").isEnabledFor(logging.INFO)


def test_announce_is_one_line(capsys):
    announce("demo", "cuda:0", "jax-sim")
    announce("demo", "cpu")
    assert capsys.readouterr().err == "demo: device cuda:0, backend jax-sim\ndemo: device cpu\n"


def test_require_memory_refuses_in_one_line_with_the_estimate_and_the_fix():
    from tsu_core.cli_convention import IGNORE_MEMORY_FLAG, require_memory

    require_memory(2**30, 2**31, what="x train", where="cpu", fix="use --preset tiny")
    require_memory(2**40, None, what="x train", where="cpu", fix="use --preset tiny")
    with pytest.raises(Unmet) as refused:
        require_memory(3 * 2**30, 512 * 2**20, what="x train", where="cuda:0", fix="use --small")
    message = str(refused.value)
    assert "\n" not in message
    assert "3.0 GiB" in message and "cuda:0 has 512 MiB available" in message
    assert "use --small" in message and IGNORE_MEMORY_FLAG in message


def test_available_host_memory_is_a_plausible_size():
    from tsu_core.cli_convention import available_host_memory

    available = available_host_memory()
    assert available is not None and 2**24 < available < 2**50


def test_available_memory_asks_the_device_its_framework_knows(monkeypatch):
    """The host for a CPU or no device; a JAX device's allocator; torch's free memory on CUDA."""
    from tsu_core import cli_convention

    monkeypatch.setattr(cli_convention, "available_host_memory", lambda: 7 * 2**30)
    assert cli_convention.available_memory(None) == 7 * 2**30
    assert cli_convention.available_memory(SimpleNamespace(platform="cpu", id=0)) == 7 * 2**30
    assert cli_convention.available_memory(SimpleNamespace(type="cpu", index=None)) == 7 * 2**30

    def gpu(statistics):
        return SimpleNamespace(platform="gpu", id=0, memory_stats=lambda: statistics)

    assert cli_convention.available_memory(gpu({"bytes_limit": 80, "bytes_in_use": 30})) == 50
    assert cli_convention.available_memory(gpu(None)) is None  # the device does not tell
    assert cli_convention.available_memory(SimpleNamespace(type="mps", index=0)) is None
