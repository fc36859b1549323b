"""The README's Python examples run as written, and the reader of Markdown examples."""

import traceback
from pathlib import Path

import pytest

from tsu_core.testing import readme_examples, readme_test, run_readme_example

README = Path(__file__).parents[1] / "README.md"
test_readme_example = readme_test(README)


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
