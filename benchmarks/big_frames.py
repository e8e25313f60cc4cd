"""``make big-frames``: small faces in big frames, with CenterFace's closer look and without.

Three kinds of frame, built from ../shared/data's annotated photos (ground truth moved to match):
each photo alone in the middle of a grey frame 3000 to 8000 px wide (its faces become 0.2 to 1.5 %
of the frame's side), and mosaics of the photos (4x4 and 5x5 grids, each photo at most its own
size) filling 3000 and 4000 px frames, like a group photo where small faces are everywhere and so
are doubtful spots, and denser ones (8x8 to 12x12 in 4000-8000 px frames: crowds of 360-800 faces);
and each photo scaled so that its faces are 24-48 px, alone in 4K UHD and 2880 x 1620 video frames.
Each frame is detected with ``zoom_tiles`` 0 (the shrunk frame alone), 64 and 512 (the default),
and with ``fine_from`` 0 (no finer view at all: neither that of frames over 3840 px nor that of
frames over 2560 px whose view shows no big face); the table gives faces found,
detections not in the lists and detect CPU per frame.
"""
from __future__ import annotations

import json
import time
from functools import partial
from typing import Callable

import cv2
import numpy as np

from benchmarks.bench import DATA
from benchmarks.robustness import _in_canvas
from extractor.evaluate import find_annotation_files, match
from extractor.geometry import transform_points
from extractor.stages import DetectStage, StageConfig

TILE_CAPS = (0, 64, 512)


def annotated_photos() -> list[tuple[np.ndarray, list[list[float]]]]:
    photos = []
    for listing in find_annotation_files(DATA):
        for entry in json.loads(listing.read_text())["images"]:
            image = cv2.imread(str(listing.parent / entry["file"])) if entry.get("faces") else None
            if image is not None:
                photos.append((image, [face["box"] for face in entry["faces"]]))
    return photos


def moved(boxes: list, matrix: np.ndarray) -> list[list[float]]:
    """``[l, t, r, b]`` boxes through a 2x3 scale-and-shift matrix (their corners move with it)."""
    return transform_points(np.reshape(boxes, (-1, 2)), matrix).reshape(-1, 4).tolist()


def mosaic(photos: list, width: int, columns: int, seed: int) -> tuple[np.ndarray, list]:
    """A 4:3 frame ``width`` wide, a grid of ``columns`` x ``columns`` photos in random order."""
    height = width * 3 // 4
    frame = np.full((height, width, 3), (90, 110, 100), np.uint8)
    cell_width, cell_height = width // columns, height // columns
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(photos)), columns * columns))
    truths = []
    for cell, index in enumerate(order):
        image, boxes = photos[index]
        scale = min(1.0, cell_width / image.shape[1], cell_height / image.shape[0])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        left, top = (cell % columns) * cell_width, (cell // columns) * cell_height
        frame[top:top + image.shape[0], left:left + image.shape[1]] = image
        truths += moved(boxes, np.array([[scale, 0, left], [0, scale, top]]))
    return frame, truths


def scaled_alone(image: np.ndarray, boxes: list, face_px: int, width: int, height: int) -> tuple[np.ndarray, list]:
    """The photo scaled so that its faces are ``face_px`` wide (the median), in the middle of a
    grey ``width`` x ``height`` frame (a video frame's size)."""
    scale = face_px / float(np.median([box[2] - box[0] for box in boxes]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.full((height, width, 3), 128, np.uint8)
    top, left = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
    frame[top:top + image.shape[0], left:left + image.shape[1]] = image
    return frame, moved(boxes, np.array([[scale, 0, left], [0, scale, top]]))


def behind_a_big_face(photos: list, big: np.ndarray, width: int, face_px: int) -> tuple[np.ndarray, list]:
    """A 3:2 photo ``width`` wide: ``big`` (a photo of a big face) fills its left half, the other
    photos, scaled so that their faces are ``face_px`` wide, fill rows on its right (people far
    behind someone close). Only the small faces are listed."""
    height = width * 2 // 3
    frame = np.full((height, width, 3), (90, 110, 100), np.uint8)
    front = cv2.resize(big, None, fx=height / big.shape[0], fy=height / big.shape[0], interpolation=cv2.INTER_AREA)
    frame[:, :min(width // 2, front.shape[1])] = front[:, :width // 2]
    truths, left, top, row = [], width // 2 + 10, 10, 0
    for image, boxes in photos:
        scale = face_px / float(np.median([box[2] - box[0] for box in boxes]))
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if image.shape[1] > width // 2 - 20 or image.shape[0] > height // 2:
            continue
        if left + image.shape[1] > width:
            left, top, row = width // 2 + 10, top + row + 5, 0
        if top + image.shape[0] > height:
            break
        frame[top:top + image.shape[0], left:left + image.shape[1]] = image
        truths += moved(boxes, np.array([[scale, 0, left], [0, scale, top]]))
        left, row = left + image.shape[1] + 5, max(row, image.shape[0])
    return frame, truths


def frame_sets(photos: list) -> dict[str, list]:
    sets = {}
    for width, height in ((3840, 2160), (2880, 1620)):  # 4K UHD and 3K video frames
        for face_px in (24, 32, 40, 48):
            sets[f"faces of {face_px} px, each photo alone in {width} x {height}"] = [
                scaled_alone(image, boxes, face_px, width, height) for image, boxes in photos]
    for side in (3000, 4000, 5000, 6000, 8000):
        sets[f"each photo alone in a {side} px frame"] = [(frame, moved(boxes, matrix)) for image, boxes in photos
                                                          for frame, matrix in [_in_canvas(image, side)]]
    for width, columns in ((3000, 4), (4000, 4), (4000, 5), (4000, 8), (6000, 10), (8000, 12)):
        sets[f"mosaics {columns}x{columns} in {width} px (2 frames)"] = [mosaic(photos, width, columns, seed)
                                                                         for seed in (0, 1)]
    return sets


def print_table(detect: DetectStage, sets: dict[str, list], variants: dict[str, Callable[[], None]]) -> None:
    """A markdown table: a row for each set of (frame, listed boxes), a cell for each variant
    (``variants[name]()`` sets it up): faces found, detections not listed, detect CPU ms a frame."""
    print("| frames | faces | " + " | ".join(f"{name}: found, not listed, detect CPU ms a frame"
                                              for name in variants) + " |")
    print("| --- | --- |" + " --- |" * len(variants))
    for name, frames in sets.items():
        total, cells = sum(len(truths) for _, truths in frames), []
        for set_up in variants.values():
            set_up()
            found = extra = 0
            start = time.process_time()
            for frame, truths in frames:
                faces = detect.run([frame])[0]
                pairs = len(match(faces, truths))
                found, extra = found + pairs, extra + len(faces) - pairs
            cpu_ms = (time.process_time() - start) / len(frames) * 1000
            cells.append(f"{found} ({f'{found / total:.3f}' if total else '-'}), {extra}, {cpu_ms:.0f}")
        print(f"| {name} | {total} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    detect = DetectStage(StageConfig())
    detect.load()
    plugin = detect.plugin
    variants = {f"zoom_tiles {cap}": partial(vars(plugin).update, zoom_tiles=cap, fine_from=plugin.fine_from)
                for cap in TILE_CAPS}
    variants["fine_from 0"] = partial(vars(plugin).update, zoom_tiles=TILE_CAPS[-1], fine_from=0)
    print_table(detect, frame_sets(annotated_photos()), variants)


if __name__ == "__main__":
    main()
