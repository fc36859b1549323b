"""The examples of a Markdown file, read and run by each package's tests so that a README
example or command that breaks fails CI.

Every ```` ```python ```` fenced block is one Python example (`readme_examples`). Every
```` ```bash ````, ```` ```sh ```` or unlabelled fenced block is one command block
(`readme_commands`), run by bash as written from the top of a clone of the repository.

A block that is not run is marked by an HTML comment on the last non-blank line above its fence,

    <!-- example: skip (installs packages; the test environment has them) -->

and its test reports it as skipped with that reason. A command block too large for a CPU says
so where the reader sees it, in its first line:

    # GPU-size (the paper preset trains for hours on a CPU); the CPU size is below

and the command block next to it (before or after) must be one that runs: its CPU-sized
sibling. Standard library only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

_PYTHON = re.compile(r"^(\s*)(`{3,})\s*python\b")
_COMMANDS = re.compile(r"^(\s*)(`{3,})\s*(?:bash|sh)?\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*example:(.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s*\((.+)\)\s*$")
_GPU_SIZE = re.compile(r"^#\s*(GPU-size\b.*)$")
# Paths that exist on one machine only: a README example must run in a fresh clone.
_MACHINE_PATH = re.compile(
    r"""["'](?:/work/|/home/|/root/|/tmp/|/mnt/|[A-Za-z]:\\|(?:\.\./)+shared)"""
)
# In a command that runs: absolute paths of one machine (outputs go under the clone's top).
_MACHINE_PATH_IN_COMMAND = re.compile(r"(?<![\w.])(?:/work|/home|/root|/tmp|/mnt)/\S*")
# What a command block's test sees of the repository: these entries of its top, and the
# `shared/` folder beside it where there is one (as on CI and the development machines).
CLONE_ENTRIES = ("packages", "benchmarks", "examples", "docs", "pyproject.toml", "noxfile.py")


class ReadmeExample(NamedTuple):
    """One fenced block of a Markdown file: a Python example or a block of shell commands.

    **Fields:**

    - `path`: the Markdown file.
    - `line`: the 1-based line of the block's opening fence.
    - `code`: the block's source, its fence's indentation removed.
    - `skip`: why the block is not run (a `<!-- example: skip (reason) -->` above it, or a
      command block's `# GPU-size ...` first line), else None.
    """

    path: Path
    line: int
    code: str
    skip: str | None


def readme_examples(path: str | Path) -> list[ReadmeExample]:
    """The ```` ```python ```` blocks of the Markdown file at `path`, in order.

    **Raises:** `ValueError` for a block without a closing fence, or an `<!-- example: ... -->`
    comment other than `skip (reason)`.
    """
    return _blocks(Path(path), _PYTHON)


def readme_commands(path: str | Path) -> list[ReadmeExample]:
    """The command blocks (```` ```bash ````, ```` ```sh ```` or unlabelled) of the Markdown
    file at `path`, in order; a block whose first line is `# GPU-size ...` is skipped with that
    line as its reason.

    **Raises:** `ValueError` as `readme_examples`, and for a GPU-size block marked only in an
    HTML comment (the reader would not see it) or without a command block that runs next to it.
    """
    path = Path(path)
    blocks = []
    for block in _blocks(path, _COMMANDS):
        first = block.code.lstrip().splitlines()[0] if block.code.strip() else ""
        gpu_size = _GPU_SIZE.match(first)
        if block.skip and block.skip.startswith("GPU-size") and not gpu_size:
            raise ValueError(
                f"{path}:{block.line}: a GPU-size command block says so in its first line, "
                "`# GPU-size (why)`, where the reader sees it"
            )
        blocks.append(block._replace(skip=gpu_size.group(1)) if gpu_size else block)
    for index, block in enumerate(blocks):
        if block.skip is None or not block.skip.startswith("GPU-size"):
            continue
        neighbours = blocks[max(index - 1, 0) : index] + blocks[index + 1 : index + 2]
        if not any(neighbour.skip is None for neighbour in neighbours):
            raise ValueError(
                f"{path}:{block.line}: a GPU-size command block needs its CPU-sized sibling, "
                "a command block that runs, right before or after it"
            )
    return blocks


