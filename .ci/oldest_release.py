"""The oldest release of a package that a requirement's range allows, picked from its tags.

Release tags are `<package>-v<version>` (.ci/release.py). The `oldest_core` nox sessions use
`oldest_release` to choose the tsu-core tag whose code a dependent's tests run against. It needs
`packaging` for the specifier, which nox and pytest both bring; release.py, standard library
only, stays so.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


def oldest_release(package: str, specifier: SpecifierSet | str, tags: Iterable[str]) -> str | None:
    """The tag of `package`'s lowest released version that `specifier` allows.

    **Arguments**
    - `package`: the distribution name, the part of the tag before `-v`.
    - `specifier`: the dependent's range, such as `>=0.1,<0.2`. Pre-releases count only where
      the specifier names one, as pip resolves them.
    - `tags`: every tag of the repository; other packages' tags and tags whose version does not
      parse are ignored.

    **Returns** the tag, or None when no release of `package` satisfies the range.
    """
    specifier = SpecifierSet(str(specifier))
    prefix = f"{package}-v"
    releases = {}
    for tag in tags:
        if not tag.startswith(prefix):
            continue
        try:
            version = Version(tag.removeprefix(prefix))
        except InvalidVersion:
            continue
        if specifier.contains(version):
            releases[version] = tag
    return releases[min(releases)] if releases else None
