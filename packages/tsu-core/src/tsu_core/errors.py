"""Errors raised across the stack.

Every error names the field that is wrong, what was expected, and what was given, so that a user
can fix the call without reading the source.
"""

from __future__ import annotations


class TSUError(Exception):
    """Base class of every error raised by `tsu_core` and by backends that follow its protocol."""


class InvalidModel(TSUError, ValueError):
    """A topology or its parameters are malformed (missing node, self-loop, NaN weight, ...)."""


class InvalidRequest(TSUError, ValueError):
    """A sampling call's arguments are malformed (beta <= 0, clamp value out of range, ...)."""


class NotSupported(TSUError, NotImplementedError):
    """The backend cannot do what was asked; the message names the missing capability."""


class BackendNotFound(TSUError, LookupError):
    """No installed backend has the requested name."""


class IncompatibleBackend(BackendNotFound):
    """A backend is installed but implements another protocol version than tsu-core speaks
    (or declares none); the message says which and what to upgrade."""


def describe(value: object) -> str:
    """A short description of a value for error messages: type and shape, or the value itself."""
    shape = getattr(value, "shape", None)
    if shape is not None and tuple(shape) == () and hasattr(value, "item"):
        # A numpy, JAX or torch scalar: its value as a user wrote it, not `np.int64(0)`.
        return f"{value.item()!r} ({type(value).__name__})"
    if shape is not None:
        dtype = getattr(value, "dtype", None)
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
