"""``make close-ups``: faces that fill the frame, with CenterFace's wider look and without.

Each annotated face of ../shared/data is cut out square around its listed box so that the box
fills half, 70 % or 90 % of the frame (a portrait, a close-up from a film, a face crop; beyond the
photo's edge the frame is mirrored), or is 1.15, 1.3 or 1.5 times the frame's side (an extreme
close-up: forehead and chin cut by the frame), at 256, 512 and 1024 px. Each frame is detected with the
wider look off and on (the default); the table gives the listed faces found, the other
detections (the neighbours' faces of a group photo, cut by the frame, are real) and detect CPU
per frame. The last row runs every annotated photo and the sample video's frames as they are:
how often the wider look runs on ordinary frames and what it adds there.
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from benchmarks.bench import DATA
from benchmarks.big_frames import annotated_photos, moved
from extractor.evaluate import match
from extractor.plugins.detect import wider_look
from extractor.stages import DetectStage, StageConfig

FILLS = (0.5, 0.7, 0.9, 1.15, 1.3, 1.5)
SIDES = (256, 512, 1024)
VIDEO = DATA / "video" / "short_hamilton_clip.mp4"


def close_up(image: np.ndarray, box: list[float], fill: float, side: int) -> tuple[np.ndarray, list[float]]:
    """A ``side`` px square around ``box`` that the box fills ``fill`` of, and the box moved there."""
    left, top, right, bottom = box
    half = max(right - left, bottom - top) / fill / 2
    x0, y0 = round((left + right) / 2 - half), round((top + bottom) / 2 - half)
    width = round(2 * half)
    margin = width  # mirrored beyond the photo's edge
    padded = cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REFLECT)
    square = padded[y0 + margin:y0 + margin + width, x0 + margin:x0 + margin + width]
    scale = side / width
    frame = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return frame, moved([box], np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]]))[0]


def ordinary_frames(photos: list) -> list[np.ndarray]:
    frames = [image for image, _ in photos]
    video = cv2.VideoCapture(str(VIDEO))
    while True:
        ok, frame = video.read()
        if not ok:
            return frames
        frames.append(frame)


def main() -> None:
    detect = DetectStage(StageConfig())
    detect.load()
    plugin = detect.plugin
    photos = annotated_photos()
    print("| faces fill | frame px | faces | wider look off: found, other detections, ms a frame | on (default) |")
    print("| --- | --- | --- | --- | --- |")
    for fill in FILLS:
        for side in SIDES:
            frames = [close_up(image, box, fill, side) for image, boxes in photos for box in boxes]
            cells = []
            for wider in (False, True):
                plugin.wider = wider
                found = other = 0
                start = time.process_time()
                for frame, box in frames:
                    faces = detect.run([frame])[0]
                    hits = len(match(faces, [box]))
                    found, other = found + hits, other + len(faces) - hits
                cpu_ms = (time.process_time() - start) / len(frames) * 1000
                cells.append(f"{found} ({found / len(frames):.3f}), {other}, {cpu_ms:.0f}")
            print(f"| {fill:.0%} | {side} | {len(frames)} | " + " | ".join(cells) + " |", flush=True)
    frames = ordinary_frames(photos)
    second_looks = []
    spots_of = wider_look.big_spots

    def counted(*args):  # the frames whose first pass asks for a wider look
        spots = spots_of(*args)
        second_looks.append(len(spots) > 0)
        return spots

    cells = []
    wider_look.big_spots = counted
    try:
        for wider in (False, True):
            plugin.wider = wider
            start = time.process_time()
            faces = sum(len(detect.run([frame])[0]) for frame in frames)
            cells.append(f"{faces} faces, {(time.process_time() - start) / len(frames) * 1000:.0f} ms a frame")
    finally:
        wider_look.big_spots = spots_of
    print(f"| ordinary frames: the annotated photos, the sample video | | {len(frames)} | {cells[0]} | "
          f"{cells[1]}; {sum(second_looks)} frames looked at again |")


if __name__ == "__main__":
    main()
