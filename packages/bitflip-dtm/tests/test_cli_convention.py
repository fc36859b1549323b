"""The command line follows docs/cli.md (checked by tsu-core's reader of parsers), and the
spellings it replaced still work, each with one warning line."""

from bitflip_dtm.cli import build_parser, parse_arguments
from tsu_core.cli_convention import deviations

EXPECTED = {
    "train": ["--device", "--backend", "--seed", "--data", "--out", "--max-minutes"],
    "sample": ["--device", "--backend", "--seed", "--checkpoint", "--out", "--num-samples"],
    "evaluate": ["--device", "--backend", "--seed", "--checkpoint", "--data", "--num-samples"],
}


def test_the_command_line_follows_the_convention():
    assert deviations(build_parser(), EXPECTED) == []


def test_device_and_backend_follow_the_subcommand(capsys):
    arguments = parse_arguments(["train", "--device", "cpu", "--backend", "reference"])
    assert (arguments.device, arguments.backend, arguments.max_minutes) == (
        "cpu",
        "reference",
        None,
    )
    assert capsys.readouterr().err == ""


def test_old_spellings_still_work_with_a_warning(capsys):
    old = ["--device", "cpu", "--backend", "reference", "train", "--time-limit", "90"]
    arguments = parse_arguments(old)
    assert (arguments.device, arguments.backend, arguments.max_minutes) == ("cpu", "reference", 1.5)
    assert capsys.readouterr().err.splitlines() == [
        "bitflip-dtm: warning: --device before the subcommand is deprecated; use bitflip-dtm "
        "COMMAND --device",
        "bitflip-dtm: warning: --backend before the subcommand is deprecated; use bitflip-dtm "
        "COMMAND --backend",
        "bitflip-dtm train: warning: --time-limit is deprecated; use --max-minutes "
        "(--time-limit 90 is --max-minutes 1.5)",
    ]
    arguments = parse_arguments(["sample", "--checkpoint", "run", "--num", "8"])
    assert arguments.num_samples == 8
    assert "--num is deprecated; use --num-samples" in capsys.readouterr().err
