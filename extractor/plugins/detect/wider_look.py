"""A second, wider look at a frame whose first pass scored a big face as doubtful.

CenterFace was trained on WIDER FACE, whose faces are mostly small: a face that fills most of what it sees (a
close-up, a portrait, a selfie, a face crop) comes out as a big blob scored under the threshold.
Cut from ../shared/data's annotated faces so that the face's box fills 70 or 90 % of the frame
(256-1024 px), the first pass finds 98 and 85 of 108; the same frames at half the scale, all of
them. Looking at every frame again would cost a quarter more or worse, so only a frame whose
first pass holds a big doubtful spot (at least ``BIG`` of the short side, scored from
``DOUBT_FROM`` up to the threshold, on no face already found) is looked at again, and a face
found there is kept only where it confirms such a spot.

The second look sees the frame at a third of its first scale inside a black margin half its
side (``framed``): a face cut by the frame's edges (a film's extreme close-up, a tight crop)
is found far more often when the cut lies inside what the network sees than on its border.
``make close-ups`` (every annotated face, 256-1024 px frames): faces filling 70 and 90 % all
found as before; boxes 1.15, 1.3 and 1.5 times the frame's side (forehead and chin cut) 144 of
324 found by half the scale without a margin, 232 so; no other detection added.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.geometry import iou, overlapping

DOUBT_FROM = 0.05  # spots scored from this up to the threshold are doubtful
BIG = 0.5  # a spot this big (fraction of the view's short side) may be a close-up
FACTOR = 3  # the wider look sees the frame this many times smaller than the first
MARGIN = 0.5  # ... inside a black margin this share of its long side on every side
CONFIRMS = 0.3  # a face found in the wider look keeps only where it overlaps a big spot this much (IoU)


def big_spots(boxes: np.ndarray, threshold: float, height: int, width: int) -> np.ndarray:
    """The big doubtful spots among the first pass's ``boxes`` (``[l, t, r, b, score]``, decoded from
    ``DOUBT_FROM`` in a ``height`` x ``width`` view) that lie on no face found there."""
    sure = boxes[boxes[:, 4] >= threshold]
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    big = boxes[(boxes[:, 4] < threshold) & (side >= BIG * min(height, width))]
    return np.array([spot for spot in big if all(iou(spot, face) <= CONFIRMS for face in sure)],
                    np.float32).reshape(-1, 5)


def side_for(height: int, width: int) -> int:
    """Long side of the wider view of a frame first seen at ``height`` x ``width``."""
    return max(1, round(max(height, width) / FACTOR))


def confirming(boxes: np.ndarray, spots: np.ndarray) -> np.ndarray:
    """Which of the wider look's ``boxes`` overlap one of the ``spots`` (both in frame pixels)."""
    return overlapping(boxes, spots, CONFIRMS)


def framed(view: np.ndarray) -> tuple[np.ndarray, int]:
    """``view`` inside a black margin of ``MARGIN`` times its long side on every side, and that
    margin in pixels (subtract it from what is found there)."""
    pad = round(MARGIN * max(view.shape[:2]))
    return cv2.copyMakeBorder(view, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad
