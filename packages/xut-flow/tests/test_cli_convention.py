"""The command line follows docs/cli.md (checked by tsu-core's reader of parsers); the
spellings it replaced still parse, each with one warning line, and a missing needed option is a
usage error."""

import pytest

from tsu_core.cli_convention import deviations
from xut_flow.cli import build_parser, parse_arguments

EXPECTED = {
    "prepare": ["--device", "--seed", "--data", "--out"],
    "train": ["--device", "--backend", "--seed", "--data", "--out", "--max-minutes"],
    "sample": [
        "--device", "--backend", "--seed", "--checkpoint", "--data", "--out", "--num-samples"
    ],
}  # fmt: skip


def test_the_command_line_follows_the_convention():
    assert deviations(build_parser(), EXPECTED) == []


def test_old_spellings_still_parse_with_a_warning(capsys):
    options = parse_arguments(["train", "a.npz", "b.npz", "--output", "run", "--max-seconds", "90"])
    assert (options.data, options.out, options.max_minutes) == (["a.npz", "b.npz"], "run", 1.5)
    assert capsys.readouterr().err.splitlines() == [
        "xut-flow train: warning: SHARDS as a positional argument is deprecated; use --data",
        "xut-flow train: warning: --output is deprecated; use --out",
        "xut-flow train: warning: --max-seconds is deprecated; use --max-minutes "
        "(--max-seconds 90 is --max-minutes 1.5)",
    ]
    options = parse_arguments(["sample", "run", "--shard", "s.npz", "--count", "4"])
    assert (options.checkpoint, options.data, options.num_samples) == ("run", "s.npz", 4)
    assert len(capsys.readouterr().err.splitlines()) == 3
    options = parse_arguments(["prepare", "digits", "out/digits"])
    assert (options.data, options.out) == ("digits", "out/digits")
    assert "OUTPUT as a positional argument is deprecated; use --out" in capsys.readouterr().err


def test_the_new_spellings_parse_quietly(capsys):
    options = parse_arguments(
        ["train", "--data", "a.npz", "--out", "run", "--max-minutes", "2", "--device", "cpu"]
    )
    assert (options.data, options.out, options.max_minutes, options.device) == (
        ["a.npz"], "run", 2.0, "cpu"
    )  # fmt: skip
    assert capsys.readouterr().err == ""


def test_a_missing_needed_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(["train", "--data", "a.npz"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "xut-flow: error: train needs --out"
