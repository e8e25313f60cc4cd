"""The frame pool: one anonymous shared-memory block cut into fixed slots that hold decoded frames.
A frame larger than a slot (one big photo in a folder of small ones) takes several adjacent
slots, so the slots can be cut for the usual frame and a folder keeps its frames in flight.

Why one block and not a segment per frame: one allocation per run (not per frame), so nothing
can leak frame by frame, and the block's size is the hard bound on frame memory. A video whose
frames grow mid-way (joined clips, a stream that changes resolution) has the block re-cut into
larger slots once every frame in it is done (``grow``). The loader
waits for a free slot before decoding the next frame: that wait is the back-pressure that keeps
memory flat however long the input is.

Why anonymous (``memfd_create``; where the system has none, macOS, a POSIX shared-memory object
unlinked as soon as it is made) and not a named ``/dev/shm`` segment: the block has no name, so
its memory goes when the last process that holds it ends, whatever ends the run (kill -9 of the
whole process group included), and no later sweep has anything to guess about. Each worker is
handed its own descriptor of the block as it starts (``PoolAddress`` pickles as
``multiprocessing``'s ``DupFd``: the fork server or spawn passes it over its socket), maps it and
sees a slot as a zero-copy ndarray view (``SlotViewer``); queues carry only ``(seq, slot, shape)``.
"""
from __future__ import annotations

import atexit
import logging
import mmap
import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from extractor.workers.limits import available_memory

logger = logging.getLogger(__name__)

MIN_SLOTS = 4
MAX_DEFAULT_SLOTS = 64
DEFAULT_RAM_SHARE = 0.10  # of the RAM available at start


@dataclass(frozen=True)
class PoolAddress:
    """How a worker finds the block: a file descriptor of it (the owner's own or, once a worker
    has started, the copy it was handed) and the size of a slot."""

    fd: int
    slot_bytes: int

    def __reduce__(self):
        """Pickled as a worker starts: the descriptor travels with it (``DupFd``), not its number."""
        from multiprocessing.reduction import DupFd

        return _handed_address, (DupFd(self.fd), self.slot_bytes)


def _handed_address(handed, slot_bytes: int) -> PoolAddress:
    return PoolAddress(handed.detach(), slot_bytes)


