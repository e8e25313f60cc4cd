"""Black-and-white video: the faces found in the sample video's frames made grey, against those
found in colour (every third frame), at CenterFace's threshold and two lower ones.

    python tools/grey_video.py
"""
import tempfile

import cv2
import numpy as np
from common import VIDEO

from extractor.api import FaceExtractor
from extractor.geometry import iou
from extractor.sources import InputSource, SkippedInput

THRESHOLDS = (0.5, 0.45, 0.4)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def boxes(extractor: FaceExtractor, image: np.ndarray) -> list[np.ndarray]:
    return [np.array(face.box_ltrb, float) for face in extractor.get(image)]


def main() -> None:
    frames = [item.image for item in InputSource(VIDEO, every_n=3) if not isinstance(item, SkippedInput)]
    colour = [boxes(FaceExtractor(photos=False), image) for image in frames]
    total = sum(map(len, colour))
    for threshold in THRESHOLDS:
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
            config.write(f"[plugins.detect.centerface]\nthreshold = {threshold}\n")
            config.flush()
            extractor = FaceExtractor(photos=False, config=config.name)
        for name, look in (("colour", lambda image: image), ("grey", grey)):
            kept = extra = 0
            for image, reference in zip(frames, colour):
                found = boxes(extractor, look(image))
                kept += sum(any(iou(face, box) >= 0.5 for box in found) for face in reference)
                extra += sum(not any(iou(box, face) >= 0.5 for face in reference) for box in found)
            print(f"threshold {threshold}, {name}: {kept} of the {total} faces found in colour at 0.5 "
                  f"({kept / total:.3f}), {extra} other detections")


if __name__ == "__main__":
    main()
