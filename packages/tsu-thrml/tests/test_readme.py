"""The README's Python examples run as written."""

from pathlib import Path

import pytest

from tsu_core.testing import readme_examples, run_readme_example

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.parametrize(
    "example", readme_examples(README), ids=lambda example: f"line-{example.line}"
)
def test_readme_example(example, tmp_path, monkeypatch):
    if example.skip:
        pytest.skip(example.skip)
    monkeypatch.chdir(tmp_path)
    run_readme_example(example)
