"""Two ways tried to find more close-ups, and what they cost.

The frames of ``make close-ups`` (each annotated face cut square so that its box fills 90 % of
the frame, or is 1.15-1.5 times its side: forehead and chin cut), at 256, 512 and 1024 px:
1. BlazeFace full-range as a second opinion: faces found by CenterFace (the default, its wider
   look on), by BlazeFace, and by CenterFace else BlazeFace where CenterFace found none; then
   what BlazeFace finds on the ordinary frames (the annotated photos, the sample video) where
   CenterFace finds none;
2. the wider look asked for by fainter big spots (``wider_look.DOUBT_FROM`` 0.02 instead of
   0.05): close-ups found, and on the ordinary frames the faces, the frames looked at again and
   the detect CPU a frame (one thread, alternating rounds);
3. (``--margins``, 2 min, alone) what fills the wider look's margin: black (``wider_look.framed``),
   mid-grey, the frame's mean colour, its edges replicated or mirrored: close-ups found, and the
   faces of the ordinary frames.
Record: docs/accuracy.md ("Faces that fill the frame"). Run: .venv/bin/python tools/close_up_variants.py (8 min).
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: F401,E402  (the repository on the path)

from benchmarks.close_ups import annotated_photos, close_up, ordinary_frames  # noqa: E402
from extractor.evaluate import match  # noqa: E402
from extractor.plugins.detect import wider_look  # noqa: E402
from extractor.stages import DetectStage, StageConfig  # noqa: E402

FILLS, SIDES = (0.9, 1.15, 1.3, 1.5), (256, 512, 1024)


def second_opinion(centerface: DetectStage, photos: list) -> None:
    blazeface = DetectStage(StageConfig(detector="blazeface"))
    blazeface.load()
    for fill in FILLS:
        for side in SIDES:
            frames = [close_up(image, box, fill, side) for image, boxes in photos for box in boxes]
            by_centerface = by_blazeface = either = other = 0
            for frame, box in frames:
                first, second = centerface.run([frame])[0], blazeface.run([frame])[0]
                hit_first, hit_second = bool(match(first, [box])), bool(match(second, [box]))
                by_centerface, by_blazeface = by_centerface + hit_first, by_blazeface + hit_second
                either += hit_first or (not first and hit_second)
                other += len(second) - hit_second
            print(f"box {fill:.0%} of a {side} px frame: CenterFace {by_centerface}, BlazeFace {by_blazeface} "
                  f"({other} other detections), CenterFace else BlazeFace {either} of {len(frames)}", flush=True)
    faceless = [frame for frame in ordinary_frames(photos) if not centerface.run([frame])[0]]
    print(f"ordinary frames CenterFace finds no face in: {len(faceless)}, BlazeFace's detections there: "
          f"{sum(len(blazeface.run([frame])[0]) for frame in faceless)}")


def close_ups_found(centerface: DetectStage, photos: list, fill: float, sides) -> int:
    """How many of the annotated faces, each cut as a close-up filling ``fill`` of frames of
    each of ``sides`` px, the detector finds."""
    return sum(bool(match(centerface.run([frame])[0], [box])) for frame, box in
               (close_up(image, box, fill, side) for side in sides for image, boxes in photos for box in boxes))


def fainter_spots(centerface: DetectStage, photos: list) -> None:
    ordinary = ordinary_frames(photos)
    spots_of, looked = wider_look.big_spots, []

    def counted(*args):
        spots = spots_of(*args)
        looked.append(len(spots) > 0)
        return spots

    default = wider_look.DOUBT_FROM
    wider_look.big_spots = counted
    try:
        for doubt in (default, 0.02) * 2:
            wider_look.DOUBT_FROM = doubt
            looked.clear()
            start = time.process_time()
            faces = sum(len(centerface.run([frame])[0]) for frame in ordinary)
            cpu_ms = (time.process_time() - start) / len(ordinary) * 1000
            again = sum(looked)
            found = [close_ups_found(centerface, photos, fill, (side,)) for fill in FILLS for side in SIDES]
            print(f"big spots from {doubt}: close-ups found {found} (of 36 each: {FILLS} x {SIDES}), "
                  f"{sum(found)} in all; ordinary frames: {faces} faces, {again} of {len(ordinary)} looked at "
                  f"again, {cpu_ms:.1f} detect CPU ms a frame", flush=True)
    finally:
        wider_look.big_spots, wider_look.DOUBT_FROM = spots_of, default


def margin_of(kind: str):
    """``wider_look.framed`` with its margin filled otherwise: ``kind`` grey, mean, replicated or
    mirrored (out to the frame's own side, black beyond)."""
    def framed(view: np.ndarray) -> tuple[np.ndarray, int]:
        pad = round(wider_look.MARGIN * max(view.shape[:2]))
        if kind in ("replicated", "mirrored"):
            inner = min(pad, min(view.shape[:2]) - 1)
            edge = cv2.BORDER_REPLICATE if kind == "replicated" else cv2.BORDER_REFLECT_101
            view, pad_left = cv2.copyMakeBorder(view, inner, inner, inner, inner, edge), pad - inner
            return cv2.copyMakeBorder(view, pad_left, pad_left, pad_left, pad_left, cv2.BORDER_CONSTANT,
                                      value=(0, 0, 0)), pad
        colour = (128, 128, 128) if kind == "grey" else tuple(float(value) for value in view.reshape(-1, 3).mean(0))
        return cv2.copyMakeBorder(view, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=colour), pad
    return framed


def margins(centerface: DetectStage, photos: list) -> None:
    ordinary, framed = ordinary_frames(photos), wider_look.framed
    try:
        for kind in ("black", "grey", "mean", "replicated", "mirrored"):
            wider_look.framed = framed if kind == "black" else margin_of(kind)  # black: the look in use
            found = [close_ups_found(centerface, photos, fill, SIDES) for fill in FILLS]
            faces = sum(len(centerface.run([frame])[0]) for frame in ordinary)
            print(f"margin {kind}: close-ups found {found} (of 108 each, filling {FILLS}); ordinary frames: "
                  f"{faces} faces", flush=True)
    finally:
        wider_look.framed = framed


def main() -> None:
    centerface = DetectStage(StageConfig())
    centerface.load()
    photos = annotated_photos()
    if "--margins" in sys.argv:
        margins(centerface, photos)
        return
    second_opinion(centerface, photos)
    fainter_spots(centerface, photos)


if __name__ == "__main__":
    main()
