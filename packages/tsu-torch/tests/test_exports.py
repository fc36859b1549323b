"""What the README names, a user can import from the package (issue 25: `TinyThermoLM`)."""

import re
from pathlib import Path

import tsu_core
import tsu_torch

README = Path(__file__).parents[1] / "README.md"


def test_classes_the_readme_names_are_exported():
    names = set(re.findall(r"`([A-Z][A-Za-z]+)`", README.read_text()))
    assert "TinyThermoLM" in names
    missing = [n for n in sorted(names) if not hasattr(tsu_torch, n) and not hasattr(tsu_core, n)]
    assert not missing, f"named in README.md but not importable from tsu_torch: {missing}"
    assert set(tsu_torch.__all__) >= names - set(tsu_core.__all__)


def test_readme_functions_are_exported():
    for name in ("ais_log_partition", "thermal_activation", "info_nce", "denoising_score_matching"):
        assert name in tsu_torch.__all__ and callable(getattr(tsu_torch, name))
