"""Sessions for the TSU stack: tests per package and backend, isolation installs, lint, demo, bench.

    nox -s tests        every package against every backend it declares
    nox -s build        an sdist and a wheel of every package into dist/, checked as an index would;
                        changelogs checked against the release tags (.ci/release.py)
    nox -s isolation    each package's built wheel alone in a fresh environment, without the
                        others' frameworks
    nox -s oldest_core  each dependent's tests against the oldest tsu-core release its range
                        allows, built from that release's tag
    nox -s lint         ruff
    nox -s demo         the main demo
    nox -s playground   the Ising playground's tests (headless Chromium)
    nox -s bench        the benchmarks at CPU sizes
    nox -s results      benchmarks/RESULTS.md is current with the records in benchmarks/results/
    nox -s docs         the documentation site (mkdocs.yml), built with --strict
    nox -s examples     each package's first example (examples/<package>/) in its quick form

Each package declares, in its pyproject.toml,

    [project.optional-dependencies]
    test = [...]                       # what its tests need beyond its dependencies
    [tool.tsu]
    test-backends = ["jax-sim", "thrml"]   # backends its tests run against (TSU_BACKEND)
    forbidden = ["torch"]              # frameworks it must not pull in (checked by isolation)

Test environments are shared between sessions whose package sets are equal (a hash of the set
and of the packages' pyproject files names the environment; a package's environment holds every
backend it is tested against), and packages are installed editable, so repeated runs only run
the tests. The test sessions share JAX's persistent compilation cache under .nox. pip (not uv)
installs everything, so pip's configuration (local mirrors, constraints) is honoured. Large files that an environment shares
byte for byte with another (torch, jaxlib) become hard links, so a full run needs far less disk.
"""

from __future__ import annotations

import filecmp
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
ENVS_DIR = ROOT / ".nox" / "_shared"
# Backend name -> the package that provides it (None: built into tsu-core).
BACKEND_PACKAGES = {"reference": None, "jax-sim": "tsu-jax-sim", "thrml": "tsu-thrml"}
# Installed first where a package needs torch: the CPU build when it lies on disk.
TORCH_PIN = os.environ.get("TSU_TORCH_PIN", "torch==2.13.0")

nox.options.sessions = [
    "lint",
    "results",
    "build",
    "tests",
    # Skips in seconds while no tsu-core release differs from the tree; once one does, a
    # dependent that came to rely on newer tsu-core code should fail the change that did it.
    "oldest_core",
    "isolation",
    "playground",
    "docs",
    "examples",
]
nox.options.default_venv_backend = "virtualenv"


def _pyproject(package: str) -> dict:
    return tomllib.loads((PACKAGES_DIR / package / "pyproject.toml").read_text())


def _packages() -> list[str]:
    found = [path.parent.name for path in sorted(PACKAGES_DIR.glob("*/pyproject.toml"))]
    return sorted(found, key=lambda name: (name != "tsu-core", name))


def _settings(package: str) -> dict:
    return _pyproject(package).get("tool", {}).get("tsu", {})


def _needs_torch(package: str, *, extras: bool = True) -> bool:
    """Whether installing `package` (with its extras, unless `extras=False`) brings in torch."""
    project = _pyproject(package)["project"]
    requirements = list(project.get("dependencies", []))
    if extras:
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
    return any(
        requirement.split(">")[0].split("=")[0].split("[")[0].strip() == "torch"
        for requirement in requirements
    )


def _link_identical_files(env: Path) -> None:
    """Replace each large file in `env`'s site-packages that is byte-identical to the same file in
    another environment under .nox by a hard link to it. torch and jaxlib are installed in many
    environments: a full run held 22 GB before, and CI once ran out of disk."""
    site = next((env / "lib").glob("python*/site-packages"))
    nox_dir = ROOT / ".nox"
    others = [
        other
        for pattern in ("*/lib/python*/site-packages", "_shared/*/lib/python*/site-packages")
        for other in nox_dir.glob(pattern)
        if other != site
    ]
    for path in site.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        if size < 1 << 16:
            continue
        for other in others:
            twin = other / path.relative_to(site)
            if twin.is_symlink() or not twin.is_file() or twin.stat().st_size != size:
                continue
            if twin.samefile(path):
                break  # already shared
            if filecmp.cmp(twin, path, shallow=False):
                linked = path.with_name(path.name + ".nox-link")
                os.link(twin, linked)
                os.replace(linked, path)
                break


