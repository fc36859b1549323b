"""The whole tsu-core conformance suite on jax-sim and its sampler variants."""

import pytest

import tsu_core
from tsu_core.testing import BackendConformance


class TestJaxSim(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls):
        return tsu_core.get_backend("jax-sim")
