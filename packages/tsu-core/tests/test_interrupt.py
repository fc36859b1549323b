"""StopRequest: the first signal is recorded and announced, the second gets the default action,
and leaving the block puts the previous handlers back."""

from __future__ import annotations

import os
import signal

from tsu_core.interrupt import StopRequest


def test_first_signal_is_a_request_and_restores_the_default(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest("demo", unit="iteration") as request:
        assert not request.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert request.requested and request.signal_name == "SIGTERM"
        # the second signal would now be acted on by the kernel
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is before
    error = capsys.readouterr().err
    assert "demo: SIGTERM received: saving a checkpoint at the end of this iteration" in error