def _has_test_extra(package: str) -> bool:
    return "test" in _pyproject(package)["project"].get("optional-dependencies", {})


def _editable_targets(packages: list[str]) -> list[str]:
    """pip arguments installing each package editable, with its test extra where it has one."""
    targets = []
    for package in packages:
        extra = "[test]" if _has_test_extra(package) else ""
        targets += ["-e", f"{PACKAGES_DIR / package}{extra}"]
    return targets


TEST_MATRIX = [
    (package, backend)
    for package in _packages()
    for backend in _settings(package).get("test-backends", ["reference"])
    if backend in BACKEND_PACKAGES
    and (
        BACKEND_PACKAGES[backend] is None
        or (PACKAGES_DIR / BACKEND_PACKAGES[backend] / "pyproject.toml").exists()
    )
]


def _shared_env(
    session: nox.Session, packages: list[str], requirements: tuple[Path, ...] = ()
) -> Path:
    """A virtual environment with `packages` installed editable (with their test extras) and the
    given requirement files, created once per distinct set and reused while their pyproject and
    requirement files are unchanged."""
    packages = sorted(set(packages))
    digest = hashlib.sha256()
    for package in packages:
        digest.update(package.encode())
        digest.update((PACKAGES_DIR / package / "pyproject.toml").read_bytes())
    for requirement in requirements:
        digest.update(requirement.read_bytes())
        for included in requirement.parent.glob("requirements*.txt"):
            digest.update(included.read_bytes())
    digest.update(TORCH_PIN.encode())
    env = ENVS_DIR / (
        "-".join(name.replace("tsu-", "") for name in packages)[:60] + "-" + digest.hexdigest()[:10]
    )
    python = env / "bin" / "python"
    stamp = env / "installed.ok"
    if not stamp.exists():
        session.run(sys.executable, "-m", "venv", "--clear", str(env), external=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        session.run(*pip, "--upgrade", "pip", external=True)
        if any(_needs_torch(package) for package in packages):
            session.run(*pip, TORCH_PIN, external=True)
        session.run(*pip, *_editable_targets(packages), external=True)
        for requirement in requirements:
            session.run(*pip, "-r", str(requirement), external=True)
        _link_identical_files(env)
        stamp.write_text("\n".join(packages))
    return env


def _first_backend(package: str) -> str:
    """The backend `package`'s tests run against first: the first it declares."""
    return next(backend for tested, backend in TEST_MATRIX if tested == package)


def _test_packages(package: str, backend: str) -> list[str]:
    """The packages in the environment of `package`'s tests against `backend`: tsu-core, the
    package and every backend package it is tested against, so that its sessions for different
    backends (and its example) share one environment, one install of torch and JAX;
    `reference`, built into tsu-core, adds nothing, so tsu-core's own reference session keeps
    an environment of numpy alone."""
    if BACKEND_PACKAGES[backend] is None:
        return ["tsu-core", package]
    backends = [b for tested, b in TEST_MATRIX if tested == package]
    return ["tsu-core", package, *(BACKEND_PACKAGES[b] for b in backends if BACKEND_PACKAGES[b])]


@nox.session(venv_backend="none")
@nox.parametrize("package,backend", TEST_MATRIX, ids=[f"{p}-{b}" for p, b in TEST_MATRIX])
def tests(session: nox.Session, package: str, backend: str) -> None:
    """A package's tests against one backend (chosen through TSU_BACKEND)."""
    env = _shared_env(session, _test_packages(package, backend))
    # Tests of helpers that convert between frameworks need torch and JAX together, which
    # tsu-core's own environments must not have: they run where tsu-torch meets jax-sim.
    together = CROSS_FRAMEWORK_TESTS if (package, backend) == ("tsu-torch", "jax-sim") else []
    session.run(
        str(env / "bin" / "python"),
        "-m",
        "pytest",
        str(PACKAGES_DIR / package / "tests"),
        *(str(ROOT / path) for path in together),
        *session.posargs,
        external=True,
        env=_test_env(package, backend),
    )


def _test_env(package: str, backend: str) -> dict[str, str]:
    """The environment variables of `package`'s tests against `backend`."""
    # README command blocks and other backend-independent tests marked
    # `tsu_core.testing.matrix.once_per_package` run once per package, with its first backend.
    first = backend == _first_backend(package)
    return {
        "TSU_BACKEND": backend,
        "PYTHONHASHSEED": "0",
        "TSU_FIRST_BACKEND": str(int(first)),
        **JAX_CACHE,
    }


# JAX's persistent compilation cache, shared by every test session and the processes tests
# start: the same small programs (a tiny model's sampler, a training step) are compiled by many
# tests and subprocesses, and compiling dominates their time on a CPU. A cache hit returns the
# executable compiled for the same program, options, device and JAX version.
JAX_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".nox" / "jax-cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
}


