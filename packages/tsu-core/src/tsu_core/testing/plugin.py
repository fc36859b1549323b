"""pytest plugin: `--tsu-backend NAME` gives the conformance suite its `backend` fixture, and
the run ends with the protocol version it certified for that backend."""

from __future__ import annotations

import pytest

from tsu_core.protocol import PROTOCOL_VERSION

_checked: dict[str, object] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tsu-backend",
        default=None,
        help="name of the installed backend to check (default: TSU_BACKEND, else the best one)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"tsu-core conformance suite for backend protocol {PROTOCOL_VERSION}"


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest):
    from tsu_core.registry import get_backend

    chosen = get_backend(request.config.getoption("--tsu-backend"))
    _checked["name"] = chosen.name
    _checked["declared"] = getattr(chosen, "protocol_version", None)
    return chosen


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from tsu_core.testing.conformance import certification

    if "name" not in _checked:
        return
    stats = terminalreporter.stats
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    line = certification(
        str(_checked["name"]),
        _checked["declared"],
        len(stats.get("passed", [])),
        failed,
        len(stats.get("skipped", [])),
        len(stats.get("deselected", [])),
    )
    terminalreporter.write_line(line, bold=True, green=not failed, red=bool(failed))
