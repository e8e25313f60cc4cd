"""The frame pool: one shared-memory block cut into fixed slots that hold decoded frames.

Why one block and not a segment per frame: one create and one unlink per run (not per frame),
so nothing can leak frame by frame, and the block's size is the hard bound on frame memory.
The loader waits for a free slot before decoding the next frame: that wait is the back-pressure
that keeps memory flat however long the input is.

Workers attach to the block by name and see a slot as a zero-copy ndarray view
(``SlotViewer``); queues carry only ``(seq, slot, shape)``.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import secrets
import threading
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import psutil

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "extractor_"  # extractor_<owner pid>_<random>: lets a later run spot orphans
SHM_FOLDER = Path("/dev/shm")
MIN_SLOTS = 4
MAX_DEFAULT_SLOTS = 64
DEFAULT_RAM_SHARE = 0.10  # of the RAM available at start


def default_slot_count(slot_bytes: int, minimum: int = MIN_SLOTS) -> int:
    """Slots that fit in a tenth of the available RAM, between ``minimum`` and 64."""
    available = psutil.virtual_memory().available
    return int(max(minimum, min(MAX_DEFAULT_SLOTS, available * DEFAULT_RAM_SHARE // max(slot_bytes, 1))))


class FramePoolError(Exception):
    """The shared-memory block could not be created (too little /dev/shm, a file-size limit)."""


class FramePool:
    """Owner side (the main process): creates the block, hands out and takes back slots."""

    def __init__(self, slot_bytes: int, slots: int):
        if slot_bytes <= 0 or slots <= 0:
            raise ValueError("frame pool needs a positive slot size and count")
        self.slot_bytes = int(slot_bytes)
        self.slots = int(slots)
        name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        size = self.slot_bytes * self.slots
        try:
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        except OSError as exc:
            raise FramePoolError(f"cannot create the frame pool ({self.slots} frames, {size / 1e6:.0f} MB) in "
                                 f"shared memory: {exc.strerror or exc}; try a smaller --frame-buffer") from None
        self.name = self._shm.name
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(self.slots):
            self._free.put(slot)
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.close)  # last line of defence; close() is normally called first

    def acquire(self, timeout: float | None = None) -> int:
        """A free slot id; blocks (back-pressure) until one is released. Raises queue.Empty."""
        return self._free.get(timeout=timeout)

    def release(self, slot: int) -> None:
        self._free.put(slot)

    @property
    def free_slots(self) -> int:
        return self._free.qsize()

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return slot_view(self._shm, self.slot_bytes, slot, shape)

    def store(self, slot: int, image: np.ndarray) -> tuple[int, ...]:
        """Copy a decoded frame into its slot; returns the shape to send with the handle."""
        if image.nbytes > self.slot_bytes:
            raise ValueError(f"frame of {image.shape} ({image.nbytes} bytes) is larger than a pool slot "
                             f"({self.slot_bytes} bytes)")
        target = self.view(slot, image.shape)
        target[...] = image
        return tuple(image.shape)

    def close(self) -> None:
        """Unmap and unlink the block (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._shm.close()
        except BufferError:
            logger.debug("frame pool: views still open at close; unlinking anyway")
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _mapped_shm_files() -> set[str] | None:
    """Names of /dev/shm files that some process has mapped (None if /proc cannot tell)."""
    mapped = set()
    try:
        for maps in Path("/proc").glob("[0-9]*/maps"):
            try:
                for line in maps.read_text().splitlines():
                    if "/dev/shm/" in line:
                        mapped.add(line.rsplit("/dev/shm/", 1)[1].split(" ")[0])
            except OSError:
                continue  # process gone, or not ours to read
    except OSError:
        return None
    return mapped


def sweep_orphan_segments() -> list[str]:
    """Remove what a run killed outright (kill -9 of its whole process group) left in /dev/shm.

    - our frame pools (``extractor_<pid>_*``) whose owner process no longer exists;
    - multiprocessing's named semaphores (``sem.mp-*``, the queues' locks under spawn) that no
      living process has mapped: only a dead run's can be in that state.
    Normally each run removes its own (and Python's resource tracker backs that up); this covers
    the case where the tracker was killed too. Returns the names removed.
    """
    if not SHM_FOLDER.is_dir():
        return []
    orphans = []
    for path in SHM_FOLDER.glob(f"{SEGMENT_PREFIX}*"):
        try:
            owner = int(path.name[len(SEGMENT_PREFIX):].split("_")[0])
        except ValueError:
            continue
        if not psutil.pid_exists(owner):
            orphans.append(path)
    semaphores = list(SHM_FOLDER.glob("sem.mp-*"))
    mapped = _mapped_shm_files() if semaphores else set()
    if mapped is not None:
        orphans += [path for path in semaphores if path.name not in mapped]
    removed = []
    for path in orphans:
        try:
            path.unlink()
            removed.append(path.name)
        except OSError as exc:
            logger.debug("cannot remove %s: %s", path, exc)
    if removed:
        logger.warning("removed %d shared-memory file(s) left in /dev/shm by a killed run", len(removed))
    return removed


def slot_view(shm: shared_memory.SharedMemory, slot_bytes: int, slot: int, shape) -> np.ndarray:
    """Zero-copy ndarray over one slot of the block."""
    return np.ndarray(shape, dtype=np.uint8, buffer=shm.buf, offset=slot * slot_bytes)


class SlotViewer:
    """Worker side: attach to the pool block by name and look at slots without copying."""

    def __init__(self, name: str, slot_bytes: int):
        # track=False (3.13+) is not available on 3.11; spawned children share the parent's
        # resource tracker, so their registration of the name is the same entry as the owner's
        # and is cleared by the owner's unlink.
        self._shm = shared_memory.SharedMemory(name=name)
        self.slot_bytes = slot_bytes

    def view(self, slot: int, shape) -> np.ndarray:
        return slot_view(self._shm, self.slot_bytes, slot, tuple(shape))
