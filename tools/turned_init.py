"""An experiment on turned faces: dlib's trees started from a turned face shape, not their frontal
mean shape. Prints NME over the box for each human-annotated face of ../shared/data and
../shared/turned, and the mean by yaw bin, for: dlib68's frontal passes; one pass started from a 3D face
template turned to the yaw the detector's five points suggest and placed on them; that pass
refined from the template fitted to its points; that pass refined from its own points.

The 3D template is the face mesh's points (x, y and depth) mapped to the 68, on the faces of
../shared/data/dlib_faces of 60 px or more, averaged in mean-face units. Record: docs/accuracy.md.
Run: .venv/bin/python tools/turned_init.py  (about a minute).
"""
import copy
import json

import numpy as np
from common import FRONTAL_ONLY, SHARED, annotated_faces, loaded_stages

from extractor.evaluate import nme_over_box
from extractor.geometry import ALIGN_POINTS, transform_points, umeyama
from extractor.mean_face import MEAN_FACE_68
from extractor.models.face_model_3d import five_points
from extractor.plugins.align.crop import crop_matrix, pose_from_landmarks, warp_crop
from extractor.plugins.align.face_mesh import mesh_to_68
from extractor.images import read_image
from extractor.stages import AlignStage, StageConfig

DETECT, ALIGN = loaded_stages(FRONTAL_ONLY)  # "today": dlib68's frontal passes, as before the turned ones
MESH = AlignStage(StageConfig(aligner="face-mesh"))
MESH.load()
MESH = MESH.plugin


def mesh_3d(image, face) -> tuple[np.ndarray, np.ndarray]:
    """The face mesh on the crop framed by ``face``'s landmarks: the 68 points and their depth."""
    matrix = crop_matrix(pose_from_landmarks(face.landmarks), MESH.crop_box, MESH.input_size)
    crop = MESH.to_model_colour(MESH.normalize(warp_crop(image, matrix, MESH.input_size)))
    interpreter = MESH.interpreter
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], (crop.astype(np.float32) / 255.0)[None])
    interpreter.invoke()
    mesh = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1, 3)[:468]
    return mesh_to_68(mesh[:, :2]), mesh_to_68(np.stack([mesh[:, 2], mesh[:, 2]], 1))[:, 0]


def template_3d() -> np.ndarray:
    shapes = []
    annotations = SHARED / "data" / "dlib_faces" / "annotations.json"
    for entry in json.loads(annotations.read_text())["images"]:
        image, _ = read_image(annotations.parent / entry["file"])
        found = DETECT.run([image])[0]
        ALIGN.run([image] * len(found), found)
        for face in found:
            if face.width < 60:
                continue
            points, depth = mesh_3d(image, face)
            to_mean = umeyama(points[ALIGN_POINTS], MEAN_FACE_68[ALIGN_POINTS])[:2]
            scale = np.sqrt(abs(np.linalg.det(to_mean[:, :2])))
            shapes.append(np.c_[transform_points(points, to_mean), depth * scale])
    template = np.mean(shapes, 0)
    template[:, 2] -= template[:, 2].mean()
    return template


TEMPLATE = template_3d()


def turned(theta: float) -> np.ndarray:
    """The template turned by ``theta`` radians about the vertical axis, seen from the front."""
    centre = TEMPLATE[:, 0].mean()
    x = (TEMPLATE[:, 0] - centre) * np.cos(theta) + TEMPLATE[:, 2] * np.sin(theta) + centre
    return np.c_[x, TEMPLATE[:, 1]]


def nose_offset(points: np.ndarray) -> float:
    left_eye, right_eye, nose = points[0], points[1], points[2]
    return ((nose[0] - left_eye[0]) - (right_eye[0] - nose[0])) / max(right_eye[0] - left_eye[0], 1e-6)


def yaw_from_five(points: np.ndarray) -> float:
    """The yaw whose turned template puts the nose between the eyes as the detector saw it."""
    eyes = points[1] - points[0]
    angle = -np.arctan2(eyes[1], eyes[0])
    levelled = points @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]).T
    thetas = np.radians(np.arange(-85, 86, 1.0))
    offsets = np.array([nose_offset(five_points(turned(theta))) for theta in thetas])
    return float(thetas[int(np.argmin(np.abs(offsets - nose_offset(levelled))))])


def one_pass(image, start: np.ndarray) -> np.ndarray:
    """dlib's trees on the crop framed by ``start`` (frame pixels), starting from ``start``."""
    return ALIGN.plugin._trees_from([image], [start])[0]


def main() -> None:
    rows = []
    for _, yaw, image, detected, truth in annotated_faces(DETECT):
        today = copy.deepcopy(detected)
        ALIGN.run([image], [today])
        theta = yaw_from_five(detected.detector_points)
        shape = turned(theta)
        first = one_pass(image, transform_points(shape, umeyama(five_points(shape), detected.detector_points)[:2]))
        from_template = one_pass(image, transform_points(shape, umeyama(shape, first)[:2]))
        from_itself = one_pass(image, first)
        rows.append((yaw, np.degrees(theta), *(nme_over_box(points, truth)
                                               for points in (today.landmarks, first, from_template, from_itself))))
    rows = np.array(sorted(rows))
    print("yaw, yaw from the five points, NME/box: today, turned start, + refined from the template, "
          "+ refined from itself")
    for row in rows:
        print(np.round(row, 3))
    for low, high in ((0, 30), (30, 60), (60, 91)):
        chosen = (rows[:, 0] >= low) & (rows[:, 0] < high)
        print(f"{low}-{min(high, 90)}: {chosen.sum()} faces, mean NME/box {np.round(rows[chosen, 2:].mean(0), 4)}")


if __name__ == "__main__":
    main()
