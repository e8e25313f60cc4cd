"""Small messages between pool processes: frame handles and compact faces, never pixels.

A face crosses a queue as a tuple of raw bytes (float32 box and points, zlib-packed masks),
under 1 KB, instead of its dict form: the coordinator turns it back into a ``DetectedFace``.
``FrameRef`` and ``FaceTask`` go on the queues as plain tuples (``to_wire``): a named tuple
would pickle its class path in every message.
"""
from __future__ import annotations

import pickle
from typing import NamedTuple

import numpy as np

from extractor.faces import DetectedFace, Mask


class FrameRef(NamedTuple):
    """A frame in the pool: run sequence number, slot id, pixel shape, its index in the input
    (a tracking detector follows faces from one video frame to the next) and the pool's slot size
    when it was stored (the pool is re-cut for larger frames; 0: the size the worker knows)."""

    seq: int
    slot: int
    shape: tuple[int, ...]
    index: int = -1
    slot_bytes: int = 0


class FaceTask(NamedTuple):
    """One face on its way through align and mask: where its frame is, which face, the face."""

    frame: FrameRef
    face_index: int
    face: tuple

    def to_wire(self) -> tuple:
        return (tuple(self.frame), self.face_index, self.face)

    @classmethod
    def from_wire(cls, data: tuple) -> "FaceTask":
        return cls(FrameRef(*data[0]), data[1], data[2])


# --- what workers tell the coordinator (the result queue) --------------------------------------

class Started(NamedTuple):
    """A worker has opened its queues (their semaphore names can go)."""
    label: str
    pid: int


class Ready(NamedTuple):
    """A worker has loaded its models; ``mismatch``: None, or the line saying that a worker
    planned on a GPU has a framework that does not see it."""
    label: str
    pid: int
    mismatch: str | None


class Busy(NamedTuple):
    """A worker starts a batch of ``items`` from these frames (named if it dies on them)."""
    label: str
    seqs: list
    items: int


class Detected(NamedTuple):
    """The detector found ``count`` faces on frame ``seq`` (they follow as FaceTasks)."""
    seq: int
    count: int


class FaceDone(NamedTuple):
    """A face has been through every stage."""
    seq: int
    face_index: int
    face: tuple


class Skipped(NamedTuple):
    """A stage could not process a face (``face_index``) or a whole frame (``face_index`` None)."""
    seq: int
    face_index: int | None
    reason: str


class Failed(NamedTuple):
    """A worker stopped on an exception (``trace``) while on these frames."""
    label: str
    seqs: list
    trace: str


class Stats(NamedTuple):
    """A worker's last word: pickled bytes and messages it sent, seconds busy, and (a detect
    worker) the faces it found that --min-size/--max-size left out."""
    label: str
    bytes_sent: int
    messages: int
    busy_seconds: float
    pid: int
    outside_size_limits: int = 0


class Logged(NamedTuple):
    """A log record of a worker (its level, logger name and text), for the coordinator's log:
    a worker has no terminal or log file of its own."""
    label: str
    level: int
    logger: str
    text: str


RESULT_KINDS = (Started, Ready, Busy, Detected, FaceDone, Skipped, Failed, Stats, Logged)
_KIND_NUMBER = {kind: number for number, kind in enumerate(RESULT_KINDS)}


def to_wire(message: NamedTuple) -> tuple:
    """A result message as a plain tuple with a small kind number (no class path pickled)."""
    return (_KIND_NUMBER[type(message)], *message)


def from_wire(data: tuple) -> NamedTuple:
    return RESULT_KINDS[data[0]](*data[1:])


def _pack(array) -> bytes | None:
    return None if array is None else np.asarray(array, dtype=np.float32).tobytes()


def _unpack(data: bytes | None, shape) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, dtype=np.float32).reshape(shape).astype(np.float64)


def encode_face(face: DetectedFace) -> tuple:
    masks = {name: (mask.packed(), mask.stored_size, _pack(mask.affine))
             for name, mask in face.masks.items()}
    points = None if face.detector_points is None else (_pack(face.detector_points), len(face.detector_points))
    identity = {name: _pack(vector) for name, vector in face.identity.items()}
    return (_pack([face.left, face.top, face.width, face.height]), float(face.score),
            _pack(face.landmarks), points, masks, identity, face.quality)


def decode_face(data: tuple) -> DetectedFace:
    box, score, landmarks, points, masks, identity, quality = data
    left, top, width, height = _unpack(box, (4,))
    face = DetectedFace(float(left), float(top), float(width), float(height), score)
    face.quality = quality
    face.landmarks = _unpack(landmarks, (68, 2))
    if points is not None:
        face.detector_points = _unpack(points[0], (points[1], 2))
    for name, (packed, size, affine) in masks.items():
        face.masks[name] = Mask.from_packed(packed, size, _unpack(affine, (2, 3)))
    face.identity = {name: np.frombuffer(vector, dtype=np.float32).copy() for name, vector in identity.items()}
    return face


def pickled_size(message) -> int:
    """Bytes a queue sends for ``message`` (what multiprocessing pickles)."""
    return len(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
