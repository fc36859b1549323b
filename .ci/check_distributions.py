"""Check the distributions `nox -s build` made: what a user of each package sees on an index.

    python .ci/check_distributions.py dist

For every package under packages/, dist/<package>/ must hold one wheel and one sdist of the
version its pyproject.toml states, and the wheel's metadata must carry what the pyproject
declares: the summary, the README as a Markdown description, the licence (expression and the
repository's LICENSE text), `requires-python`, the dependencies, and every entry point (scripts
and plugin groups such as `tsu.backends`). The sdist must hold the pyproject, the README, the
LICENSE and every module the wheel installs. Exits 1 naming each problem.
"""

from __future__ import annotations

import email
import sys
import tarfile
import tomllib
import zipfile
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirement(text: str) -> tuple[str, frozenset[str]]:
    """A requirement without markers as (name, specifiers), whatever their order and spacing."""
    text = text.split(";")[0].replace(" ", "")
    cut = next((i for i, c in enumerate(text) if c in "<>=!~"), len(text))
    return text[:cut].lower(), frozenset(filter(None, text[cut:].split(",")))


def _problems(package_dir: Path, dist: Path) -> list[str]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    stem = f"{name.replace('-', '_')}-{version}"
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    expected = ([f"{stem}-py3-none-any.whl"], [f"{stem}.tar.gz"])
    if ([w.name for w in wheels], [s.name for s in sdists]) != expected:
        return [f"expected {expected[0] + expected[1]}, found {[p.name for p in wheels + sdists]}"]
    problems = []
    with zipfile.ZipFile(wheels[0]) as wheel:
        info = f"{stem}.dist-info"
        meta = email.message_from_string(wheel.read(f"{info}/METADATA").decode())
        wanted = {
            "Name": name,
            "Version": version,
            "Summary": project["description"],
            "Requires-Python": project["requires-python"],
            "License-Expression": project["license"],
            "Description-Content-Type": "text/markdown",
        }
        problems += [
            f"METADATA {field}: {meta.get(field)!r}, pyproject says {value!r}"
            for field, value in wanted.items()
            if meta.get(field) != value
        ]
        readme = (package_dir / project["readme"]).read_text()
        if meta.get_payload().strip() != readme.strip():
            problems.append("METADATA: the description is not the README")
        requires = {_requirement(r) for r in meta.get_all("Requires-Dist") or []}
        problems += [
            f"METADATA: missing Requires-Dist {dep}"
            for dep in project.get("dependencies", [])
            if _requirement(dep) not in requires
        ]
        licence = f"{info}/licenses/LICENSE"
        if (
            licence not in wheel.namelist()
            or wheel.read(licence) != (ROOT / "LICENSE").read_bytes()
        ):
            problems.append("wheel: the LICENSE text is missing or differs from the repository's")
        declared = {"console_scripts": project.get("scripts", {})} | project.get("entry-points", {})
        points = ConfigParser(delimiters=("=",))
        points.optionxform = str  # entry point names are case-sensitive
        if f"{info}/entry_points.txt" in wheel.namelist():
            points.read_string(wheel.read(f"{info}/entry_points.txt").decode())
        for group, entries in declared.items():
            for key, target in entries.items():
                if not points.has_option(group, key) or points.get(group, key).strip() != target:
                    problems.append(f"entry point missing: [{group}] {key} = {target}")
        modules = {n for n in wheel.namelist() if n.endswith(".py")}
    with tarfile.open(sdists[0]) as sdist:
        members = {m.name.removeprefix(f"{stem}/") for m in sdist.getmembers() if m.isfile()}
    for required in ("pyproject.toml", project["readme"], "LICENSE"):
        if required not in members:
            problems.append(f"sdist: {required} missing")
    in_src = {m.removeprefix("src/") for m in members if m.startswith("src/")}
    problems += [f"sdist: {m} (installed by the wheel) missing" for m in sorted(modules - in_src)]
    return problems


def main() -> int:
    dist_root = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
    failed = False
    for package_dir in sorted((ROOT / "packages").iterdir()):
        if not (package_dir / "pyproject.toml").exists():
            continue
        if (package_dir / "LICENSE").read_bytes() != (ROOT / "LICENSE").read_bytes():
            print(f"{package_dir.name}: LICENSE differs from the repository's LICENSE")
            failed = True
        problems = _problems(package_dir, dist_root / package_dir.name)
        for problem in problems:
            print(f"{package_dir.name}: {problem}")
        failed |= bool(problems)
        if not problems:
            print(f"{package_dir.name}: wheel and sdist OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
