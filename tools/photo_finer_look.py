"""Photos of 1280-2560 px: the finer look (``fine_if_from_close``) against a video frame's
(``fine_if_from``): faces found and detect CPU a frame, each annotated photo scaled so that its
faces are 16-32 px and set alone in a grey frame of a photo's size, and a photo without a face.

    python tools/photo_finer_look.py   (about 3 minutes)
"""
from functools import partial

import cv2
from common import SHARED

from benchmarks.big_frames import annotated_photos, print_table, scaled_alone
from extractor.stages import DetectStage, StageConfig


def main() -> None:
    detect = DetectStage(StageConfig())
    detect.load()
    plugin = detect.plugin
    photos = annotated_photos()
    sets = {}
    for width, height in ((1600, 900), (1920, 1080), (2400, 1350)):
        for face_px in (16, 20, 24, 32):
            sets[f"faces of {face_px} px, each photo alone in {width} x {height}"] = [
                scaled_alone(image, boxes, face_px, width, height) for image, boxes in photos]
    dogs = cv2.imread(str(SHARED / "data" / "edge_cases" / "dogs.jpg"))  # no human face
    sets["a photo without a face (dogs.jpg enlarged to 1920 px), 5 times"] = [
        (cv2.resize(dogs, (1920, round(1920 * dogs.shape[0] / dogs.shape[1]))), [])] * 5
    variants = {"a video's frames (fine_if_from 2560)": partial(vars(plugin).update, fine_if_from=2560),
                "photos (fine_if_from_close 1280)": partial(vars(plugin).update, fine_if_from=1280)}
    print_table(detect, sets, variants)


if __name__ == "__main__":
    main()