def _blocks(path: Path, opening_pattern: re.Pattern[str]) -> list[ReadmeExample]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = re.match(r"^\s*(`{3,})", lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening.group(1)
        end = index + 1
        while end < len(lines) and not re.fullmatch(f"{fence}`*", lines[end].strip()):
            end += 1
        if end == len(lines):
            raise ValueError(
                f"{path}:{index + 1}: the {lines[index].strip()} block is never closed"
            )
        wanted = opening_pattern.match(lines[index])
        if wanted is not None:
            indent = wanted.group(1)
            body = [
                line[len(indent) :] if line.startswith(indent) else line
                for line in lines[index + 1 : end]
            ]
            code = "\n".join(body) + "\n"
            blocks.append(ReadmeExample(path, index + 1, code, _skip_reason(lines, index, path)))
        index = end + 1
    return blocks


def _skip_reason(lines: list[str], fence_index: int, path: Path) -> str | None:
    above = fence_index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    directive = _DIRECTIVE.match(lines[above]) if above >= 0 else None
    if directive is None:
        return None
    skip = _SKIP.match(directive.group(1))
    if skip is None:
        raise ValueError(
            f"{path}:{above + 1}: expected `<!-- example: skip (reason) -->`, "
            f"got {lines[above].strip()!r}"
        )
    return skip.group(1).strip()


def run_readme_example(example: ReadmeExample) -> dict:
    """Run `example` as a script (in the current working directory) and return its globals.

    Tracebacks name the Markdown file and its line numbers.

    **Raises:** `ValueError` if the example names a path that exists on one machine only
    (`/work/...`, `/home/...`, `../shared/...`): an example must run in a fresh clone.
    """
    machine_path = _MACHINE_PATH.search(example.code)
    if machine_path is not None:
        raise ValueError(
            f"{example.path}:{example.line}: the example names a machine path "
            f"({machine_path.group(0)}...); use a path relative to the working directory"
        )
    # Blank lines in front so the compiled line numbers are the Markdown file's.
    source = "\n" * example.line + example.code
    namespace = {"__name__": "__main__", "__file__": str(example.path)}
    exec(compile(source, str(example.path), "exec"), namespace)
    return namespace


def repository_root(path: str | Path) -> Path:
    """The top of the repository holding the Markdown file at `path` (the nearest folder at or
    above it that has `packages/`)."""
    path = Path(path).resolve()
    for folder in (path.parent, *path.parents):
        if (folder / "packages").is_dir():
            return folder
    raise ValueError(f"{path}: no folder with packages/ at or above it")


def clone_view(root: str | Path, directory: str | Path) -> Path:
    """A folder `directory/clone` that looks like the top of a clone of `root` (links to its
    `CLONE_ENTRIES`, and `directory/shared` linked to the `shared/` beside `root` where there is
    one), so that a command run there reads what a clone has and writes under `directory`."""
    root, directory = Path(root), Path(directory)
    clone = directory / "clone"
    clone.mkdir(parents=True, exist_ok=True)
    for name in CLONE_ENTRIES:
        if (root / name).exists() and not (clone / name).exists():
            (clone / name).symlink_to(root / name)
    shared = root.parent / "shared"
    if shared.is_dir() and not (directory / "shared").exists():
        (directory / "shared").symlink_to(shared)
    return clone


def run_readme_command(
    block: ReadmeExample, directory: str | Path, *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command block with bash (`-e -o pipefail`: the first failing command fails it) from
    `clone_view(...)` under `directory`, with this Python's scripts first on PATH (the
    environment's command lines).

    **Raises:** `ValueError` if the block names an absolute path of one machine (`/tmp/...`,
    `/work/...`); `AssertionError` naming the Markdown line and the output's end if a command
    fails or the block runs longer than `timeout` seconds.
    """
    machine_path = _MACHINE_PATH_IN_COMMAND.search(block.code)
    if machine_path is not None:
        raise ValueError(
            f"{block.path}:{block.line}: the command names a machine path "
            f"({machine_path.group(0)}); use a path relative to the top of the clone"
        )
    clone = clone_view(repository_root(block.path), directory)
    scripts = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=clone,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{block.path}:{block.line}: the commands ran over {timeout:g} s; shrink their CPU size"
        ) from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise AssertionError(
            f"{block.path}:{block.line}: a command failed with status {done.returncode}:\n{output}"
        )
    return done


def readme_test(path: str | Path) -> Callable[..., None]:
    """A pytest test running each example of the Markdown file at `path` as written, in a
    fresh temporary directory, one case per block (id `line-N`); skipped blocks are reported
    with their reason. A package's tests use it as `test_readme_example = readme_test(README)`.
    """
    import pytest  # the `testing` extra; the reader above needs only the standard library

    @pytest.mark.parametrize(
        "example", readme_examples(path), ids=lambda example: f"line-{example.line}"
    )
    def test_readme_example(
        example: ReadmeExample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if example.skip:
            pytest.skip(example.skip)
        monkeypatch.chdir(tmp_path)
        run_readme_example(example)

    return test_readme_example


def readme_commands_test(path: str | Path, *, timeout: float = 600) -> Callable[..., None]:
    """A pytest test running each command block of the Markdown file at `path` as written
    (`run_readme_command`), in a fresh temporary directory, one case per block (id `line-N`);
    skipped and GPU-size blocks are reported with their reason. All are skipped in the test
    sessions of a package's backends but its first (`matrix.first_backend_session`): the
    commands need not run once per backend. A package's tests use it as
    `test_readme_command = readme_commands_test(README)`.
    """
    import pytest

    from tsu_core.testing.matrix import FIRST_BACKEND_VARIABLE, first_backend_session

    @pytest.mark.parametrize("block", readme_commands(path), ids=lambda block: f"line-{block.line}")
    def test_readme_command(block: ReadmeExample, tmp_path: Path) -> None:
        if block.skip:
            pytest.skip(block.skip)
        if not first_backend_session():
            pytest.skip(f"{FIRST_BACKEND_VARIABLE}=0: README commands run with another backend")
        run_readme_command(block, tmp_path, timeout=timeout)

    return test_readme_command
