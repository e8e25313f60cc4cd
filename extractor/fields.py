"""Interlaced video frames as a player shows them (pure computation).

An interlaced video (a DVD's, broadcast 1080i, a DV camcorder's) stores each frame as two fields
taken a field apart in time, its even lines and its odd ones; decoded whole (FFmpeg's frames,
faceswap's), a moving face is combed, and the detector misses many such faces. Players
deinterlace. The detector looks at one field, its lines between interpolated (``one_field``: a
"bob"), a picture from one moment.
"""
from __future__ import annotations

import numpy as np


def one_field(image: np.ndarray) -> np.ndarray:
    """``image``'s top field (its even lines), each odd line the mean of the lines above and
    below it (the last one repeated at the bottom): the frame as one moment shows it."""
    if image.shape[0] < 2:
        return image
    field = image[0::2].astype(np.uint16)
    below = np.concatenate([field[1:], field[-1:]])
    out = image.copy()
    out[1::2] = ((field + below + 1) // 2)[:out[1::2].shape[0]].astype(image.dtype)
    return out


COMB_BLOCK = (32, 64)  # rows and columns of a block judged combed or not (every fourth column read)
COMB_STEP = 4  # columns: combing is in the lines; a quarter of the columns judge it as well, in an eighth of the time
COMB_RATIO = 1.5  # a combed block: its lines differ from their neighbours this much more than from their field's
COMB_FLOOR = 1.0  # grey levels: a block differing less is flat, not combed
COMBED_SHARE = 0.02  # a frame combed where this share of its blocks is
ACROSS_FIELDS = np.array([[-0.5], [1.0], [-0.5]], np.float32)  # a line against the lines above and below it
WITHIN_FIELD = np.array([[-0.5], [0.0], [1.0], [0.0], [-0.5]], np.float32)  # ... against its own field's


def combed(image: np.ndarray) -> bool:
    """Whether ``image`` shows combing, two fields of a moving picture woven into one frame: an
    interlaced video stored as if progressive (a broadcast or camcorder recording encoded
    without deinterlacing, or telecined film), which nothing in the file says. In a combed
    block each line differs from the lines above and below it (the other field) more than from
    the lines two above and below (its own field); in a progressive picture the nearer lines
    are the likelier. Measured (docs/accuracy.md): no frame of the sample video and no annotated
    photo combed, also encoded by H.264; 76 % of the sample video's frames woven two by two."""
    import cv2

    grey = np.ascontiguousarray(image[:, ::COMB_STEP, 1] if image.ndim == 3 else image[:, ::COMB_STEP])
    rows, columns = grey.shape[0] // COMB_BLOCK[0], grey.shape[1] // (COMB_BLOCK[1] // COMB_STEP)
    if not rows or not columns:
        return False

    def block_means(kernel: np.ndarray) -> np.ndarray:
        differences = np.abs(cv2.filter2D(grey, cv2.CV_32F, kernel))
        whole = differences[:rows * COMB_BLOCK[0], :columns * (COMB_BLOCK[1] // COMB_STEP)]
        return cv2.resize(whole, (columns, rows), interpolation=cv2.INTER_AREA)

    across, within = block_means(ACROSS_FIELDS), block_means(WITHIN_FIELD)
    return float(((across > COMB_RATIO * within) & (across > COMB_FLOOR)).mean()) >= COMBED_SHARE
