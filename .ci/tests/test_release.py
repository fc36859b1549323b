"""`.ci/release.py` on a scratch repository: a release moves the changelog and tags, and the
check catches code changed since a release without a changelog entry."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("release", Path(__file__).parents[1] / "release.py")
release = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(release)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    package = tmp_path / "packages" / "demo"
    (package / "src" / "demo").mkdir(parents=True)
    (package / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1.0"\n')
    (package / "src" / "demo" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (package / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n- First cut.\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "ci@example.org")
    git(tmp_path, "config", "user.name", "CI")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "demo")
    return tmp_path


def test_cut_bumps_both_versions_moves_the_changelog_and_tags(repo: Path) -> None:
    assert release.cut(repo, "demo", "0.2.0") == "demo-v0.2.0"
    package = repo / "packages" / "demo"
    assert 'version = "0.2.0"' in (package / "pyproject.toml").read_text()
    assert '__version__ = "0.2.0"' in (package / "src" / "demo" / "__init__.py").read_text()
    changelog = (package / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n\n## Unreleased\n\n## 0.2.0 (")
    assert changelog.rstrip().endswith("- First cut.")
    assert release.unreleased(changelog) == ""
    assert git(repo, "tag", "--list") == "demo-v0.2.0"
    assert git(repo, "log", "-1", "--format=%s") == "demo 0.2.0"
    assert git(repo, "status", "--porcelain") == ""


def test_check_wants_an_entry_for_code_changed_since_the_release(repo: Path) -> None:
    assert release.check(repo) == []  # never released: nothing to log against
    release.cut(repo, "demo", "0.2.0")
    assert release.check(repo) == []
    module = repo / "packages" / "demo" / "src" / "demo" / "core.py"
    module.write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "code")
    (problem,) = release.check(repo)
    assert problem.startswith("demo: 1 file(s) changed since demo-v0.2.0")
    changelog = repo / "packages" / "demo" / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## Unreleased\n", "## Unreleased\n\n- x.\n")
    )
    assert release.check(repo) == []
    assert release.main(["--root", str(repo), "check"]) == 0


def test_check_catches_disagreeing_versions(repo: Path) -> None:
    init = repo / "packages" / "demo" / "src" / "demo" / "__init__.py"
    init.write_text('__version__ = "0.1.1"\n')
    assert release.check(repo) == ["demo: pyproject says 0.1.0, __version__ says 0.1.1"]


@pytest.mark.parametrize(
    ("change", "version", "message"),
    [
        (None, "0.1.0", "is not above the current version 0.1.0"),
        (None, "1.0", "is not a version"),
        ("empty", "0.2.0", "nothing under '## Unreleased'"),
        ("dirty", "0.2.0", "uncommitted changes"),
    ],
)
def test_cut_refuses(repo: Path, change: str | None, version: str, message: str) -> None:
    changelog = repo / "packages" / "demo" / "CHANGELOG.md"
    if change == "empty":
        changelog.write_text("# Changelog\n\n## Unreleased\n\n## 0.1.0\n\n- Old.\n")
        git(repo, "commit", "-q", "-am", "empty")
    if change == "dirty":
        (repo / "notes.txt").write_text("wip\n")
    with pytest.raises(SystemExit, match=message):
        release.cut(repo, "demo", version)
    assert git(repo, "tag", "--list") == ""
