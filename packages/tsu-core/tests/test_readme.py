"""The README's Python examples run as written, and the reader of Markdown examples."""

import traceback
from pathlib import Path

import pytest

from tsu_core.testing import (
    readme_commands,
    readme_commands_test,
    readme_examples,
    readme_test,
    run_readme_command,
    run_readme_example,
)

README = Path(__file__).parents[1] / "README.md"
test_readme_example = readme_test(README)
test_readme_command = readme_commands_test(README)


def test_readme_has_examples():
    assert readme_examples(README)


def _write(tmp_path, text):
    path = tmp_path / "README.md"
    path.write_text(text)
    return path


def test_reads_python_blocks_with_lines_and_skips(tmp_path):
    path = _write(
        tmp_path,
        "# T\n\n```bash\nls\n```\n\n```python\nx = 1\n```\n\n"
        "<!-- example: skip (GPU-size, trains for 10 minutes) -->\n\n"
        "- item\n\n  ```python\n  y = 2\n  ```\n",
    )
    first, second = readme_examples(path)
    assert (first.line, first.code, first.skip) == (7, "x = 1\n", None)
    assert second.skip is None  # the comment is not directly above: a list item is between
    assert (second.line, second.code) == (15, "y = 2\n")
    path = _write(tmp_path, "<!-- example: skip (GPU-size) -->\n```python\nx = 1\n```\n")
    assert readme_examples(path)[0].skip == "GPU-size"


@pytest.mark.parametrize(
    "text, message",
    [
        ("```python\nx = 1\n", "never closed"),
        ("<!-- example: skp (typo) -->\n```python\nx = 1\n```\n", "expected `<!-- example: skip"),
    ],
)
def test_malformed_markdown_is_an_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        readme_examples(_write(tmp_path, text))


def test_a_failing_example_fails_with_the_markdown_line(tmp_path):
    path = _write(tmp_path, "text\n\n```python\nx = 1\nraise RuntimeError('broken')\n```\n")
    with pytest.raises(RuntimeError, match="broken") as error:
        run_readme_example(readme_examples(path)[0])
    frame = traceback.extract_tb(error.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno) == (str(path), 5)


@pytest.mark.parametrize("path", ["/work/main/data", "../shared/data/mnist", "/home/me/mnist"])
def test_machine_paths_are_refused(tmp_path, path):
    readme = _write(tmp_path, f"```python\nload('{path}')\n```\n")
    with pytest.raises(ValueError, match="machine path"):
        run_readme_example(readme_examples(readme)[0])


def _clone_readme(tmp_path, text):
    """A README inside a folder that looks like the repository's top (it has packages/)."""
    (tmp_path / "repo" / "packages").mkdir(parents=True)
    return _write(tmp_path / "repo", text)


def test_reads_command_blocks_with_skips_and_gpu_size(tmp_path):
    path = _write(
        tmp_path,
        "```python\nx = 1\n```\n\n<!-- example: skip (installs packages) -->\n```bash\n"
        "pip install x\n```\n\n```\n# GPU-size (hours on a CPU)\ntrain --big\n```\n\n"
        "CPU size:\n\n```sh\ntrain --small\n```\n\n```console\nnot a command block\n```\n",
    )
    install, gpu, cpu = readme_commands(path)
    assert (install.line, install.skip) == (6, "installs packages")
    assert (gpu.line, gpu.skip) == (10, "GPU-size (hours on a CPU)")
    assert (cpu.line, cpu.code, cpu.skip) == (17, "train --small\n", None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("```bash\n# GPU-size (big)\ntrain\n```\n", "needs its CPU-sized sibling"),
        (
            "```bash\n# GPU-size (big)\ntrain\n```\n\n<!-- example: skip (no) -->\n"
            "```bash\ntrain --small\n```\n",
            "needs its CPU-sized sibling",
        ),
        ("<!-- example: skip (GPU-size, big) -->\n```bash\ntrain\n```\n", "first line"),
        ("```bash\nls\n", "never closed"),
    ],
)
def test_malformed_command_blocks_are_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        readme_commands(_write(tmp_path, text))


def test_a_command_runs_from_a_clone_and_writes_under_the_temporary_directory(tmp_path):
    readme = _clone_readme(
        tmp_path, "```bash\nls packages > listing.txt\nmkdir -p out && echo done > out/x\n```\n"
    )
    run_readme_command(readme_commands(readme)[0], tmp_path / "run")
    assert (tmp_path / "run" / "clone" / "out" / "x").read_text() == "done\n"
    assert not (tmp_path / "repo" / "out").exists()


def test_a_failing_command_fails_with_the_markdown_line(tmp_path):
    readme = _clone_readme(tmp_path, "text\n\n```bash\ntrue\necho oops >&2; false\necho no\n```\n")
    with pytest.raises(AssertionError, match=r"README.md:3: a command failed with status 1:\noops"):
        run_readme_command(readme_commands(readme)[0], tmp_path / "run")


def test_a_command_over_its_time_fails(tmp_path):
    readme = _clone_readme(tmp_path, "```bash\nsleep 5\n```\n")
    with pytest.raises(AssertionError, match="ran over 0.5 s"):
        run_readme_command(readme_commands(readme)[0], tmp_path / "run", timeout=0.5)


@pytest.mark.parametrize("path", ["/work/main/data", "/tmp/runs/x", "/home/me/mnist"])
def test_machine_paths_in_commands_are_refused(tmp_path, path):
    readme = _clone_readme(tmp_path, f"```bash\ntrain --data {path}\n```\n")
    with pytest.raises(ValueError, match="machine path"):
        run_readme_command(readme_commands(readme)[0], tmp_path / "run")
