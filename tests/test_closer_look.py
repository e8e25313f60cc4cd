"""Which tiles a shrunk frame's doubtful spots get, and how tiles map back (pure geometry)."""
from __future__ import annotations

import numpy as np

from extractor.plugins.detect.closer_look import MAX_ZOOM, TILE, Tile, cut, tiles_for, to_frame


def spot(x: float, y: float, side: float = 8, score: float = 0.2) -> list[float]:
    return [x - side / 2, y - side / 2, x + side / 2, y + side / 2, score]


def test_a_small_doubtful_spot_gets_a_tile_centred_on_it_at_full_size():
    scale = 0.2  # a 3200 px frame seen at 640
    (tile,) = tiles_for(np.array([spot(100, 50)]), np.zeros((0, 5)), scale, 12)
    assert np.allclose(tile.centre, [500, 250], atol=1)
    assert tile.zoom <= MAX_ZOOM and abs(8 / scale * tile.zoom - 40) < 2  # its face about 40 px in the tile


def test_spots_in_sure_faces_too_big_or_barely_shrunk_get_none():
    sure = np.array([[90, 40, 130, 80, 0.9]])
    assert tiles_for(np.array([spot(100, 50)]), sure, 0.2, 12) == []  # a part of a face already found
    assert tiles_for(np.array([spot(300, 50, side=60)]), np.zeros((0, 5)), 0.2, 12) == []  # seen well enough
    assert tiles_for(np.array([spot(300, 50)]), np.zeros((0, 5)), 0.9, 12) == []  # a tile shows nothing more


def test_close_spots_share_a_tile_and_tiles_are_capped():
    spots = np.array([spot(100, 50), spot(103, 52), spot(300, 200), spot(500, 300), spot(600, 100)])
    assert len(tiles_for(spots, np.zeros((0, 5)), 0.2, 12)) == 4
    assert len(tiles_for(spots, np.zeros((0, 5)), 0.2, 2)) == 2


def test_tile_pixels_and_boxes_map_back_to_the_frame():
    frame = np.zeros((1000, 1000, 3), np.uint8)
    frame[400:420, 600:620] = 255  # a white square
    tile = Tile(left=560, top=360, side=320)  # zoom 0.5
    pixels = cut(frame, tile)
    assert pixels.shape == (TILE, TILE, 3)
    rows, cols = np.nonzero(pixels[..., 0] > 128)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 29, 20, 29)
    boxes, points = to_frame(tile, np.array([[20, 20, 30, 30, 0.9], [0, 0, 6, 6, 0.9]], np.float32),
                             np.full((2, 5, 2), 25, np.float32))
    assert np.allclose(boxes, [[600, 400, 620, 420, 0.9]]) and np.allclose(points, [610, 410])  # the edge face dropped
    corner = cut(frame, Tile(left=-100, top=-100, side=320))  # beyond the frame: black
    assert corner.shape == (TILE, TILE, 3) and not corner.any()
