"""Could MTCNN confirm the faces CenterFace scores 0.3-0.5 (doubtful), on the changed copies of
../shared/data that `make robustness` makes and on the photos without a face? Each doubtful spot
is cut out square (2.5 times its box, the box brought to 60 px) and MTCNN's score is that of its
detection overlapping the box (IoU >= 0.3; 0 where none). Real: matched to a listed face; not a
face: unmatched on the sets whose every face is listed (dlib_faces, the faceless edge cases).

    python tools/mtcnn_second_opinion.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.robustness import CHANGES, DATA, changed_copy  # noqa: E402
from extractor.evaluate import find_annotation_files, match  # noqa: E402
from extractor.geometry import iou  # noqa: E402
from extractor.images import read_image  # noqa: E402
from extractor.plugins.base import Batch  # noqa: E402
from extractor.plugins.registry import create  # noqa: E402
from extractor.stages import DetectStage, StageConfig  # noqa: E402

LOW, THRESHOLD = 0.3, 0.5
CONTEXT, FACE_PX = 2.5, 60


def mtcnn_score(mtcnn, image: np.ndarray, box) -> float:
    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    scale, half = FACE_PX / side, side * CONTEXT / 2
    x0, y0 = (left + right) / 2 - half, (top + bottom) / 2 - half
    matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    size = int(round(2 * half * scale))
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    spot = [(left - x0) * scale, (top - y0) * scale, (right - x0) * scale, (bottom - y0) * scale]
    found = mtcnn.process(Batch([crop])).detections[0]
    return max([float(face.score) for face in found if iou(face.box_ltrb, spot) >= 0.3], default=0.0)


def images_of(folder: Path, change) -> list[tuple[np.ndarray, list, bool]]:
    """(image, listed boxes, whether every face is listed) of the changed copy and the faceless photos."""
    items = []
    for listing in find_annotation_files(folder):
        annotations = json.loads(listing.read_text())
        items += [(read_image(listing.parent / entry["file"])[0], [face["box"] for face in entry["faces"]],
                   bool(annotations.get("exhaustive"))) for entry in annotations["images"]]
    for entry in json.loads((DATA / "edge_cases" / "annotations.json").read_text())["images"]:
        image = cv2.imread(str(DATA / "edge_cases" / entry["file"])) if entry.get("faces") == [] else None
        if image is not None:
            items.append((change(image)[0], [], True))
    return items


def main() -> None:
    detect = DetectStage(StageConfig(plugin_options={"detect.centerface": {"threshold": LOW}}))
    detect.load()
    mtcnn = create("detect", "mtcnn")
    mtcnn.load()
    scores: dict[bool, list[float]] = {True: [], False: []}
    for change in CHANGES.values():
        with tempfile.TemporaryDirectory() as tmp:
            changed_copy(change, Path(tmp), proxy=True)
            for image, boxes, exhaustive in images_of(Path(tmp), change):
                found = detect.run([image])[0]
                real = dict(match(found, boxes)) if boxes else {}
                for index, face in enumerate(found):
                    if face.score < THRESHOLD and (index in real or exhaustive):
                        scores[index in real].append(mtcnn_score(mtcnn, image, face.box_ltrb))
    for real, values in scores.items():
        print(f"{'real' if real else 'not a face'}: {len(values)} doubtful, MTCNN confirms "
              f"{sum(value >= 0.7 for value in values)} (scores {sorted(round(v, 2) for v in values if v)})")


if __name__ == "__main__":
    main()
