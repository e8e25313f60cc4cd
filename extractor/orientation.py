"""EXIF orientation: where the pixels of an upright photo lie in the file as it is stored.

extractor decodes photos upright (EXIF orientation applied, as viewers show them), and its own
outputs (alignments records, previews) are in those upright pixels. faceswap reads a photo as
stored, without applying EXIF, so everything written for faceswap (face PNG headers, ``.fsa``)
is moved into the stored pixels with the matrices here. Mirrored orientations (2, 4, 5, 7) also
swap left and right, so the 68 landmarks are renumbered to stay a valid face annotation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ORIENTATION_TAG = 0x0112
MIRRORED = {2, 4, 5, 7}

# iBUG 68-point index of each point's mirror image (jaw, brows, nose, eyes, lips).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def upright_to_stored(orientation: int, upright_shape) -> np.ndarray:
    """2x3 matrix from upright pixel coordinates to the coordinates of the same point in the
    image as stored (pixel centres on integers; orientation 1 or unknown: identity)."""
    height, width = upright_shape[:2]
    if orientation in (5, 6, 7, 8):  # stored on its side: the stored width is the upright height
        width, height = height, width
    w, h = width - 1, height - 1  # stored image's last column and row
    return np.array({
        2: [[-1, 0, w], [0, 1, 0]],
        3: [[-1, 0, w], [0, -1, h]],
        4: [[1, 0, 0], [0, -1, h]],
        5: [[0, 1, 0], [1, 0, 0]],
        6: [[0, 1, 0], [-1, 0, h]],
        7: [[0, -1, w], [-1, 0, h]],
        8: [[0, -1, w], [1, 0, 0]],
    }.get(orientation, [[1, 0, 0], [0, 1, 0]]), dtype=np.float64)


def stored_shape(orientation: int, upright_shape) -> tuple[int, int]:
    """(height, width) of the image as stored."""
    height, width = upright_shape[:2]
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def move_landmarks(landmarks: np.ndarray, orientation: int, matrix: np.ndarray) -> np.ndarray:
    """The 68 landmarks moved by ``matrix`` (upright to stored, or back), renumbered when the
    orientation mirrors the image."""
    points = np.asarray(landmarks, np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return points[MIRROR_68] if orientation in MIRRORED else points


def move_box(box_ltwh, matrix: np.ndarray) -> list[float]:
    """A ``left, top, width, height`` box moved by ``matrix`` (its corners moved, then spanned)."""
    left, top, width, height = box_ltwh
    corners = np.array([[left, top], [left + width, top + height]], np.float64) @ matrix[:, :2].T + matrix[:, 2]
    low, high = corners.min(0), corners.max(0)
    return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]


def exif_orientation(path: str) -> int:
    """The EXIF orientation (1-8) of a photo, read from its header; 1 when it has none, is not a
    photo or cannot be read. Read again where outputs are made, so that frame messages between
    processes stay the same in every engine (a header read: well under a millisecond)."""
    from PIL import Image

    from extractor.images import opened_quietly
    from extractor.sources import IMAGE_EXTENSIONS

    if not path or Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        return 1
    try:
        with opened_quietly(path) as image:
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 1
    return orientation if orientation in range(1, 9) else 1
