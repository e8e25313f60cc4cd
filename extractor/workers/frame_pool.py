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
import queue
import threading
from multiprocessing import shared_memory

import numpy as np
import psutil

logger = logging.getLogger(__name__)

MIN_SLOTS = 4
MAX_DEFAULT_SLOTS = 64
DEFAULT_RAM_SHARE = 0.10  # of the RAM available at start


def default_slot_count(slot_bytes: int, minimum: int = MIN_SLOTS) -> int:
    """Slots that fit in a tenth of the available RAM, between ``minimum`` and 64."""
    available = psutil.virtual_memory().available
    return int(max(minimum, min(MAX_DEFAULT_SLOTS, available * DEFAULT_RAM_SHARE // max(slot_bytes, 1))))


class FramePool:
    """Owner side (the main process): creates the block, hands out and takes back slots."""

    def __init__(self, slot_bytes: int, slots: int):
        if slot_bytes <= 0 or slots <= 0:
            raise ValueError("frame pool needs a positive slot size and count")
        self.slot_bytes = int(slot_bytes)
        self.slots = int(slots)
        self._shm = shared_memory.SharedMemory(create=True, size=self.slot_bytes * self.slots)
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
