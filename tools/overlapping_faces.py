"""Faces overlapping faces (a crowd, a couple cheek to cheek): found at CenterFace's NMS overlaps.

Pairs of dlib_faces' faces (90 px boxes, on grey), the second pasted over the first in a soft oval
so that their boxes overlap by a given IoU; 40 pairs an overlap. For each NMS overlap, faces
found (IoU >= 0.4 with the pasted box) of the 80, then how the hidden faces the default threshold
misses scored (run at threshold 0.2).
Record: docs/accuracy.md. Run: .venv/bin/python tools/overlapping_faces.py (a minute).
"""
import json

import cv2
import numpy as np
from common import SHARED

from extractor.stages import DetectStage, StageConfig
from extractor.tracking import box_iou

OVERLAPS = (0.0, 0.2, 0.3, 0.4, 0.5)
SIDE = 90


def face_tiles() -> list[np.ndarray]:
    """dlib_faces' faces with a third of their box around them, scaled to 90 px boxes."""
    folder = SHARED / "data" / "dlib_faces"
    tiles = []
    for entry in json.loads((folder / "annotations.json").read_text())["images"]:
        image = cv2.imread(str(folder / entry["file"]))
        for face in entry["faces"]:
            left, top, right, bottom = face["box"]
            margin = int(0.35 * (right - left))
            inside = left >= margin and top >= margin
            if inside and right + margin <= image.shape[1] and bottom + margin <= image.shape[0]:
                tile = image[top - margin:bottom + margin, left - margin:right + margin]
                tiles.append(cv2.resize(tile, None, fx=SIDE / (right - left), fy=SIDE / (right - left)))
    return tiles


def pair(first: np.ndarray, second: np.ndarray, overlap: float, drop: int) -> tuple[np.ndarray, np.ndarray]:
    """A 640 x 480 frame with ``second`` pasted over ``first`` so their boxes overlap by ``overlap``."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    shift = int(round(SIDE * (1 - overlap) / (1 + overlap))) if overlap else SIDE + 10
    boxes = np.array([[150, 150, SIDE, SIDE], [150 + shift, 150 + drop, SIDE, SIDE]], float)
    for tile, (x, y, _, _), oval in ((first, boxes[0], False), (second, boxes[1], True)):
        margin, (height, width) = (tile.shape[0] - SIDE) // 2, tile.shape[:2]
        mask = np.ones((height, width, 1), np.float32)
        if oval:
            mask = np.zeros((height, width), np.float32)
            cv2.ellipse(mask, (width // 2, height // 2), (int(width * 0.36), int(height * 0.46)), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 4)[..., None]
        y0, x0 = int(y) - margin, int(x) - margin
        under = frame[y0:y0 + height, x0:x0 + width].astype(np.float32)
        frame[y0:y0 + height, x0:x0 + width] = (mask * tile + (1 - mask) * under).astype(np.uint8)
    return frame, boxes


def main() -> None:
    tiles = face_tiles()
    looks = {nms: DetectStage(StageConfig(plugin_options={"detect.centerface": {"nms_iou": nms}}))
             for nms in (0.3, 0.4, 0.5)}
    looks["scores"] = DetectStage(StageConfig(plugin_options={"detect.centerface": {"threshold": 0.2}}))
    for stage in looks.values():
        stage.load()
    rng = np.random.default_rng(1)
    print("| box overlap | found, NMS 0.3 (default) | 0.4 | 0.5 | hidden faces under 0.5: their scores |")
    print("| --- | --- | --- | --- | --- |")
    for overlap in OVERLAPS:
        found, hidden_scores = {nms: 0 for nms in (0.3, 0.4, 0.5)}, []
        for _ in range(40):
            first, second = rng.choice(len(tiles), 2, replace=False)
            frame, truth = pair(tiles[first], tiles[second], overlap, int(rng.integers(-10, 10)))
            for name, stage in looks.items():
                faces = stage.run([frame])[0]
                boxes = np.array([[f.left, f.top, f.width, f.height] for f in faces]).reshape(-1, 4)
                iou = box_iou(truth, boxes) if len(boxes) else np.zeros((2, 1))
                if name == "scores":
                    best = int(iou[0].argmax())
                    if iou[0, best] < 0.4 or faces[best].score < 0.5:
                        hidden_scores.append(round(faces[best].score, 2) if iou[0, best] >= 0.4 else 0.0)
                else:
                    found[name] += int((iou >= 0.4).any(axis=1).sum())
        print(f"| {overlap} | " + " | ".join(f"{count}/80" for count in found.values())
              + f" | {sorted(hidden_scores)} |", flush=True)


if __name__ == "__main__":
    main()
