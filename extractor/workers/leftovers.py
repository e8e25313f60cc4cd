"""Nothing named in ``/dev/shm`` outlives a run, and nothing of anybody else's is ever removed.

The frame pool is anonymous (``frame_pool``). What remains named are the POSIX semaphores that
``multiprocessing`` queues use under ``forkserver`` and ``spawn`` (``/dev/shm/sem.*``): a child opens them by name
while it unpickles its queues. So:

1. they get our own name, ``sem.extractor-<coordinator pid>-<random>`` (``own_semaphore_names``),
   not the ``sem.mp-*`` every Python program shares;
2. once every worker has started (and so has opened them), their names are unlinked
   (``unlink_semaphore_names``): the semaphores live on, nameless, in the processes that use
   them, and vanish with the last of them;
3. the start-up sweep removes only names that are provably ours and dead: our prefixes with the
   pid of a process that no longer exists (left by a run killed outright in its first second,
   or by an older version that named its frame pools ``extractor_<pid>_*``).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import re
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

SHM_FOLDER = Path("/dev/shm")
SEMAPHORE_PREFIX = "extractor"  # sem.extractor-<pid>-<random>
# Ours, with the pid of the process that made it: semaphores, and older versions' frame pools.
OURS = re.compile(r"^(?:sem\.extractor-(?P<sem_pid>\d+)-\w+|extractor_(?P<pool_pid>\d+)_[0-9a-f]+)$")


def own_semaphore_names() -> None:
    """Name the semaphores this process creates from now on ``/extractor-<pid>-...``."""
    multiprocessing.current_process()._config["semprefix"] = f"/{SEMAPHORE_PREFIX}-{os.getpid()}"


def _semlocks(mp_queue) -> list:
    return [lock for lock in (getattr(mp_queue, name, None) for name in ("_rlock", "_wlock", "_sem"))
            if lock is not None and getattr(lock._semlock, "name", None)]


def unlink_semaphore_names(queues) -> int:
    """Unlink the names of the queues' semaphores (every process that needs them has opened
    them), and cancel multiprocessing's own unlink at exit, which would then fail. Returns the
    count unlinked."""
    from _multiprocessing import sem_unlink
    from multiprocessing import resource_tracker, util
    from multiprocessing.synchronize import SemLock

    names = {lock._semlock.name for q in queues for lock in _semlocks(q)}
    for name in names:
        try:
            sem_unlink(name)
        except FileNotFoundError:
            pass
        resource_tracker.unregister(name, "semaphore")
    for finalizer in list(util._finalizer_registry.values()):
        if getattr(finalizer, "_callback", None) is SemLock._cleanup and finalizer._args[0] in names:
            finalizer.cancel()
    return len(names)


def sweep_dead_runs() -> list[str]:
    """Remove from ``/dev/shm`` what killed extractor runs left: names with our prefixes whose
    process is gone. Nothing else is touched, whoever's it is. Returns the names removed."""
    if not SHM_FOLDER.is_dir():
        return []
    removed = []
    for path in SHM_FOLDER.iterdir():
        match = OURS.match(path.name)
        if not match or psutil.pid_exists(int(match.group("sem_pid") or match.group("pool_pid"))):
            continue
        try:
            path.unlink()
            removed.append(path.name)
        except OSError as exc:
            logger.debug("cannot remove %s: %s", path, exc)
    if removed:
        logger.warning("removed %d shared-memory file(s) left in /dev/shm by a killed extractor run", len(removed))
    return removed
