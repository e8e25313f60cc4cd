"""A worker dies with its coordinator, whatever kills the coordinator.

Two independent guards, because a worker may be blocked anywhere (writing to a full pipe,
joining a queue's feeder thread, deep in a model) when the coordinator is killed outright:

- the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, Linux): the worker
  is killed the moment its parent ends;
- a watchdog thread that polls ``os.getppid()`` and ends the process if it was re-parented
  (other systems, or a parent gone before the signal was armed).

A worker's parent is the coordinator, or the coordinator's fork server (``start``), which ends
the moment the coordinator does: either way the worker goes with it.

Neither depends on queue state. The worker's models, GPU memory and mappings go with it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
import time

import psutil

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def _arm_parent_death_signal() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # not Linux: the watchdog alone


def _parent_of(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def _coordinator_gone(parent: int, coordinator_pid: int) -> bool:
    """True once the worker was re-parented, or its parent (the fork server) was."""
    return os.getppid() != parent or (parent != coordinator_pid and _parent_of(parent) != coordinator_pid)


def _watch(parent: int, coordinator_pid: int) -> None:
    while not _coordinator_gone(parent, coordinator_pid):
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def die_with_parent(coordinator_pid: int) -> None:
    """Call first thing in a worker, with the coordinator's pid (passed in, not read here: by
    the time the worker runs, the coordinator may already be gone)."""
    _arm_parent_death_signal()
    parent = os.getppid()
    if _coordinator_gone(parent, coordinator_pid):
        os._exit(1)  # the coordinator (or its fork server) died before the signal was armed
    threading.Thread(target=_watch, args=(parent, coordinator_pid), name="extractor-lifeline", daemon=True).start()
