"""Fit the mean 68-point face used for aligned crops, and print it as Python source.

Generalised Procrustes analysis over the 68-point annotations of ../shared/data/dlib_faces
(28 faces). The human-annotated faces used to measure landmark accuracy are left out, so that
nothing the aligners use was fitted on them. The inner-face points (17-67) are then scaled uniformly and centred
so that they span the unit square, the convention of faceswap's mean face.
Run: .venv/bin/python tools/fit_mean_face.py > extractor/mean_face.py
"""
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from extractor.geometry import transform_points, umeyama  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def all_shapes():
    for ann in [DATA / "dlib_faces" / "annotations.json"]:
        for image in json.loads(ann.read_text())["images"]:
            for face in image.get("faces") or []:
                if face.get("landmarks68"):
                    yield np.array(face["landmarks68"], dtype=np.float64)


# iBUG index of each point's mirror image (left <-> right).
MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
          + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
          + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def upright_and_symmetric(shape):
    """Rotate so the eyes are level, then average with the mirror image (a mean face has no tilt)."""
    left_eye, right_eye = shape[36:42].mean(0), shape[42:48].mean(0)
    angle = np.arctan2(*(right_eye - left_eye)[::-1])
    rot = np.array([[np.cos(-angle), -np.sin(-angle)], [np.sin(-angle), np.cos(-angle)]])
    shape = (shape - shape.mean(0)) @ rot.T
    if shape[8, 1] < shape[27, 1]:  # chin above the nose bridge: flip to image orientation
        shape[:, 1] *= -1
    mirrored = shape[MIRROR] * [-1, 1]
    return (shape + mirrored) / 2


def main():
    shapes = list(all_shapes())
    mean = shapes[0] - shapes[0].mean(0)
    mean /= np.linalg.norm(mean)
    for _ in range(20):
        aligned = [transform_points(s, umeyama(s, mean)[:2]) for s in shapes]
        new = np.mean(aligned, axis=0)
        new -= new.mean(0)
        new /= np.linalg.norm(new)
        if np.abs(new - mean).max() < 1e-9:
            break
        mean = new
    mean = upright_and_symmetric(mean)
    inner = mean[17:]
    lo, hi = inner.min(0), inner.max(0)
    scale = (hi - lo).max()
    unit = (mean - lo) / scale
    unit += (1 - (hi - lo) / scale) / 2  # centre the inner face in the unit square
    print('"""Mean 68-point face (iBUG order), fitted by tools/fit_mean_face.py on %d faces.' % len(shapes))
    print()
    print("The inner-face points (17-67) span the unit square; aligned crops map onto it.")
    print('"""')
    print("import numpy as np")
    print()
    print("MEAN_FACE_68 = np.array([")
    for x, y in unit:
        print(f"    [{x:.6f}, {y:.6f}],")
    print("], dtype=np.float64)")


if __name__ == "__main__":
    main()
