"""A second, wider look at a frame whose first pass scored a big face as doubtful.

CenterFace was trained on WIDER FACE, whose faces are mostly small: a face that fills most of what it sees (a
close-up, a portrait, a selfie, a face crop) comes out as a big blob scored under the threshold.
Cut from ../shared/data's annotated faces so that the face's box fills 70 or 90 % of the frame
(256-1024 px), the first pass finds 98 and 85 of 108; the same frames at half the scale, all of
them. Halving every frame would cost a quarter more, so only a frame whose first pass holds a big
doubtful spot (at least ``BIG`` of the short side, scored from ``DOUBT_FROM`` up to the
threshold, on no face already found) is looked at again at half its scale, and a face found
there is kept only where it confirms such a spot: 108 and 107 of 108 (``make close-ups``). Of
the 288 annotated photos and sample-video frames, 23 were looked at again; the 5 faces that
added were all real (a man's profile at the frame's edge).
"""
from __future__ import annotations

import numpy as np

from extractor.geometry import iou

DOUBT_FROM = 0.05  # spots scored from this up to the threshold are doubtful
BIG = 0.5  # a spot this big (fraction of the view's short side) may be a close-up
FACTOR = 2  # the wider look sees the frame this many times smaller than the first
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
    return np.array([any(iou(box, spot) >= CONFIRMS for spot in spots) for box in boxes], bool)
