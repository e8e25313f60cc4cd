"""Overexposed faces (a flash at close range, stage light, a phone exposing for a dark room):
the aligner's crop of a blown-out face pulled down by a gamma (``base.blown_out``,
``base.pulled_down``) against the crop as it is, on the annotated photos of ../shared/data and
../shared/turned exposed brighter by whole and half stops (in linear light, then clipped, as a
camera clips), and made brighter in the encoded values (x2, a flash: x2.5 after a gamma of 0.7).
Ground truth: their points, dlib's own on the original for dlib_faces. Also how many of the
sample video's faces (stage light) the rule touches.

    python tools/bright_faces.py                # about 1 minute
    python tools/bright_faces.py --tried        # other pulls tried on the same crops: 3 minutes
    python tools/bright_faces.py --median 200   # the rule from another median (230)
    python tools/bright_faces.py --detector     # the detector on the frames pulled down too: 1 minute
"""
import argparse

import cv2
import numpy as np

from common import faces_found_by_look, loaded_stages, photo_errors, video_frames

import extractor.plugins.base as base
from benchmarks.robustness import exposed

PULLED_DOWN = base.pulled_down
VARIANTS = {"as it is": lambda crop: crop, "pulled down (now)": PULLED_DOWN}


def gamma(value: float):
    lut = (255.0 * (np.arange(256) / 255.0) ** value + 0.5).astype(np.uint8)
    return lambda crop: cv2.LUT(crop, lut)


def _grey_to_bgr(pull):
    return lambda crop: cv2.cvtColor(pull(crop), cv2.COLOR_GRAY2BGR)


TRIED = {**{f"gamma {value:g}": gamma(value) for value in (1.5, 2, 3, 4)},
         "median to mid-grey": lambda crop: gamma(np.log(0.5) / np.log(
             min(max(np.median(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)), 129), 254) / 255.0))(crop),
         "CLAHE": _grey_to_bgr(lambda crop: base._clahe(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))),
         "darkest channel": _grey_to_bgr(lambda crop: crop.min(axis=2))}


CONDITIONS = {
    "the photos": lambda image: image,
    **{f"+{stops:g} stop{'s' if stops > 1 else ''}": lambda image, stops=stops: exposed(image, stops)
       for stops in (0.5, 1, 1.5, 2, 2.5)},
    "encoded values x2": lambda image: np.clip(image * 2.0, 0, 255).astype(np.uint8),
    "flash (gamma 0.7, x2.5)": lambda image: np.clip(255 * (image / 255.0) ** 0.7 * 2.5, 0, 255).astype(np.uint8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tried", action="store_true", help="the other pulls tried, on the exposure rows")
    parser.add_argument("--median", type=int, default=base.MIN_BLOWN_OUT_MEDIAN, help="the rule's median")
    parser.add_argument("--detector", action="store_true", help="faces found on the frames as they are and pulled "
                        "down by a gamma (the whole frame)")
    args = parser.parse_args()
    if args.detector:
        detect, _ = loaded_stages()
        pulls = {"gamma 2.5": gamma(2.5), "gamma 4": gamma(4)}
        looks = {"as they are": lambda frame: frame, **{f"pulled down, {name}": pull for name, pull in pulls.items()}}
        faces_found_by_look(detect, {name: change for name, change in CONDITIONS.items() if name != "+0.5 stop"}, looks)
        return
    base.MIN_BLOWN_OUT_MEDIAN = args.median
    variants = {**VARIANTS, **TRIED} if args.tried else VARIANTS
    conditions = {name: change for name, change in CONDITIONS.items() if "stop" in name} if args.tried else CONDITIONS
    detect, align = loaded_stages()
    touched = []
    blown_out = base.blown_out

    def counting(grey):
        blown = blown_out(grey)
        touched[-1] += blown
        return blown

    base.blown_out = counting
    print("| photos | faces found | crops pulled down | "
          + " | ".join(f"NME median / mean, {v} | the human-annotated" for v in variants) + " |")
    print("| --- | --- | --- |" + " --- | --- |" * len(variants))
    for name, change in conditions.items():
        picture = lambda image, change=change: (change(image), np.ones(2))  # noqa: E731
        figures = []
        for pull in variants.values():
            base.pulled_down, touched[:] = pull, [0]
            found, total, errors = photo_errors(detect, align, picture)
            pulled = touched[0]
            human = photo_errors(detect, align, picture, human_only=True)[2]
            figures += [f"{np.median(values):.4f} / {np.mean(values):.4f}" for values in (errors, human)]
        print(f"| {name} | {found}/{total} | {pulled} | " + " | ".join(figures) + " |", flush=True)
    base.pulled_down, touched[:] = PULLED_DOWN, [0]
    if args.tried:
        return
    faces = 0
    for _, image in video_frames():
        found = detect.run([image])[0]
        if found:
            align.run([image] * len(found), found)
            faces += len(found)
    print(f"\nthe sample video: {faces} faces, {touched[0]} aligner crops pulled down")


if __name__ == "__main__":
    main()
