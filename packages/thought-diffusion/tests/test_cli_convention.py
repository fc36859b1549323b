"""The command line follows docs/cli.md (checked by tsu-core's reader of parsers), and a
`--backend` that is not installed is a one-line error."""

import pytest

from thought_diffusion import cli
from tsu_core.cli_convention import deviations

EXPECTED = {
    "train": ["--device", "--backend", "--seed", "--data", "--out", "--max-minutes"],
    "generate": ["--device", "--backend", "--seed", "--checkpoint"],
    "evaluate": ["--device", "--backend", "--checkpoint", "--data"],
    "chat": ["--device", "--backend", "--seed", "--checkpoint"],
}


def test_the_command_line_follows_the_convention():
    assert deviations(cli.build_parser(), EXPECTED) == []


def test_a_backend_not_installed_is_one_line(tmp_path, capsys):
    checkpoint = str(tmp_path / "checkpoint.safetensors")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["evaluate", "--checkpoint", checkpoint, "--backend", "no-such-backend"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("thought-diffusion: error: backend 'no-such-backend' is not installed")
    assert error.count("\n") == 1
