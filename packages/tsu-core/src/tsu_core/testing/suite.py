"""The conformance suite as a pytest module, for `python -m tsu_core.testing --backend NAME`."""

from tsu_core.testing.conformance import BackendConformance


class TestConformance(BackendConformance):
    """Runs every conformance test against the backend chosen by `--tsu-backend`."""