# tsu-core's tests of numpy/JAX/torch conversion, device names and gradient averaging, and the
# benchmarks' helpers: they skip without torch or JAX, so they run in the tsu-torch + jax-sim
# environment as well as in tsu-core's.
CROSS_FRAMEWORK_TESTS = [
    "packages/tsu-core/tests/test_arrays.py",
    "packages/tsu-core/tests/test_devices.py",
    "packages/tsu-core/tests/test_distributed.py",
    "benchmarks/tests",
]


@nox.session
def build(session: nox.Session) -> None:
    """Build an sdist and a wheel of every package with its declared build backend (the wheel
    from the sdist, as `python -m build` does) into dist/<package>/, and check them as an index
    and a user would: `twine check --strict`, `check-wheel-contents`, and the metadata against
    each pyproject (.ci/check_distributions.py). First the release flow: every package's changes
    since its last release tag are in its changelog (.ci/release.py check), and the release
    script's own tests."""
    session.install("build", "twine", "check-wheel-contents", "pytest")
    session.run("python", "-m", "pytest", "-q", str(ROOT / ".ci" / "tests"))
    session.run("python", str(ROOT / ".ci" / "release.py"), "check")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for package in _packages():
        session.run(
            "python",
            "-m",
            "build",
            "--outdir",
            str(dist / package),
            str(PACKAGES_DIR / package),
            silent=True,
        )
    session.run("twine", "check", "--strict", *map(str, sorted(dist.glob("*/*"))))
    session.run("check-wheel-contents", *map(str, sorted(dist.glob("*/*.whl"))))
    session.run("python", str(ROOT / ".ci" / "check_distributions.py"), str(dist))


@nox.session
@nox.parametrize("package", _packages())
def isolation(session: nox.Session, package: str) -> None:
    """Install one package's wheel alone (with tsu-core's) into a fresh environment, as a user
    installs it from an index, import it, and prove that the frameworks it must not depend on
    were not pulled in. The wheels are those `nox -s build` made; where dist/ lacks them, they
    are built here from the source folders with the same build backend."""
    # The plain install, as a user types it: extras (such as xut-flow's `torch`) stay out.
    if _needs_torch(package, extras=False):
        session.install(TORCH_PIN)
    session.install(*(_wheel(session, name) for name in dict.fromkeys(["tsu-core", package])))
    _link_identical_files(Path(session.virtualenv.location))
    module = package.replace("-", "_")
    forbidden = _settings(package).get("forbidden", [])
    session.run(
        "python",
        "-c",
        "import importlib.util, sys\n"
        f"import {module}\n"
        f"bad = [name for name in {forbidden!r} if importlib.util.find_spec(name)]\n"
        f"print('{package}: imported', {module}.__name__, '| absent:', {forbidden!r})\n"
        "sys.exit(f'pulled in: {bad}' if bad else 0)",
    )


