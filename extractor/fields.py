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


COMB_BLOCK = (32, 16)  # lines and columns read of a block judged combed or not
COMB_STEP = 4  # columns: combing is in the lines; a quarter of the columns judges it as well, for less
COMB_COLUMNS = 1024  # ... and at most this many read,
COMB_BANDS = 72  # in at most this many bands of a block's lines, spread over the frame (a 4K frame: all of them)
COMB_RATIO = 1.5  # a combed block: its lines differ from their neighbours this much more than from their field's
COMB_FLOOR = 1.0  # grey levels: a block differing less is flat, not combed
COMBED_SHARE = 0.02  # a frame combed where this share of its blocks is


def combed(image: np.ndarray, share: float = COMBED_SHARE, step: int = COMB_STEP) -> bool:
    """Whether ``image`` shows combing, two fields of a moving picture woven into one frame: an
    interlaced video stored as if progressive (a broadcast or camcorder recording encoded
    without deinterlacing, or telecined film), which nothing in the file says. In a combed
    block each line differs from the lines above and below it (the other field) more than from
    the lines two above and below (its own field); in a progressive picture the nearer lines
    are the likelier. Measured (docs/accuracy.md): no frame of the sample video and no annotated
    photo combed, also encoded by H.264; 76 % of the sample video's frames woven two by two.
    Its cost is bounded whatever the image's size (``COMB_COLUMNS``, ``COMB_BANDS``). ``share``:
    of the blocks combed, at least (0: any one; a video that says it is interlaced). ``step``:
    every how many columns are read (1 for a face's surroundings: a small picture)."""
    lines, block_columns = COMB_BLOCK
    step = max(step, -(-image.shape[1] // COMB_COLUMNS))
    bands = (image.shape[0] - 4) // lines
    columns = -(-image.shape[1] // step) // block_columns
    if bands < 1 or columns < 1:
        return False
    grey = image[:, :columns * block_columns * step:step]
    grey = grey[..., 1] if grey.ndim == 3 else grey  # green: most of the luma
    if bands <= COMB_BANDS:  # every line at once (2 lines of context above and below)
        band = grey[:bands * lines + 4][None]
    else:  # a tall image: bands of a block's lines spread over it
        starts = np.linspace(0, bands - 1, COMB_BANDS).round().astype(int) * lines
        band = grey[starts[:, None] + np.arange(lines + 4)]
    band = band.astype(np.int16)
    line = band[:, 2:-2]
    across = np.abs(2 * line - band[:, 1:-3] - band[:, 3:-1])  # against the other field's lines (twice)
    within = np.abs(2 * line - band[:, :-4] - band[:, 4:])  # against its own field's (twice)

    def block_sums(values: np.ndarray) -> np.ndarray:
        return values.reshape(-1, lines, columns, block_columns).sum((1, 3), dtype=np.int32)

    across, within = block_sums(across), block_sums(within)
    flat = 2 * COMB_FLOOR * lines * block_columns
    blocks = (across > COMB_RATIO * within) & (across > flat)
    return bool(blocks.any()) and float(blocks.mean()) >= share


AROUND = 0.5  # face sizes around a face's box judged for combing (as much as its crop holds)
AROUND_SHARE = 0.03  # of the blocks around a face, combed (no annotated photo's face so; at any one block: 2 of 67)


def combed_around(image: np.ndarray, left: float, top: float, width: float, height: float) -> bool:
    """Whether the picture around a face's box shows combing: a face that moves in a still
    picture combs too little of a large frame for ``combed`` to say so of the frame."""
    margin = AROUND * max(width, height)
    top_line, left_column = (max(0, int(value - margin)) for value in (top, left))
    bottom, right = int(top + height + margin) + 1, int(left + width + margin) + 1
    return combed(image[top_line:bottom, left_column:right], share=AROUND_SHARE, step=1)
