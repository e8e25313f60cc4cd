"""How noisy a frame is, and the smoothed frame the detector also looks at when it is noisy.

Film grain on a scanned print, a phone's high ISO in a dim room, an old video: CenterFace reads
fine detail, and on a soft picture the grain is most of it. Noise alone (a sharp photo) or
softness alone costs it no face; together they do: the annotated photos blurred a little
(sigma 1.2) with grain of 12 grey levels keep 41 of their 48 faces, made an old print (sepia,
faded, grain, scratches) 18 (``python tools/noisy_frames.py``). Seen through a slight blur the
detector finds them again (47 and 44 of 48), so a frame whose noise is at least ``NOISY`` grey
levels is also looked at smoothed, and the faces of both looks merged: smoothing would lose the
smallest faces of a small noisy frame, which the look at the frame itself keeps. The aligner
reads the frame itself.

The noise is Immerkaer's estimate (the mean absolute response to a Laplacian difference that
cancels smooth shading) in small blocks spread over the frame; edges and texture raise a
block's figure, so the level is a low percentile of the blocks': a frame's flat parts say how
noisy it is. Clean photos and the sample video read 0-3, grainy ones 4-20.
"""
from __future__ import annotations

import cv2
import numpy as np

NOISY = 4.0  # grey levels of noise from which the detector also looks at the frame smoothed
BLOCK = 16  # pixels a side of a block the noise is measured in
BLOCKS = 16  # blocks a side of the grid spread over the frame (at most 256 blocks)
FLATTEST = 10  # percentile of the blocks' figures taken as the frame's noise
SMOOTHING_PER_LEVEL = 0.15  # the blur's sigma (pixels) per grey level of noise, from LEAST_SMOOTHING to MOST
LEAST_SMOOTHING, MOST_SMOOTHING = 1.2, 2.5
LAPLACIAN_DIFFERENCE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # Immerkaer's kernel


def noise_level(image: np.ndarray) -> float:
    """The standard deviation, in grey levels, of ``image``'s noise (BGR or grey, 8-bit)."""
    side = BLOCK + 2  # a block and the ring its 3 x 3 kernel reads
    counts = [min(BLOCKS, length // side) for length in image.shape[:2]]
    if not all(counts):
        return 0.0
    rows, cols = ((np.linspace(0, length - side, count).astype(int)[:, None] + np.arange(side)).ravel()
                  for length, count in zip(image.shape[:2], counts))
    grid = image.take(rows, axis=0).take(cols, axis=1)  # the blocks side by side: under 1 ms at any size
    if grid.ndim == 3:
        grid = cv2.cvtColor(grid, cv2.COLOR_BGR2GRAY)  # the grain shows in the luminance
    response = cv2.filter2D(grid, cv2.CV_16S, LAPLACIAN_DIFFERENCE)
    inner = response.reshape(counts[0], side, counts[1], side)[:, 1:-1, :, 1:-1]  # each block's own pixels
    per_block = np.abs(inner).mean(axis=(1, 3)) * np.sqrt(np.pi / 2) / 6  # Immerkaer 1996
    return float(np.percentile(per_block, FLATTEST))


def seen_through_noise(image: np.ndarray) -> np.ndarray | None:
    """``image`` smoothed for a second look by the detector where it is noisy (``NOISY``), the
    more the noisier (a sigma of 1.2 to 2.5 pixels); None where it is not."""
    level = noise_level(image)
    if level < NOISY:
        return None
    return cv2.GaussianBlur(image, (0, 0), min(MOST_SMOOTHING, max(LEAST_SMOOTHING, level * SMOOTHING_PER_LEVEL)))
