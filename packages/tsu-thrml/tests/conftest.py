"""Shared fixtures: one backend (and so one cache of compiled topologies) for every test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import tsu_core  # noqa: E402


@pytest.fixture(scope="session")
def backend():
    return tsu_core.get_backend("thrml")
