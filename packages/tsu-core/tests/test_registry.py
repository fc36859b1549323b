"""Backends are found through the `tsu.backends` entry-point group, as a vendor's would be."""

import sys
from pathlib import Path

import pytest

from tsu_core import (
    PROTOCOL_VERSION,
    BackendNotFound,
    IncompatibleBackend,
    available_backends,
    get_backend,
    incompatible_backends,
    registry,
)
from tsu_core.protocol import parse_protocol_version


def _install(directory: Path, module: str, metadata_version: str | None, code_version: str):
    """Install the example plugin the way pip would: a module plus a dist-info directory with
    an entry_points.txt, on sys.path; its metadata and its code declare the given versions."""
    source = (Path(__file__).parent / "example_plugin" / "toy_gibbs.py").read_text()
    declaration = 'protocol_version = "1.0"'
    assert declaration in source
    source = source.replace(declaration, f"protocol_version = {code_version!r}")
    (directory / f"{module}.py").write_text(source)
    info = directory / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1.0\n")
    protocol = (
        "" if metadata_version is None else f"[tsu.protocol]\ntoy-gibbs = {metadata_version}\n"
    )
    (info / "entry_points.txt").write_text(
        f"[tsu.backends]\ntoy-gibbs = {module}:ToyGibbsBackend\n\n{protocol}"
    )


@pytest.fixture
def plugin_directory(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_instances", {})
    yield tmp_path
    for module in [name for name in sys.modules if name.startswith("toy_tsu_plugin")]:
        sys.modules.pop(module)


@pytest.fixture
def installed_plugin(plugin_directory):
    _install(plugin_directory, "toy_tsu_plugin", "1.0", "1.0")


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


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (None, "declares no protocol version"),
        ("2.0", "implements protocol 2.0; this tsu-core speaks 1.0"),
        ("0.9", "implements protocol 0.9"),
        ("one", "malformed"),
    ],
)
def test_incompatible_plugin_is_listed_not_imported(plugin_directory, declared, reason):
    """A plugin for another major version, or one that declares none, is read from its
    metadata only: listed with the reason, refused by name, never imported."""
    _install(plugin_directory, "toy_tsu_plugin_old", declared, "1.0")
    assert "toy-gibbs" not in available_backends()
    assert reason in incompatible_backends()["toy-gibbs"]
    with pytest.raises(
        IncompatibleBackend, match=f"'toy-gibbs' is installed but not loaded.*{reason}"
    ):
        get_backend("toy-gibbs")
    with pytest.raises(BackendNotFound, match=f"not loaded: toy-gibbs .*{reason}"):
        get_backend("nope-z")
    assert "toy_tsu_plugin_old" not in sys.modules


def test_same_major_version_is_compatible(plugin_directory):
    major = parse_protocol_version(PROTOCOL_VERSION)[0]
    _install(plugin_directory, "toy_tsu_plugin_minor", f"{major}.7", f"{major}.7")
    assert "toy-gibbs" in available_backends() and not incompatible_backends()
    assert get_backend("toy-gibbs").protocol_version == f"{major}.7"


@pytest.mark.parametrize(("code_version", "reason"), [("2.0", "in code but 1.0"), (None, "no")])
def test_code_must_match_metadata(plugin_directory, code_version, reason):
    _install(plugin_directory, "toy_tsu_plugin_liar", "1.0", code_version)
    with pytest.raises(IncompatibleBackend, match=reason):
        get_backend("toy-gibbs")


def test_in_repository_backends_declare_this_version():
    versions = registry.declared_versions()
    for name in available_backends():
        assert versions.get(name) == PROTOCOL_VERSION, name
        assert get_backend(name).protocol_version == PROTOCOL_VERSION
