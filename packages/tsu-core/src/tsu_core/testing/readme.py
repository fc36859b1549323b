"""The Python examples of a Markdown file, read and run by each package's tests so a README
example that breaks fails CI.

Every ```` ```python ```` fenced block is one example. A block that cannot run on a CPU in a few
seconds is marked by an HTML comment on the last non-blank line above its fence,

    <!-- example: skip (GPU-size, trains for 10 minutes) -->

and its test reports it as skipped with that reason. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

_OPENING = re.compile(r"^(\s*)(`{3,})\s*python\b")
_DIRECTIVE = re.compile(r"^\s*<!--\s*example:(.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s*\((.+)\)\s*$")
# Paths that exist on one machine only: a README example must run in a fresh clone.
_MACHINE_PATH = re.compile(
    r"""["'](?:/work/|/home/|/root/|/tmp/|/mnt/|[A-Za-z]:\\|(?:\.\./)+shared)"""
)


class ReadmeExample(NamedTuple):
    """One ```` ```python ```` block of a Markdown file.

    **Fields:**

    - `path`: the Markdown file.
    - `line`: the 1-based line of the block's opening fence.
    - `code`: the block's source, its fence's indentation removed.
    - `skip`: the reason given by a `<!-- example: skip (reason) -->` above it, else None.
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
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    examples = []
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening.group(1), opening.group(2)
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{index + 1}: the ```python block is never closed")
        body = [
            line[len(indent) :] if line.startswith(indent) else line
            for line in lines[index + 1 : end]
        ]
        examples.append(
            ReadmeExample(path, index + 1, "\n".join(body) + "\n", _skip_reason(lines, index, path))
        )
        index = end + 1
    return examples


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
