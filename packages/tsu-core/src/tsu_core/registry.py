"""Finding backends by name through the `tsu.backends` entry-point group.

A backend package declares, in its `pyproject.toml`,

    [project.entry-points."tsu.backends"]
    my-chip = "my_chip_tsu:MyChipBackend"

where the object is a class or factory called with no arguments. `get_backend()` then finds it
by name, by the `TSU_BACKEND` environment variable, or as the best one installed.
"""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points

from tsu_core.errors import BackendNotFound
from tsu_core.protocol import Backend

GROUP = "tsu.backends"
ENVIRONMENT_VARIABLE = "TSU_BACKEND"
# The order in which `get_backend()` prefers backends when none is named; others come after.
PREFERENCE = ("jax-sim", "thrml", "reference")
INSTALL_HINTS = {
    "reference": "pip install tsu-core",
    "jax-sim": "pip install tsu-jax-sim",
    "thrml": "pip install tsu-thrml",
}

_instances: dict[str, Backend] = {}


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        found.setdefault(point.name, point)
    return found


def available_backends() -> list[str]:
    """Names of the installed backends, most preferred first."""
    names = set(_entry_points()) | {"reference"}
    ranked = [name for name in PREFERENCE if name in names]
    return ranked + sorted(names - set(ranked))


def get_backend(name: str | None = None) -> Backend:
    """The backend called `name`; else the one `TSU_BACKEND` names; else the best installed.

    Raises:
        BackendNotFound: no installed backend has that name; the message lists the installed
            ones and how to install the missing one.
    """
    if name is None:
        name = os.environ.get(ENVIRONMENT_VARIABLE) or available_backends()[0]
    if not isinstance(name, str) or not name:
        raise BackendNotFound(f"backend name: expected a non-empty string, got {name!r}")
    if name in _instances:
        return _instances[name]
    points = _entry_points()
    if name in points:
        factory = points[name].load()
    elif name == "reference":
        from tsu_core.backends.reference import ReferenceBackend

        factory = ReferenceBackend
    else:
        hint = INSTALL_HINTS.get(name)
        install = (
            f"; install it with `{hint}`"
            if hint
            else (f"; a backend registers itself in the '{GROUP}' entry-point group")
        )
        source = (
            " (from the TSU_BACKEND environment variable)"
            if (os.environ.get(ENVIRONMENT_VARIABLE) == name)
            else ""
        )
        raise BackendNotFound(
            f"backend '{name}'{source} is not installed{install}. "
            f"Installed: {', '.join(available_backends())}"
        )
    backend = factory()
    _instances[name] = backend
    return backend
