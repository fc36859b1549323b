"""Holding a memory estimate against a measured run: the test each package writes for the
function that estimates its commands' peak memory (`training_memory`, `prepare_memory`).

The work runs in a fresh Python process, so that nothing the test process already holds (other
tests' arrays, compiled programs) hides its peak. Linux only: it reads `/proc/self/statm`, and
`ru_maxrss` is in KiB there. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import sys

ON_LINUX = sys.platform.startswith("linux")

_START = """
import resource as _resource
from pathlib import Path as _Path
_before = int(_Path("/proc/self/statm").read_text().split()[1]) * 4096
"""
_END = """
_peak = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss * 1024
print(int({estimate}), _peak - _before)
"""


def measure_peak(
    setup: str, work: str, estimate: str, environment: dict[str, str] | None = None
) -> tuple[int, int]:
    """Run `setup`, then `work`, in a fresh Python process (one thread for OpenMP unless
    `environment` says otherwise).

    Arguments:
        setup: source run first (imports, data); what it holds is not counted.
        work: source whose peak is measured.
        estimate: an expression, evaluated after `work`, giving the estimate in bytes.
        environment: variables added to this process's environment.

    Returns:
        (the estimate, how far the peak resident memory rose above what the process held after
        `setup`), both in bytes.

    Raises:
        AssertionError: the process failed (with the end of its stderr).
    """
    script = "\n".join([setup, _START, work, _END.format(estimate=estimate)])
    variables = {**os.environ, "OMP_NUM_THREADS": "1", **(environment or {})}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=variables
    )
    if done.returncode:
        raise AssertionError(f"the measured run failed:\n{done.stderr[-3000:]}")
    estimate_bytes, measured = map(int, done.stdout.split()[-2:])
    return estimate_bytes, measured


def check_estimate(
    estimate: int, measured: int, *, factor: float, slack: int, least: int = 512 * 2**20
) -> None:
    """Assert that a measured peak is at least the estimate and at most `factor` times it plus
    `slack` bytes (the runtime's own memory, which estimates leave out), and that the estimate
    is above `least` bytes, well over the noise of a process's resident size."""
    assert estimate > least, (estimate, least)
    assert estimate <= measured <= factor * estimate + slack, (estimate, measured)
