"""Release one package, and check that every change since a package's last release is logged.

    python .ci/release.py cut tsu-core 0.2.0 [--dry-run]
    python .ci/release.py check

`cut` sets the package's version (pyproject.toml and `__version__`), moves its CHANGELOG's
"## Unreleased" section under "## <version> (<date>)" below a new empty "## Unreleased",
commits those three files as "<package> <version>" and tags the commit `<package>-v<version>`.
It refuses a dirty working tree, a version not above the current one, and an empty Unreleased
section. Publishing the wheel (`nox -s build`, then `twine upload dist/<package>/*`) and pushing
the tag stay manual steps.

`check` fails when a package's code (src/ or pyproject.toml) changed since its latest tag
without an entry under "## Unreleased", or when its pyproject version and `__version__` differ.
A package without a tag has never been released and needs no entry. Standard library and git
only; `--root` points both commands at another checkout (the tests use a scratch repository).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from pathlib import Path

UNRELEASED = "## Unreleased"
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def _version_key(version: str) -> tuple[int, ...]:
    match = VERSION.match(version)
    if match is None:
        raise SystemExit(f"{version!r} is not a version of the form MAJOR.MINOR.PATCH")
    return tuple(int(part) for part in match.groups())


def _files(root: Path, package: str) -> tuple[Path, Path, Path]:
    """The package's pyproject.toml, CHANGELOG.md and the `__init__.py` holding __version__."""
    folder = root / "packages" / package
    if not (folder / "pyproject.toml").exists():
        raise SystemExit(f"no package {package!r} under {root / 'packages'}")
    inits = [p for p in (folder / "src").glob("*/__init__.py") if "__version__" in p.read_text()]
    if len(inits) != 1:
        raise SystemExit(f"{package}: expected one src/*/__init__.py with __version__")
    return folder / "pyproject.toml", folder / "CHANGELOG.md", inits[0]


def _versions(pyproject: Path, init: Path) -> tuple[str, str]:
    declared = re.search(r'(?m)^version = "([^"]+)"', pyproject.read_text())
    in_code = re.search(r'(?m)^__version__ = "([^"]+)"', init.read_text())
    if declared is None or in_code is None:
        raise SystemExit(f"{pyproject.parent.name}: no version in pyproject.toml or __init__.py")
    return declared.group(1), in_code.group(1)


def unreleased(changelog: str) -> str:
    """The text under the "## Unreleased" heading, up to the next "## " heading."""
    match = re.search(rf"(?ms)^{UNRELEASED}[ \t]*\n(.*?)(?=^## |\Z)", changelog)
    if match is None:
        raise SystemExit(f"the changelog has no '{UNRELEASED}' heading")
    return match.group(1).strip()


def latest_tag(root: Path, package: str) -> str | None:
    prefix = f"{package}-v"
    tags = [t for t in _git(root, "tag", "--list", f"{prefix}*").split() if t]
    tags = [t for t in tags if VERSION.match(t.removeprefix(prefix))]
    return max(tags, key=lambda t: _version_key(t.removeprefix(prefix)), default=None)


def cut(root: Path, package: str, version: str, dry_run: bool = False) -> str:
    """Release `package` at `version`; returns the tag (not created with `dry_run`)."""
    pyproject, changelog, init = _files(root, package)
    current, in_code = _versions(pyproject, init)
    if current != in_code:
        raise SystemExit(f"{package}: pyproject says {current}, __version__ says {in_code}")
    if _version_key(version) <= _version_key(current):
        raise SystemExit(f"{package}: {version} is not above the current version {current}")
    tag = f"{package}-v{version}"
    if tag in _git(root, "tag", "--list", tag).split():
        raise SystemExit(f"tag {tag} exists already")
    text = changelog.read_text()
    if not unreleased(text):
        raise SystemExit(f"{package}: nothing under '{UNRELEASED}' in CHANGELOG.md to release")
    if _git(root, "status", "--porcelain"):
        raise SystemExit("the working tree has uncommitted changes; commit or stash them first")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    released = text.replace(UNRELEASED, f"{UNRELEASED}\n\n## {version} ({today})", 1)
    print(f"{package}: {current} -> {version}, tag {tag}")
    if dry_run:
        return tag
    changelog.write_text(released)
    for path, field in ((pyproject, "version"), (init, "__version__")):
        line = rf'(?m)^{field} = "[^"]+"'
        path.write_text(re.sub(line, f'{field} = "{version}"', path.read_text(), count=1))
    _git(root, "add", str(pyproject), str(changelog), str(init))
    _git(root, "commit", "-q", "-m", f"{package} {version}")
    _git(root, "tag", "-a", tag, "-m", f"{package} {version}")
    return tag


def check(root: Path) -> list[str]:
    """Problems: changed-but-unlogged packages and disagreeing versions."""
    problems = []
    for folder in sorted((root / "packages").iterdir()):
        if not (folder / "pyproject.toml").exists():
            continue
        package = folder.name
        pyproject, changelog, init = _files(root, package)
        declared, in_code = _versions(pyproject, init)
        if declared != in_code:
            problems.append(f"{package}: pyproject says {declared}, __version__ says {in_code}")
        entry = unreleased(changelog.read_text())
        tag = latest_tag(root, package)
        if tag is None:
            continue
        paths = [f"packages/{package}/src", f"packages/{package}/pyproject.toml"]
        changed = _git(root, "diff", "--name-only", tag, "--", *paths).split()
        if changed and not entry:
            problems.append(
                f"{package}: {len(changed)} file(s) changed since {tag} ({changed[0]}, ...) "
                f"but CHANGELOG.md has nothing under '{UNRELEASED}'"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    commands = parser.add_subparsers(dest="command", required=True)
    cutting = commands.add_parser("cut", help="release one package")
    cutting.add_argument("package")
    cutting.add_argument("version")
    cutting.add_argument("--dry-run", action="store_true", help="say what would change")
    commands.add_parser("check", help="every change since a release is in its changelog")
    args = parser.parse_args(argv)
    if args.command == "cut":
        cut(args.root, args.package, args.version, args.dry_run)
        return 0
    problems = check(args.root)
    for problem in problems:
        print(problem)
    if not problems:
        print("changelogs: every package's changes since its last release are logged")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
