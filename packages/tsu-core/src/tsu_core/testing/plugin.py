"""pytest plugin: `--tsu-backend NAME` gives the conformance suite its `backend` fixture."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tsu-backend",
        default=None,
        help="name of the installed backend to check (default: TSU_BACKEND, else the best one)",
    )


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest):
    from tsu_core.registry import get_backend

    return get_backend(request.config.getoption("--tsu-backend"))
