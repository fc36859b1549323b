"""Stopping a training loop on SIGINT or SIGTERM: the first signal asks the loop to stop at its
next safe point, a second one ends the process at once.

The first signal only records itself in `StopRequest.signal_name`; the loop reads it at the end
of a step, saves a checkpoint and returns. The handler also puts the default disposition back,
so the second signal is acted on by the kernel and stops the process even inside a long backend
call, where a Python handler would have to wait for the call to return. Every model package's
`train` command uses it, so Ctrl-C and SIGTERM mean the same thing in each.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager that turns the first SIGINT or SIGTERM into a request to stop.

    Arguments:
        program: the name that starts the line written to stderr when a signal arrives.
        unit: what the loop calls one of its steps ("step", "iteration"), for that line.

    Attributes:
        signal_name: "SIGINT" or "SIGTERM" once one arrived, else None.

    Outside the main thread, where Python cannot install handlers, it installs none.
    """

    def __init__(self, program: str, unit: str = "step") -> None:
        self.program = program
        self.unit = unit
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked the loop to stop."""
        return self.signal_name is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exception: object) -> None:
        for number, handler in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(number).name
        for other in SIGNALS:
            signal.signal(other, signal.SIG_DFL)
        sys.stderr.write(
            f"\n{self.program}: {self.signal_name} received: saving a checkpoint at the end of "
            f"this {self.unit} (send it again to stop at once, without saving)\n"
        )
        sys.stderr.flush()