def default_slot_count(slot_bytes: int, minimum: int = MIN_SLOTS) -> int:
    """Slots that fit in a tenth of the available RAM, between ``minimum`` and 64."""
    available = available_memory()
    return int(max(minimum, min(MAX_DEFAULT_SLOTS, available * DEFAULT_RAM_SHARE // max(slot_bytes, 1))))


class FramePoolError(Exception):
    """The shared-memory block could not be created (too little memory, a file-size limit)."""


MAX_RAM_SHARE = 0.5  # a frame buffer may take at most half the RAM available at start


def slots_that_fit(slot_bytes: int, wanted: int) -> int:
    """``wanted`` slots of ``slot_bytes``, or as many as half the available RAM holds."""
    return int(min(wanted, available_memory() * MAX_RAM_SHARE // max(slot_bytes, 1)))


def slots_with_room_for(frames: int, slot_bytes: int, largest: int) -> int:
    """Slots for ``frames`` frames of ``slot_bytes``, one of which may be the ``largest``."""
    return frames + -(-largest // slot_bytes) - 1


def block_slots(frames: int, slot_bytes: int, largest: int, frames_of_largest: int) -> int:
    """Slots of ``slot_bytes`` (the usual frame) in the block: as many bytes as
    ``frames_of_largest`` slots cut for the largest frame would take, where half the RAM holds
    them, and never fewer than ``frames`` usual frames with the largest beside them."""
    for_the_largest = slots_that_fit(slot_bytes, frames_of_largest * largest // slot_bytes)
    return max(slots_with_room_for(frames, slot_bytes, largest), for_the_largest)


def check_frame_buffer(frames: int, slot_bytes: int, largest: int = 0) -> None:
    """Refuse a frame buffer (``--frame-buffer`` usual frames, one of which may be the largest)
    that would not fit in half the available RAM, saying what would."""
    available, largest = available_memory(), max(largest, slot_bytes)
    needs = slots_with_room_for(frames, slot_bytes, largest) * slot_bytes
    if needs > available * MAX_RAM_SHARE:
        fits = int((available * MAX_RAM_SHARE - largest) // slot_bytes) + 1
        raise FramePoolError(f"a frame buffer of {frames} frames of {slot_bytes / 1e6:.0f} MB"
                             f"{f' (one of {largest / 1e6:.0f} MB)' if largest > slot_bytes else ''} needs "
                             f"{needs / 1e9:.1f} GB, over half the available memory "
                             f"({available / 1e9:.1f} GB): use --frame-buffer {max(fits, 0)} or less"
                             + ("" if fits >= 2 else ", or a smaller --max-pixels"))


def _posix_shm():
    """POSIX shared memory (``_posixshmem``, the module ``multiprocessing.shared_memory`` uses), or
    None where the system has none (Windows)."""
    try:
        import _posixshmem
    except ImportError:
        return None
    return _posixshmem


def shared_block_supported() -> bool:
    """Whether this system can make the block: Linux's ``memfd_create`` or POSIX shared memory
    (macOS); Windows has neither (there, ``--engine single``)."""
    return hasattr(os, "memfd_create") or _posix_shm() is not None


def _anonymous_block() -> int:
    """A descriptor of a new, empty, nameless shared-memory file."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("extractor-frame-pool", os.MFD_CLOEXEC)
    shm = _posix_shm()
    if shm is None:
        raise FramePoolError("the worker pool's frame block needs shared memory (Linux's memfd_create or POSIX "
                             "shm_open): use --engine single")
    import secrets

    # At most 31 characters (macOS); named as leftovers.sweep_dead_runs knows it, should a kill
    # land between the two calls.
    name = f"/extractor_{os.getpid()}_{secrets.token_hex(4)}"
    fd = shm.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    shm.shm_unlink(name)  # nameless from here: it goes with the last process holding it
    return fd


class FramePool:
    """Owner side (the main process): creates the block, hands out and takes back slots."""

    def __init__(self, slot_bytes: int, slots: int, max_frames: int | None = None):
        """``max_frames``: frames in the block at once (all ``slots`` where not said)."""
        if slot_bytes <= 0 or slots <= 0:
            raise ValueError("frame pool needs a positive slot size and count")
        self.slot_bytes = int(slot_bytes)
        self.slots = int(slots)
        self.max_frames = int(max_frames or slots)
        size = self.slot_bytes * self.slots
        try:
            self._fd = _anonymous_block()
            os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)
        except OSError as exc:
            raise FramePoolError(f"cannot create the frame pool ({self.slots} frames, {size / 1e6:.0f} MB) in "
                                 f"shared memory: {exc.strerror or exc}; try a smaller --frame-buffer") from None
        self.address = PoolAddress(self._fd, self.slot_bytes)
        self._free = bytearray(b"\1" * self.slots)  # 1: the slot is free
        self._taken: dict[int, int] = {}  # first slot of a frame: how many slots it has
        self._changed = threading.Condition()
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.close)  # last line of defence; close() is normally called first

    def slots_for(self, nbytes: int) -> int:
        """Adjacent slots a frame of ``nbytes`` takes."""
        return max(1, -(-int(nbytes) // self.slot_bytes))

    def acquire(self, timeout: float | None = None, count: int = 1) -> int:
        """The first of ``count`` adjacent free slots; blocks (back-pressure) until frames are
        released, or while ``max_frames`` are in. Raises queue.Empty after ``timeout`` seconds."""
        if count > self.slots:
            raise ValueError(f"a frame of {count} slots does not fit in a pool of {self.slots}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while len(self._taken) >= self.max_frames or (first := self._free.find(b"\1" * count)) < 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._changed.wait(left)
            self._free[first:first + count] = bytes(count)
            self._taken[first] = count
            return first

    def release(self, slot: int) -> None:
        with self._changed:
            count = self._taken.pop(slot)
            self._free[slot:slot + count] = b"\1" * count
            self._changed.notify_all()

    @property
    def free_slots(self) -> int:
        with self._changed:
            return self._free.count(1)

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return slot_view(self._map, self.slot_bytes, slot, shape)

    def store(self, slot: int, image: np.ndarray) -> tuple[int, ...]:
        """Copy a decoded frame into its slot(s); returns the shape to send with the handle."""
        if self.slots_for(image.nbytes) > self._taken[slot]:
            raise ValueError(f"frame of {image.shape} ({image.nbytes} bytes) is larger than its pool slots "
                             f"({self._taken[slot]} of {self.slot_bytes} bytes)")
        target = self.view(slot, image.shape)
        target[...] = image
        return tuple(image.shape)

    def grow(self, slot_bytes: int, slots: int) -> None:
        """Re-cut the block into ``slots`` slots of ``slot_bytes`` (a frame larger than the slots
        has come). Only while every slot is free: no frame is in the block. Handles carry the
        slot size (``FrameRef.slot_bytes``): a worker that sees a new one maps the block again."""
        if self.free_slots != self.slots:
            raise RuntimeError("the frame pool is re-cut only while no frame is in it")
        size = max(self.slot_bytes * self.slots, slot_bytes * slots)  # never shorter: a mapping past the end faults
        try:
            os.ftruncate(self._fd, size)
            old, self._map = self._map, mmap.mmap(self._fd, size)
        except OSError as exc:
            raise FramePoolError(f"cannot grow the frame pool to {slots} frames of {slot_bytes / 1e6:.0f} MB: "
                                 f"{exc.strerror or exc}") from None
        try:
            old.close()
        except BufferError:
            pass  # a view of an earlier frame is still held: that mapping goes with it
        self.slot_bytes, self.slots, self.max_frames = int(slot_bytes), int(slots), int(slots)
        self.address = PoolAddress(self._fd, self.slot_bytes)
        with self._changed:
            self._free, self._taken = bytearray(b"\1" * self.slots), {}

    def close(self) -> None:
        """Unmap and close the block (idempotent); its memory goes with the last process mapping it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._map.close()
        except BufferError:
            logger.debug("frame pool: views still open at close; the memory goes when they do")
        os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def slot_view(buffer, slot_bytes: int, slot: int, shape) -> np.ndarray:
    """Zero-copy ndarray over one slot of the block."""
    return np.ndarray(shape, dtype=np.uint8, buffer=buffer, offset=slot * slot_bytes)


class SlotViewer:
    """Worker side: map the coordinator's block (the descriptor it was handed, kept to map the
    block again once the coordinator has re-cut and grown it) and look at slots without copying."""

    def __init__(self, address: PoolAddress):
        self.address = address
        self._map = self._open()
        self.slot_bytes = address.slot_bytes

    def _open(self) -> mmap.mmap:
        return mmap.mmap(self.address.fd, 0)  # the whole block, as large as it is now

    def view(self, slot: int, shape, slot_bytes: int = 0) -> np.ndarray:
        """The slot's frame; ``slot_bytes``: the slot size the handle was made with (the block
        was re-cut when it differs from the last one seen: it is mapped again, whole)."""
        if slot_bytes and slot_bytes != self.slot_bytes:
            self._map, self.slot_bytes = self._open(), slot_bytes
        return slot_view(self._map, self.slot_bytes, slot, tuple(shape))
