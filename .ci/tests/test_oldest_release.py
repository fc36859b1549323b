"""`.ci/oldest_release.py`: the tag of the lowest release a range allows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "oldest_release", Path(__file__).parents[1] / "oldest_release.py"
)
module = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(module)
oldest_release = module.oldest_release


def test_picks_the_lowest_release_in_the_range() -> None:
    tags = ["tsu-core-v0.1.2", "tsu-core-v0.2.0", "tsu-core-v0.1.0", "tsu-core-v0.0.9"]
    assert oldest_release("tsu-core", ">=0.1,<0.2", tags) == "tsu-core-v0.1.0"
    assert oldest_release("tsu-core", ">=0.1.1,<0.2", tags) == "tsu-core-v0.1.2"


def test_orders_versions_numerically_not_as_text() -> None:
    tags = ["tsu-core-v0.10.0", "tsu-core-v0.9.0"]
    assert oldest_release("tsu-core", ">=0.2", tags) == "tsu-core-v0.9.0"


def test_none_when_no_release_satisfies_the_range() -> None:
    assert oldest_release("tsu-core", ">=0.1,<0.2", []) is None
    assert oldest_release("tsu-core", ">=0.1,<0.2", ["tsu-core-v0.2.0"]) is None


def test_ignores_other_packages_and_tags_that_are_not_versions() -> None:
    tags = [
        "tsu-jax-sim-v0.1.0",
        "tsu-core-extra-v0.1.0",
        "tsu-core-vnext",
        "v0.1.0",
        "tsu-core-v0.1.3",
    ]
    assert oldest_release("tsu-core", ">=0.1,<0.2", tags) == "tsu-core-v0.1.3"


def test_pre_releases_only_where_the_range_names_one() -> None:
    tags = ["tsu-core-v0.1.0rc1", "tsu-core-v0.1.0"]
    assert oldest_release("tsu-core", ">=0.1,<0.2", tags) == "tsu-core-v0.1.0"
    assert oldest_release("tsu-core", ">=0.1.0rc1,<0.2", tags) == "tsu-core-v0.1.0rc1"
