"""`python -m tsu_core.testing` ends with the protocol version it certified."""

import subprocess
import sys

from tsu_core import PROTOCOL_VERSION
from tsu_core.testing import BackendConformance, certification


def test_certification_needs_a_whole_passing_run():
    assert certification("chip", "1.0", 70, 0, 3).startswith(
        f"certified: backend 'chip' implements tsu-core protocol {PROTOCOL_VERSION}"
    )
    assert certification("chip", "1.0", 69, 1, 3).startswith("NOT certified")
    assert certification("chip", "1.0", 0, 0, 73).startswith("NOT certified")
    assert certification("chip", "1.0", 10, 0, 0, deselected=63).startswith("partial run")
    assert BackendConformance.protocol_version == PROTOCOL_VERSION


def test_command_reports_the_protocol_version():
    run = subprocess.run(
        [sys.executable, "-m", "tsu_core.testing", "--backend", "reference", "-k", "protocol"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"protocol {PROTOCOL_VERSION}" in run.stdout
    assert "partial run" in run.stdout and "backend 'reference'" in run.stdout
