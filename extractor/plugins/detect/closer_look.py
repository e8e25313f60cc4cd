"""A second, sharper look at the doubtful small spots of a frame shrunk for detection.

A detector that sees a 4000 px photo shrunk to 640 px sees its 60 px faces at 10 px, under what
it finds. Running it on the whole frame at full size costs 10 times more (and more false
positives); but the shrunk pass still marks most such faces as low-scored blobs. So each small
blob scored between ``zoom_threshold`` and the detection threshold gets a tile cut from the
full-size frame around it, sized so that the blob becomes a ``TILE_FACE`` px face, and the
detector runs on the tiles; what it finds there, at its usual threshold, joins the frame's faces.
The cost is bounded (``max_tiles`` small tiles a frame), and frames shrunk by less than
``MIN_GAIN`` never get a tile. Measured on ../shared/data's photos pasted into 3000 x 2250
frames: recall 0.361 -> 0.944 with no false positive (README, "Small faces in big photos").
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TILE = 160  # side of a tile, in pixels the detector sees
TILE_FACE = 40.0  # pixels a doubtful spot's face gets in its tile
MAX_ZOOM = 1.0  # tiles never enlarge the frame (enlarged by 1.5, the same faces were found)
MIN_GAIN = 1.5  # a tile is worth cutting when it is this much sharper than the shrunk frame
MAX_SPOT = 24  # spots up to this size (shrunk-frame pixels): bigger faces were seen well enough
SAME_TILE = 0.6  # a spot this near another tile's centre (in its half sides) is looked at there
EDGE = 0.1  # faces centred this near a tile's edge (fraction of its side) are left to other tiles


@dataclass(frozen=True)
class Tile:
    """A square of the frame (frame pixels: top-left corner and side), seen at ``TILE`` px."""

    left: int
    top: int
    side: int

    @property
    def zoom(self) -> float:
        """Tile pixels per frame pixel."""
        return TILE / self.side

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.left, self.top]) + self.side / 2

    def covers(self, centre: np.ndarray, zoom: float) -> bool:
        """Whether a spot at ``centre`` (frame pixels) needing ``zoom`` is looked at in this tile."""
        near = np.abs(centre - self.centre).max() < SAME_TILE * self.side / 2
        return near and abs(self.zoom - zoom) < zoom / 2


def tiles_for(spots: np.ndarray, sure: np.ndarray, scale: float, max_tiles: int) -> list[Tile]:
    """Tiles around the doubtful ``spots`` (boxes ``[l, t, r, b, score]`` in the shrunk frame,
    best first) that lie in no ``sure`` face, one tile for spots close together."""
    tiles: list[Tile] = []
    for left, top, right, bottom, _ in spots:
        side = max(right - left, bottom - top)
        centre = np.array([left + right, top + bottom]) / 2
        if not 1 <= side <= MAX_SPOT or any(b[0] <= centre[0] <= b[2] and b[1] <= centre[1] <= b[3] for b in sure):
            continue
        zoom = min(TILE_FACE * scale / side, MAX_ZOOM)
        if zoom < MIN_GAIN * scale:
            continue  # the frame was shrunk too little for a tile to show more
        centre = centre / scale
        if any(tile.covers(centre, zoom) for tile in tiles):
            continue
        tile_side = round(TILE / zoom)
        tiles.append(Tile(round(centre[0] - tile_side / 2), round(centre[1] - tile_side / 2), tile_side))
        if len(tiles) == max_tiles:
            break
    return tiles


def cut(image: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's pixels, shrunk as the frame is for detection (area interpolation); black beyond
    the frame, as the detector's padding is."""
    height, width = image.shape[:2]
    left, top = max(tile.left, 0), max(tile.top, 0)
    right, bottom = min(tile.left + tile.side, width), min(tile.top + tile.side, height)
    square = np.zeros((tile.side, tile.side, image.shape[2]), image.dtype)
    if right > left and bottom > top:
        square[top - tile.top:bottom - tile.top, left - tile.left:right - tile.left] = image[top:bottom, left:right]
    return cv2.resize(square, (TILE, TILE), interpolation=cv2.INTER_AREA)


def to_frame(tile: Tile, boxes: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(n, 5)`` and points ``(n, 5, 2)`` found in ``tile``, in frame pixels; faces centred
    at the tile's edge (cut off by it) are dropped."""
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
    inside = ((centres > TILE * EDGE) & (centres < TILE * (1 - EDGE))).all(axis=1)
    boxes, points = boxes[inside].copy(), points[inside]
    origin = np.array([tile.left, tile.top], np.float32)
    boxes[:, :4] = boxes[:, :4] / np.float32(tile.zoom) + np.tile(origin, 2)
    return boxes, (points / np.float32(tile.zoom) + origin).astype(np.float32)