def _core_requirement(package: str) -> Requirement | None:
    """`package`'s requirement on tsu-core, or None where it has none."""
    for line in _pyproject(package)["project"].get("dependencies", []):
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == "tsu-core":
            return requirement
    return None


def _oldest_release():
    """.ci/oldest_release.py's function; .ci is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location(
        "oldest_release", ROOT / ".ci" / "oldest_release.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.oldest_release


@nox.session
@nox.parametrize("package", [name for name in _packages() if _core_requirement(name)])
def oldest_core(session: nox.Session, package: str) -> None:
    """A dependent's tests with the oldest tsu-core release its range allows.

    The wheel built from that release's tag replaces the tree's tsu-core, and the dependent's
    tests run against its first backend, so a dependent that uses something newer than its lower
    bound fails here. Skips while no release satisfies the range, or while the release's
    tsu-core is the tree's: `nox -s tests` covers both."""
    specifier = _core_requirement(package).specifier
    tags = session.run("git", "tag", "--list", "tsu-core-v*", silent=True, external=True).split()
    tag = _oldest_release()("tsu-core", specifier, tags)
    if tag is None:
        session.skip(f"no tsu-core release satisfies {specifier}: the oldest allowed is the tree's")
    same = subprocess.run(["git", "diff", "--quiet", tag, "--", "packages/tsu-core"], cwd=ROOT)
    if same.returncode == 0:
        session.skip(f"packages/tsu-core at {tag} is the tree's: `nox -s tests` covers it")
    wheel = _release_wheel(session, tag)
    backend = _first_backend(package)
    packages = list(dict.fromkeys(_test_packages(package, backend)))
    if any(_needs_torch(name) for name in packages):
        session.install(TORCH_PIN)
    # The tree's tsu-core comes in with the dependent, as pip cannot find tsu-core on an index;
    # the release's wheel then replaces its code and metadata.
    session.install(*_editable_targets(packages))
    session.install("--force-reinstall", "--no-deps", wheel)
    _link_identical_files(Path(session.virtualenv.location))
    session.run("python", "-m", "pip", "check")
    version = tag.removeprefix("tsu-core-v")
    session.run(
        "python",
        "-c",
        "import importlib.metadata, sys, tsu_core\n"
        "installed = importlib.metadata.version('tsu-core')\n"
        "print('tsu-core', installed, 'from', tsu_core.__file__)\n"
        f"tree = tsu_core.__file__.startswith({str(PACKAGES_DIR)!r})\n"
        f"sys.exit('not the release of {tag}' if tree or installed != {version!r} else 0)",
    )
    session.run(
        "python",
        "-m",
        "pytest",
        str(PACKAGES_DIR / package / "tests"),
        *session.posargs,
        env=_test_env(package, backend),
    )


def _release_wheel(session: nox.Session, tag: str) -> str:
    """The path of tsu-core's wheel built from its folder at `tag`, exported with git archive."""
    tmp = Path(session.create_tmp())
    source = tmp / "source"
    shutil.rmtree(source, ignore_errors=True)
    archive = tmp / "tsu-core.tar"
    session.run("git", "archive", "-o", str(archive), tag, "packages/tsu-core", external=True)
    with tarfile.open(archive) as files:
        files.extractall(source, filter="data")
    return _build_wheel(session, source / "packages" / "tsu-core", tmp / "wheels")


def _wheel(session: nox.Session, package: str) -> str:
    """The path of `package`'s wheel in dist/ (`nox -s build`), built into the session's
    temporary folder when dist/ has none."""
    built = sorted((ROOT / "dist" / package).glob("*.whl"))
    if built:
        return str(built[-1])
    out = Path(session.create_tmp()) / "wheels" / package
    return _build_wheel(session, PACKAGES_DIR / package, out)


def _build_wheel(session: nox.Session, source: Path, out: Path) -> str:
    """The path of the wheel built from the package folder `source` into `out`, emptied first
    so that a wheel left by an earlier run cannot stand in for it."""
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source))
    return str(next(out.glob("*.whl")))


