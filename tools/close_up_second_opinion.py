"""BlazeFace full-range as a second opinion on close-ups: the faces it finds where CenterFace finds none.

The frames of ``make close-ups`` (each annotated face cut square so that its box fills 90 % of
the frame, or is 1.15-1.5 times its side), at 256, 512 and 1024 px: faces found by CenterFace
(the default, its wider look on), by BlazeFace, and by CenterFace else BlazeFace where CenterFace
found none; then what BlazeFace finds on the ordinary frames (the annotated photos, the sample
video) where CenterFace finds none. Record: docs/accuracy.md ("Faces that fill the frame").
Run: .venv/bin/python tools/close_up_second_opinion.py (4 min).
"""
import common  # noqa: F401  (the repository on the path)

from benchmarks.close_ups import annotated_photos, close_up, ordinary_frames
from extractor.evaluate import match
from extractor.stages import DetectStage, StageConfig


def main() -> None:
    centerface, blazeface = DetectStage(StageConfig()), DetectStage(StageConfig(detector="blazeface"))
    centerface.load()
    blazeface.load()
    photos = annotated_photos()
    for fill in (0.9, 1.15, 1.3, 1.5):
        for side in (256, 512, 1024):
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


if __name__ == "__main__":
    main()
