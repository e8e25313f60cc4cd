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
    """A frame in the pool: run sequence number, slot id and pixel shape."""

    seq: int
    slot: int
    shape: tuple[int, ...]


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
            _pack(face.landmarks), points, masks, identity)


def decode_face(data: tuple) -> DetectedFace:
    box, score, landmarks, points, masks, identity = data
    left, top, width, height = _unpack(box, (4,))
    face = DetectedFace(float(left), float(top), float(width), float(height), score)
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
