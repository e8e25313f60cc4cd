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
