"""The README's Python examples and command blocks run as written (`tsu_core.testing`)."""

from pathlib import Path

from tsu_core.testing import readme_commands_test, readme_test

README = Path(__file__).parents[1] / "README.md"
test_readme_example = readme_test(README)
test_readme_command = readme_commands_test(README)
