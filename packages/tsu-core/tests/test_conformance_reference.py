"""The reference backend and the example plugin pass the conformance suite."""

import pytest
from toy_gibbs import ToyGibbsBackend

from tsu_core import get_backend
from tsu_core.testing import BackendConformance


class TestReferenceConformance(BackendConformance):
    @pytest.fixture(scope="class")
    def backend(self):
        return get_backend("reference")


class TestToyGibbsConformance(BackendConformance):
    """An independent sampler (block Gibbs in numpy) passing the same suite."""

    @pytest.fixture(scope="class")
    def backend(self):
        return ToyGibbsBackend()
