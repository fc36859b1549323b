"""Finding backends by name through the `tsu.backends` entry-point group.

A backend package declares, in its `pyproject.toml`, the object to load and the protocol
version it implements (`tsu_core.protocol.PROTOCOL_VERSION`), under the same name:

    [project.entry-points."tsu.backends"]
    my-chip = "my_chip_tsu:MyChipBackend"

    [project.entry-points."tsu.protocol"]
    my-chip = "1.0"

The first object is a class or factory called with no arguments. The second entry's value is a
version, never loaded: the registry reads it from the installed metadata, so a plugin for
another major version (or one that declares none) is listed by `incompatible_backends()` with
the reason and never imported. `get_backend()` finds a compatible one by name, by the
`TSU_BACKEND` environment variable, or as the best one installed, and checks that the object's
own `protocol_version` says the same as its metadata.
"""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points

from tsu_core.errors import BackendNotFound, IncompatibleBackend
from tsu_core.protocol import (
    PROTOCOL_VERSION,
    Backend,
    parse_protocol_version,
    protocol_mismatch,
)

GROUP = "tsu.backends"
PROTOCOL_GROUP = "tsu.protocol"
ENVIRONMENT_VARIABLE = "TSU_BACKEND"
# The order in which `get_backend()` prefers backends when none is named; others come after.
PREFERENCE = ("jax-sim", "thrml", "reference")
INSTALL_HINTS = {
    "reference": "pip install tsu-core",
    "jax-sim": "pip install tsu-jax-sim",
    "thrml": "pip install tsu-thrml",
}

_instances: dict[str, Backend] = {}


def _entry_points(group: str = GROUP) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=group):
        found.setdefault(point.name, point)
    return found


def declared_versions() -> dict[str, str]:
    """The protocol version each installed backend declares in its metadata, by name."""
    return {name: point.value.strip() for name, point in _entry_points(PROTOCOL_GROUP).items()}


def incompatible_backends() -> dict[str, str]:
    """Installed backends that are not loaded, each with the reason (read from metadata only)."""
    versions = declared_versions()
    reasons = {}
    for name in _entry_points():
        reason = protocol_mismatch(versions.get(name))
        if reason is not None:
            reasons[name] = reason
    return reasons


def available_backends() -> list[str]:
    """Names of the installed backends this tsu-core can use, most preferred first."""
    names = (set(_entry_points()) - set(incompatible_backends())) | {"reference"}
    ranked = [name for name in PREFERENCE if name in names]
    return ranked + sorted(names - set(ranked))


def get_backend(name: str | None = None) -> Backend:
    """The backend called `name`; else the one `TSU_BACKEND` names; else the best installed.

    Raises:
        IncompatibleBackend: it is installed but implements another protocol version (or
            declares none); the message gives both versions.
        BackendNotFound: no installed backend has that name; the message lists the installed
            ones and how to install the missing one.
    """
    if name is None:
        name = os.environ.get(ENVIRONMENT_VARIABLE) or available_backends()[0]
    if not isinstance(name, str) or not name:
        raise BackendNotFound(f"backend name: expected a non-empty string, got {name!r}")
    if name in _instances:
        return _instances[name]
    source = (
        " (from the TSU_BACKEND environment variable)"
        if (os.environ.get(ENVIRONMENT_VARIABLE) == name)
        else ""
    )
    points = _entry_points()
    incompatible = incompatible_backends()
    if name in incompatible:
        raise IncompatibleBackend(
            f"backend '{name}'{source} is installed but not loaded: it {incompatible[name]}. "
            f"A backend declares its version in the '{PROTOCOL_GROUP}' entry-point group "
            "(docs/backend-guide.md)"
        )
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
        skipped = "".join(f"; not loaded: {other} ({why})" for other, why in incompatible.items())
        raise BackendNotFound(
            f"backend '{name}'{source} is not installed{install}. "
            f"Installed: {', '.join(available_backends())}{skipped}"
        )
    backend = factory()
    _check_declared(name, backend, declared_versions().get(name, PROTOCOL_VERSION))
    _instances[name] = backend
    return backend


def _check_declared(name: str, backend: Backend, in_metadata: str) -> None:
    """The object must implement what its metadata promised."""
    declared = getattr(backend, "protocol_version", None)
    try:
        differs = parse_protocol_version(declared)[0] != parse_protocol_version(in_metadata)[0]
    except ValueError:
        differs = False
    if differs:
        reason = f"declares protocol {declared} in code but {in_metadata} in its metadata"
    else:
        reason = protocol_mismatch(declared)
    if reason is not None:
        raise IncompatibleBackend(
            f"backend '{name}' {reason}; set `protocol_version` on the backend to the version in "
            f"its '{PROTOCOL_GROUP}' entry point (docs/backend-guide.md)"
        )
