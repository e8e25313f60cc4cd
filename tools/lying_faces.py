"""One face lying among upright ones (someone lying down, a head bent far over): found?

Each face of ../shared/data listed with a box of 40 px or more is turned about its centre, in a
soft-edged disc, by each angle (degrees counter-clockwise), the rest of its photo left as it is,
and the default detect stage (photos' settings) runs on the copy. A face counts as found where a
detection's centre lies within 0.4 of the face's side of its centre, at 0.6-1.8 times its size.
Record: docs/accuracy.md ("One face lying among upright ones"). Run: .venv/bin/python
tools/lying_faces.py [ANGLE ...] (about two minutes for the five default angles).
"""
import json
import sys

import numpy as np
from common import SHARED

from benchmarks.robustness import face_turned_in_place
from extractor.evaluate import find_annotation_files
from extractor.images import read_image
from extractor.stages import DetectStage, StageConfig

MIN_SIDE = 40


def found_at(faces, box) -> bool:
    left, top, right, bottom = box
    side, centre = right - left, np.array([(left + right) / 2, (top + bottom) / 2])
    return any(np.abs(np.array([f.left + f.width / 2, f.top + f.height / 2]) - centre).max() < 0.4 * side
               and 0.6 < f.width / side < 1.8 for f in faces)


def main(angles: list[float]) -> None:
    detect = DetectStage(StageConfig(close_look=True))  # as a run looks at photos
    detect.load()
    counts = {angle: [0, 0] for angle in angles}
    for path in find_annotation_files(SHARED / "data"):
        for entry in json.loads(path.read_text())["images"]:
            boxes = [face["box"] for face in entry.get("faces") or [] if "box" in face]
            boxes = [box for box in boxes if box[2] - box[0] >= MIN_SIDE]
            if not boxes:
                continue
            image, _ = read_image(path.parent / entry["file"])
            for box in boxes:
                for angle in angles:
                    hit = found_at(detect.run([face_turned_in_place(image, box, angle)])[0], box)
                    counts[angle][0] += hit
                    counts[angle][1] += 1
                    if not hit:
                        print(f"missed: {entry['file']} face {[round(v) for v in box]} turned {angle:g}")
    print("| turned (degrees) | found |\n| --- | --- |")
    for angle, (hits, total) in counts.items():
        print(f"| {angle:g} | {hits}/{total} |")


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [0, 45, 90, -90, 180])