@nox.session
def results(session: nox.Session) -> None:
    """The results page is the one benchmarks/report.py makes of the records, and the report's
    own tests pass (the script needs only the standard library)."""
    session.install("pytest")
    session.run("python", "benchmarks/report.py", "--check")
    session.run("python", "-m", "pytest", "-q", "benchmarks/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole repository."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _best_backend_packages() -> list[str]:
    for backend in ("jax-sim", "thrml"):
        package = BACKEND_PACKAGES[backend]
        if (PACKAGES_DIR / package / "pyproject.toml").exists():
            return [package]
    return []


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The main demo: a 2D lattice across beta beside Onsager's exact curves (writes a PNG)."""
    env = _shared_env(session, ["tsu-core", *_best_backend_packages()])
    python = str(env / "bin" / "python")
    session.run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "-r",
        str(ROOT / "examples" / "requirements.txt"),
        external=True,
    )
    session.run(python, str(ROOT / "examples" / "quickstart.py"), *session.posargs, external=True)


@nox.session(venv_backend="none")
def playground(session: nox.Session) -> None:
    """The Ising playground's tests: sampling logic, the page without a browser, and the page in
    headless Chromium (Debian's /usr/bin/chromium; `.ci/run` installs it). bitflip-dtm (and so
    torch) is installed for the tests of its reverse step; the page itself needs only tsu-core,
    and a test checks its message when bitflip-dtm is absent."""
    backends = _best_backend_packages()
    requirements = (ROOT / "examples" / "playground" / "requirements-test.txt",)
    env = _shared_env(session, ["tsu-core", *backends, "bitflip-dtm"], requirements)
    backend = (
        {"tsu-jax-sim": "jax-sim", "tsu-thrml": "thrml"}.get(backends[0], "reference")
        if backends
        else "reference"
    )
    session.run(
        str(env / "bin" / "python"),
        "-m",
        "pytest",
        str(ROOT / "examples" / "playground" / "tests"),
        *session.posargs,
        external=True,
        env={"TSU_BACKEND": backend},
    )


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every benchmark script at its small (CPU) size; each prints JSON lines."""
    packages = _packages()
    env = _shared_env(session, packages)
    python = str(env / "bin" / "python")
    for script in sorted((ROOT / "benchmarks").glob("[!_]*.py")):  # _*.py: their helpers
        if script.name == "report.py":
            continue  # writes the results page; not a benchmark
        session.run(python, str(script), "--quick", *session.posargs, external=True)
    session.run(python, "-m", "pytest", str(ROOT / "benchmarks" / "tests"), external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml) built with --strict, so a broken link or a missing
    reference fails. mkdocstrings reads the packages' sources with griffe, without importing
    them, so neither the packages nor their frameworks are installed."""
    session.install("-r", str(ROOT / "docs" / "requirements.txt"))
    site = ROOT / "site"
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"}
    )


# The example of each package that a newcomer runs first; `examples` runs it with --quick.
FIRST_EXAMPLES = {
    "tsu-core": "tsu-core/check_against_exact.py",
    "tsu-jax-sim": "tsu-jax-sim/lattice_across_beta.py",
    "tsu-thrml": "tsu-thrml/potts_ring.py",
    "tsu-torch": "tsu-torch/convert_mlp.py",
    "bitflip-dtm": "bitflip-dtm/train_digits.py",
    "thought-diffusion": "thought-diffusion/train_tiny.py",
    "xut-flow": "xut-flow/train_tiny.py",
}


@nox.session(venv_backend="none")
@nox.parametrize("package", list(FIRST_EXAMPLES))
def examples(session: nox.Session, package: str) -> None:
    """A package's first example in its quick form, in the environment of the package's tests
    against its first backend (so CI installs nothing more). Data comes from ../shared/data."""
    backend = _first_backend(package)
    env = _shared_env(session, _test_packages(package, backend))
    script = ROOT / "examples" / FIRST_EXAMPLES[package]
    session.run(
        str(env / "bin" / "python"),
        str(script),
        "--quick",
        *session.posargs,
        external=True,
        env={"TSU_BACKEND": backend, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"},
    )
