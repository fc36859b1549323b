"""Run the conformance suite against an installed backend.

python -m tsu_core.testing --backend NAME [extra pytest arguments]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tsu_core.testing",
        description="Check a TSU backend against exact answers (the tsu-core conformance suite).",
    )
    parser.add_argument(
        "--backend", default=None, help="backend name (default: TSU_BACKEND or the best installed)"
    )
    known, extra = parser.parse_known_args(argv)
    suite = Path(__file__).with_name("suite.py")
    arguments = [str(suite), "-p", "tsu_core.testing.plugin", "-rs", "-q"]
    if known.backend:
        arguments += ["--tsu-backend", known.backend]
    return int(pytest.main(arguments + extra))


if __name__ == "__main__":
    sys.exit(main())
