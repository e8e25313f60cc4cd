"""``make panoramas``: faces in panoramas (frames several times wider than tall, or taller than wide).

A phone's panorama of a group is 3 to 10 times wider than tall. Shrunk for detection so that its
long side fits the detector's size, its faces shrink with it: a 12000 x 2000 panorama seen at 640
x 107 shows a 120 px face at 6 px. Built from ../shared/data's annotated photos (ground truth
moved to match): the photos side by side at their own size (each at most ``height`` tall) on a
grey strip ``aspect`` times as wide as it is tall, in random order, and photos stacked in a
frame four times as tall as wide. Each frame is detected by the default detector, seen whole only and with its windows
(``extractor/panorama.py``); the table gives faces found, detections not in the lists, and detect
CPU per frame.
"""
from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from benchmarks.big_frames import annotated_photos, moved, print_table
from extractor import panorama
from extractor.stages import DetectStage, StageConfig

GREY = (90, 110, 100)


def strip(photos: list, height: int, aspect: float, seed: int) -> tuple[np.ndarray, list]:
    """A grey frame ``aspect`` times as wide as ``height``, photos side by side (random order)."""
    width = round(height * aspect)
    frame = np.full((height, width, 3), GREY, np.uint8)
    order = np.random.default_rng(seed).permutation(len(photos))
    truths, left, gap = [], 0, height // 10
    for index in np.resize(order, 4 * len(photos)):
        image, boxes = photos[index]
        scale = min(1.0, height / image.shape[0])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if left + image.shape[1] > width:
            break
        top = (height - image.shape[0]) // 2
        frame[top:top + image.shape[0], left:left + image.shape[1]] = image
        truths += moved(boxes, np.array([[scale, 0, left], [0, scale, top]]))
        left += image.shape[1] + gap
    return frame, truths


def frame_sets(photos: list) -> dict[str, list]:
    sets = {}
    for height, aspect in ((1080, 3), (2000, 3), (2000, 5), (2000, 8), (3000, 6)):
        sets[f"{aspect}:1, {round(height * aspect)} x {height} (2 frames)"] = [strip(photos, height, aspect, seed)
                                                                              for seed in (0, 1)]
    return sets


def column(photos: list, width: int, aspect: float, seed: int) -> tuple[np.ndarray, list]:
    """A grey frame ``aspect`` times as tall as ``width``, photos stacked (random order): the strip
    of the photos transposed, transposed back."""
    def transposed(boxes: list) -> list:
        return [[top, left, bottom, right] for left, top, right, bottom in boxes]

    frame, truths = strip([(image.transpose(1, 0, 2), transposed(boxes)) for image, boxes in photos],
                          width, aspect, seed)
    return np.ascontiguousarray(frame.transpose(1, 0, 2)), transposed(truths)


def main() -> None:
    detect = DetectStage(StageConfig())
    detect.load()
    photos = annotated_photos()
    sets = frame_sets(photos)
    sets["1:4, 1500 x 6000, stacked (2 frames)"] = [column(photos, 1500, 4, seed) for seed in (0, 1)]
    print_table(detect, sets, {"seen whole only": partial(setattr, panorama, "ASPECT", float("inf")),
                               "with windows (default)": partial(setattr, panorama, "ASPECT", panorama.ASPECT)})


if __name__ == "__main__":
    main()
