"""A worker dies with its coordinator, whatever kills the coordinator.

Two independent guards, because a worker may be blocked anywhere (writing to a full pipe,
joining a queue's feeder thread, deep in a model) when the coordinator is killed outright:

- the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, Linux): the worker
  is killed the moment its parent ends;
- a watchdog thread that polls ``os.getppid()`` and ends the process if it was re-parented
  (other systems, or a parent gone before the signal was armed).

Neither depends on queue state. The worker's models, GPU memory and mappings go with it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def _arm_parent_death_signal() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # not Linux: the watchdog alone


def _watch(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(WATCH_SECONDS)


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker, with the coordinator's pid (passed in, not read here: by
    the time the worker runs, the parent may already be gone)."""
    _arm_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)  # the coordinator died before the signal was armed
    threading.Thread(target=_watch, args=(parent_pid,), name="extractor-lifeline", daemon=True).start()
