"""Backends are found through the `tsu.backends` entry-point group, as a vendor's would be."""

import sys
import textwrap
from pathlib import Path

import pytest

from tsu_core import BackendNotFound, available_backends, get_backend, registry


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install the example plugin the way pip would: a module plus a dist-info directory with
    an entry_points.txt, on sys.path."""
    source = Path(__file__).parent / "example_plugin" / "toy_gibbs.py"
    (tmp_path / "toy_tsu_plugin.py").write_text(source.read_text())
    info = tmp_path / "toy_tsu_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-tsu-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [tsu.backends]
            toy-gibbs = toy_tsu_plugin:ToyGibbsBackend
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_instances", {})
    yield
    sys.modules.pop("toy_tsu_plugin", None)


def test_plugin_is_found_by_name_and_by_environment(installed_plugin, monkeypatch):
    assert "toy-gibbs" in available_backends()
    backend = get_backend("toy-gibbs")
    assert backend.name == "toy-gibbs" and type(backend).__module__ == "toy_tsu_plugin"
    monkeypatch.setenv("TSU_BACKEND", "toy-gibbs")
    assert get_backend() is backend


def test_reference_is_always_available():
    assert "reference" in available_backends()
    assert get_backend("reference").capabilities.exact


def test_unknown_backend_explains(monkeypatch):
    if "thrml" not in available_backends():  # a known backend: the message names its package
        with pytest.raises(BackendNotFound, match="pip install tsu-thrml"):
            get_backend("thrml")
    with pytest.raises(BackendNotFound, match="'nope-x' is not installed") as caught:
        get_backend("nope-x")
    assert "Installed: " in str(caught.value) and "reference" in str(caught.value)
    monkeypatch.setenv("TSU_BACKEND", "nope-y")
    with pytest.raises(BackendNotFound, match="TSU_BACKEND"):
        get_backend()
