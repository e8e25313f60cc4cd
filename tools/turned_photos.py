"""Photos stored turned without saying so (no EXIF orientation): what `--rotate` finds.

Every photo of ../shared/data with listed face boxes, turned 0, 90, 180 and 270 degrees, detected
with `--rotate off`, `auto` (the default: a frame whose faces are found lying on their side, or
with no face found, whose doubtful spots lie so, is looked at again upright) and `on` (auto, and
frames with no face retried turned); prints the
listed faces found (IoU >= 0.3), the other detections, and the frames looked at more than once.
Then the cost in false faces and looks: squares cut from the photos' corners away from every
listed face, each turned four ways, where every detection is one the photo does not list. Record: docs/accuracy.md.
Run: .venv/bin/python tools/turned_photos.py (a minute).
"""
import cv2
import numpy as np
from common import SHARED  # noqa: F401  (puts the repository on the path)

from benchmarks.big_frames import annotated_photos
from extractor.evaluate import match
from extractor.geometry import iou, rotate_image
from extractor.stages import DetectStage, StageConfig

MODES = {"off": StageConfig(upright_look=False), "auto": StageConfig(),
         "on": StageConfig(rotations=(90, 270, 180))}


def turned(image: np.ndarray, boxes: list, angle: int) -> tuple[np.ndarray, list]:
    """The photo turned ``angle`` degrees clockwise, and its boxes moved with it."""
    picture, back = rotate_image(image, angle)
    forward = cv2.invertAffineTransform(back)
    moved = []
    for left, top, right, bottom in boxes:
        corners = np.array([[left, top], [right, bottom]], np.float64) @ forward[:, :2].T + forward[:, 2]
        moved.append([*corners.min(0), *corners.max(0)])
    return picture, moved


class CountingStage(DetectStage):
    """A detect stage that counts the frames its model looks at (a look again counts once more)."""

    looks = 0

    def _detect_with_doubts(self, images):
        self.looks += len(images)
        return super()._detect_with_doubts(images)


def main() -> None:
    stages = {name: CountingStage(config) for name, config in MODES.items()}
    stages["off"].load()
    for stage in stages.values():
        stage.plugin = stages["off"].plugin
    photos = annotated_photos()
    print("| turned | listed faces | " + " | ".join(f"`--rotate {name}`: found, other, looks" for name in MODES)
          + " |\n| --- | --- |" + " --- |" * len(MODES))
    for angle in (0, 90, 180, 270):
        cells = []
        for stage in stages.values():
            stage.looks, found, other, listed = 0, 0, 0, 0
            for image, boxes in photos:
                picture, moved = turned(image, boxes, angle)
                faces = stage.run([picture])[0]
                pairs = match(faces, moved)
                found, other, listed = found + len(pairs), other + len(faces) - len(pairs), listed + len(moved)
            cells.append(f"{found} ({found / listed:.3f}), {other}, {stage.looks}")
        print(f"| {angle} | {listed} | " + " | ".join(cells) + " |")
    corners, detections = 0, {name: 0 for name in MODES}
    for stage in stages.values():
        stage.looks = 0
    for image, boxes in photos:
        height, width = image.shape[:2]
        side = min(height, width) // 2
        for top in (0, height - side):
            for left in (0, width - side):
                square = [left, top, left + side, top + side]
                if any(iou(square, box) > 0 for box in boxes):
                    continue
                corners += 1
                for angle in (0, 90, 180, 270):
                    picture = rotate_image(np.ascontiguousarray(image[top:top + side, left:left + side]), angle)[0]
                    for name, stage in stages.items():
                        detections[name] += len(stage.run([picture])[0])
    print(f"\nsquares away from every listed face: {corners}, each turned 0, 90, 180 and 270 degrees; "
          "detections in them, looks: " + ", ".join(f"{name} {count}, {stages[name].looks}"
                                                     for name, count in detections.items()))


if __name__ == "__main__":
    main()
