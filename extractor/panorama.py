"""Panoramas looked at in windows of ordinary shape, as well as whole.

Detectors see a frame shrunk so that its long side fits their size (CenterFace 640 px, as
insightface and faceswap's S3FD do). A frame of ordinary shape keeps enough of its short side
that way; a phone's panorama of a group, 3 to 10 times wider than tall, does not: a 12000 x 2000
panorama seen at 640 x 107 shows its 120 px faces at 6 px, under what any detector finds
(``make panoramas``: 8 % of the faces of 8:1 panoramas found). So a frame more than ``ASPECT``
times longer than its short side, where the detector shrinks it, is also looked at in windows
of a 4:3 frame's shape along its long side, each seen as a frame of ordinary shape is.

Neighbouring windows overlap by half the short side, and a face belongs to the window whose
middle it is nearest (``Window.owns``): a face up to half the short side wide lies wholly inside
the window it belongs to, so none is found cut in two. Bigger faces are seen well by the look at
the whole frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from extractor.faces import DetectedFace

ASPECT = 2.8  # frames longer than this many times their short side (wider than any film: Ultra Panavision is 2.76:1)
WINDOW = 4 / 3  # a window's long side over the short side: a 4:3 frame
OVERLAP = 0.5  # neighbouring windows share this share of the short side
MAX_WINDOWS = 32  # at most this many windows a frame (a 20000 x 2000 panorama takes 12): longer ones then
MIN_SHORT = 32  # frames with a shorter short side get none (a strip a few pixels tall holds no face to find)


@dataclass(frozen=True)
class Window:
    """A part of a frame (frame pixels); faces centred between ``owns_from`` and ``owns_to``
    along the frame's long axis belong to it."""

    left: int
    top: int
    width: int
    height: int
    owns_from: float
    owns_to: float
    along_x: bool  # the frame is wider than tall: windows follow one another left to right

    def owns(self, face: DetectedFace) -> bool:
        centre = face.left + face.width / 2 if self.along_x else face.top + face.height / 2
        return self.owns_from <= centre < self.owns_to


def windows(height: int, width: int, detection_side: int) -> list[Window]:
    """The windows of a ``height`` x ``width`` frame that a detector seeing frames at
    ``detection_side`` (their long side; 0: at full size) should also look at; none for a frame
    of ordinary shape or one it sees at full size."""
    long, short = max(height, width), min(height, width)
    if not detection_side or long <= detection_side or long <= ASPECT * short or short < MIN_SHORT:
        return []
    overlap = short * OVERLAP
    count = min(math.ceil((long - overlap) / (round(short * WINDOW) - overlap)), MAX_WINDOWS)
    side = min(long, max(round(short * WINDOW), math.ceil((long - overlap) / count + overlap)))
    starts = np.linspace(0, long - side, count).round().astype(int)
    bounds = [0.0] + [(start + following + side) / 2 for start, following in zip(starts, starts[1:])] + [float(long)]
    if width >= height:
        return [Window(int(start), 0, side, height, bounds[i], bounds[i + 1], True) for i, start in enumerate(starts)]
    return [Window(0, int(start), width, side, bounds[i], bounds[i + 1], False) for i, start in enumerate(starts)]


def cut(image: np.ndarray, window: Window) -> np.ndarray:
    """The window's pixels, as a frame of their own."""
    return np.ascontiguousarray(image[window.top:window.top + window.height,
                                      window.left:window.left + window.width])


def to_frame(window: Window, faces: list[DetectedFace]) -> list[DetectedFace]:
    """The faces found in ``window`` (window pixels) that belong to it, in frame pixels."""
    kept = []
    for face in faces:
        face.left += window.left
        face.top += window.top
        if face.detector_points is not None:
            face.detector_points = face.detector_points + [window.left, window.top]
        if window.owns(face):
            kept.append(face)
    return kept
