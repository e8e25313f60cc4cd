"""A run stopped by a signal ends as Ctrl-C ends it.

SIGTERM (``kill``, a service manager, a job scheduler's time limit) and SIGHUP (the terminal or
the SSH session closed) would otherwise kill the process between two writes: no line saying
where the frames done so far are, the last record perhaps cut in two, and in the one-process
engine no chance to close the output. Raised as ``Stopped`` (a ``KeyboardInterrupt``), they take
every engine's Ctrl-C path: workers ended, frames written so far kept, one line, exit status
128 + the signal's number, as a shell reports a process the signal ended.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The run was ended by ``signum``."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


def catch_stop_signals() -> dict:
    """SIGTERM and SIGHUP raise ``Stopped`` from now on, in the main thread (elsewhere, where
    Python lets no handler be set, nothing changes); returns what ``restore`` puts back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextmanager
def stop_signals_interrupt():
    """``catch_stop_signals`` for the length of a block."""
    previous = catch_stop_signals()
    try:
        yield
    finally:
        restore(previous)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """What the command exits with: 130 for Ctrl-C (SIGINT), 128 + the signal's number otherwise."""
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)
