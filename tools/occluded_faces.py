"""Faces partly hidden (sunglasses, a face mask, a hand over the mouth): recall and landmark error.

Each annotated face of ../shared/data (dlib_faces' points, dlib's own on the original photo, as
the reference; the others human) gets an occluder drawn from its true points, and the default
detector and aligner run on the copies as ``make robustness`` runs them. NME (over the
outer-eye-corner distance) is given over all 68 points and over the points the occluder leaves
visible. "3D fill": the hidden points replaced by the 3D face model fitted to the visible ones
(knowing which are hidden, which a run cannot): the bound of what a shape prior could add. And
the alignment quality score (what ``--min-quality`` leaves out).
Record: docs/accuracy.md. Run: .venv/bin/python tools/occluded_faces.py (a minute).
"""
import json

import cv2
import numpy as np
from common import SHARED, loaded_stages

from extractor.evaluate import find_annotation_files, match
from extractor.models.face_model_3d import FaceModel3D

JAW, BROWS, NOSE, EYES, MOUTH = range(0, 17), range(17, 27), range(27, 36), range(36, 48), range(48, 68)


def sunglasses(image: np.ndarray, points: np.ndarray) -> None:
    """A dark ellipse over both eyes, from the brows' top to a third of the way down the nose."""
    top = points[17:27, 1].min()
    bottom = points[36:48, 1].max() + 0.35 * (points[33, 1] - points[27, 1])
    inset = 0.1 * (points[16, 0] - points[0, 0])
    left, right = points[0, 0] + inset, points[16, 0] - inset
    cv2.ellipse(image, (int((left + right) / 2), int((top + bottom) / 2)),
                (int((right - left) / 2), int((bottom - top) / 2)), 0, 0, 360, (20, 20, 20), -1)


def face_mask(image: np.ndarray, points: np.ndarray) -> None:
    """A light blue-grey cloth from the nose bridge down over the jaw line."""
    bridge = points[28, 1]
    outline = np.vstack([points[1:16], [[points[15, 0], bridge], [points[1, 0], bridge]]]).astype(np.int32)
    cv2.fillPoly(image, [cv2.convexHull(outline)], (200, 170, 120))


def hand(image: np.ndarray, points: np.ndarray) -> None:
    """A skin-toned ellipse over the mouth and chin, as a hand held to the face."""
    centre = points[48:68].mean(axis=0)
    width, height = 1.8 * (points[54, 0] - points[48, 0]), 1.3 * (points[8, 1] - points[33, 1])
    cv2.ellipse(image, (int(centre[0]), int(centre[1] + 0.1 * height)), (int(width / 2), int(height / 2)),
                20, 0, 360, (90, 130, 190), -1)


OCCLUDERS = {"none": (None, []), "sunglasses": (sunglasses, [*BROWS, *EYES]),
             "face mask": (face_mask, [*JAW[1:16], *NOSE[2:], *MOUTH]), "hand over the mouth": (hand, [*MOUTH])}


def main() -> None:
    detect, align = loaded_stages()
    model = FaceModel3D.installed()
    print("| occluder | recall | NME median, all points | visible points | all points, 3D fill | quality median, "
          "share under 0.4 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (draw, hidden) in OCCLUDERS.items():
        visible = [i for i in range(68) if i not in hidden]
        found = total = 0
        errors, visible_errors, filled_errors, qualities = [], [], [], []
        for listing in find_annotation_files(SHARED / "data"):
            for entry in json.loads(listing.read_text())["images"]:
                faces = [face for face in entry.get("faces") or [] if face.get("landmarks68")]
                if not faces:
                    continue
                image = cv2.imread(str(listing.parent / entry["file"]), cv2.IMREAD_COLOR)
                truths = [np.array(face["landmarks68"], np.float64) for face in faces]
                for truth in truths if draw else []:
                    draw(image, truth)
                detected = detect.run([image])[0]
                aligned = align.run([image] * len(detected), detected) if detected else []
                total += len(faces)
                for index, truth_index in match(aligned, [face["box"] for face in faces]):
                    found += 1
                    truth, points = truths[truth_index], aligned[index].landmarks
                    scale = np.linalg.norm(truth[36] - truth[45])
                    error = np.linalg.norm(points - truth, axis=1) / scale
                    errors.append(error.mean())
                    qualities.append(aligned[index].quality)
                    visible_errors.append(error[visible].mean())
                    if hidden:
                        filled = points.copy()
                        filled[hidden] = model.fit(points, indices=visible).points[hidden]
                        filled_errors.append((np.linalg.norm(filled - truth, axis=1) / scale).mean())
        fill = f"{np.median(filled_errors):.4f}" if filled_errors else "-"
        print(f"| {name} | {found / total:.3f} ({found}/{total}) | {np.median(errors):.4f} | "
              f"{np.median(visible_errors):.4f} | {fill} | {np.median(qualities):.2f}, "
              f"{np.mean(np.array(qualities) < 0.4):.2f} |", flush=True)


if __name__ == "__main__":
    main()
