"""The tsu-core conformance suite against the thrml backend, found by name through its entry
point (as `python -m tsu_core.testing --backend thrml` does)."""

from __future__ import annotations

import pytest

import tsu_core
from tsu_core.testing import BackendConformance


class TestThrmlConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls):
        return tsu_core.get_backend("thrml")
