"""Following faces across the frames of a video: track ids and steady landmarks (pure computation).

- ``TrackAssigner`` gives each face of a frame the id of the face it continues in the previous
  frames (the best box overlap, one face per track), or a new id; a track unseen for
  ``max_gap`` frames ends.
- ``OneEuroFilter`` smooths one track's landmarks over time (Casiez et al., CHI 2012): a low-pass
  filter whose cut-off rises with the points' speed, so a still face stops shimmering while a
  moving one is followed without lag.

The engines feed frames in input order; nothing here knows about processes or files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b`` (left, top, width,
    height rows): an ``len(a) x len(b)`` matrix."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_frame: int


@dataclass
class TrackAssigner:
    """Track ids for the faces of consecutive frames, by box overlap."""

    min_iou: float = 0.3  # below this a face starts a new track
    max_gap: int = 5  # frames a track may go unseen (a missed detection, a hand in front) and go on
    next_id: int = 0
    tracks: list[_Track] = field(default_factory=list)

    def assign(self, frame_index: int, boxes) -> list[int]:
        """The track id of each box of frame ``frame_index`` (frames in increasing order)."""
        self.tracks = [t for t in self.tracks if frame_index - t.last_frame <= self.max_gap]
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        ids = [-1] * len(boxes)
        if self.tracks and len(boxes):
            overlap = box_iou(boxes, np.stack([t.box for t in self.tracks]))
            # Greedy by overlap: the best pair first, each face and each track used once.
            used: set[int] = set()
            for face, track in sorted(np.ndindex(*overlap.shape), key=lambda ft: -overlap[ft]):
                if overlap[face, track] < self.min_iou:
                    break
                if ids[face] == -1 and track not in used:
                    ids[face] = self.tracks[track].track_id
                    used.add(track)
        for face, box in enumerate(boxes):
            if ids[face] == -1:
                ids[face] = self.next_id
                self.tracks.append(_Track(self.next_id, box, frame_index))
                self.next_id += 1
            else:
                track = next(t for t in self.tracks if t.track_id == ids[face])
                track.box, track.last_frame = box, frame_index
        return ids


class OneEuroFilter:
    """The One Euro filter over an array of points (e.g. 68 x 2 landmarks), one sample a frame.

    ``min_cutoff`` (Hz) sets the smoothing of a still face (lower: steadier), ``beta`` how fast
    the cut-off rises with speed (higher: less lag on a moving face); ``rate`` is the frame rate.
    """

    def __init__(self, rate: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, float))
        return 1.0 / (1.0 + tau * self.rate)

    def __call__(self, points) -> np.ndarray:
        points = np.asarray(points, float)
        if self.value is None:
            self.value, self.speed = points.copy(), np.zeros_like(points)
            return points.copy()
        speed = (points - self.value) * self.rate
        self.speed = self.speed + self._alpha(self.d_cutoff) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value = self.value + self._alpha(cutoff) * (points - self.value)
        return self.value.copy()
