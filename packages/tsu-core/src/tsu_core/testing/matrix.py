"""Which tests of a package run in every backend's session and which run in one.

nox runs a package's tests once for every backend its pyproject declares (`test-backends`),
and sets `TSU_FIRST_BACKEND` to 1 in the first of those sessions and 0 in the others. Tests that
do not depend on the backend under test and cost a lot (a README's commands, a measured memory
peak) need to pass once: `first_backend_session()` is False where they may skip, and
`once_per_package` is the pytest mark that skips them there. Outside nox (the variable unset)
everything runs.
"""

from __future__ import annotations

import os

FIRST_BACKEND_VARIABLE = "TSU_FIRST_BACKEND"


def first_backend_session() -> bool:
    """False only where nox runs a package's tests for a backend other than its first."""
    return os.environ.get(FIRST_BACKEND_VARIABLE, "1") != "0"


def __getattr__(name: str):
    # The mark is made on first use, so that importing this module does not need pytest.
    if name == "once_per_package":
        import pytest

        return pytest.mark.skipif(
            not first_backend_session(),
            reason=f"{FIRST_BACKEND_VARIABLE}=0: independent of the backend, run with the first",
        )
    raise AttributeError(name)
