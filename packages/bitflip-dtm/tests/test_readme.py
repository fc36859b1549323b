"""The README's Python examples run as written (`tsu_core.testing.readme_test`)."""

from pathlib import Path

from tsu_core.testing import readme_test

test_readme_example = readme_test(Path(__file__).parents[1] / "README.md")
