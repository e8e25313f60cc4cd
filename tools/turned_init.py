"""An experiment on turned faces: dlib's trees started from a turned face shape, not their frontal
mean shape. Prints NME over the box for each human-annotated face of ../shared/data and
../shared/turned, and the mean by yaw bin, for: today's aligner; one pass started from a 3D face
template turned to the yaw the detector's five points suggest and placed on them; that pass
refined from the template fitted to its points; that pass refined from its own points.

The 3D template is the face mesh's points (x, y and depth) mapped to the 68, on the faces of
../shared/data/dlib_faces of 60 px or more, averaged in mean-face units. Record: docs/accuracy.md.
Run: .venv/bin/python tools/turned_init.py  (about a minute).
"""
import copy
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractor.evaluate import face_yaw, find_annotation_files, match, nme_over_box  # noqa: E402
from extractor.geometry import ALIGN_POINTS, invert_affine, transform_points, umeyama  # noqa: E402
from extractor.mean_face import MEAN_FACE_68  # noqa: E402
from extractor.plugins.align.crop import crop_matrix, pose_from_landmarks, warp_crop  # noqa: E402
from extractor.plugins.align.face_mesh import mesh_to_68  # noqa: E402
from extractor.sources import read_image  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def loaded(stage):
    stage.load()
    return stage


DETECT = loaded(DetectStage(StageConfig()))
ALIGN = loaded(AlignStage(StageConfig()))
MESH = loaded(AlignStage(StageConfig(aligner="face-mesh"))).plugin
TREES = ALIGN.plugin


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


def five(points: np.ndarray) -> np.ndarray:
    """The detector's five points (eyes, nose tip, mouth corners) on 68 points."""
    return np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


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
    offsets = np.array([nose_offset(five(turned(theta))) for theta in thetas])
    return float(thetas[int(np.argmin(np.abs(offsets - nose_offset(levelled))))])


def one_pass(image, start: np.ndarray) -> np.ndarray:
    """dlib's trees on the crop framed by ``start`` (frame pixels), starting from ``start``."""
    matrix = crop_matrix(pose_from_landmarks(start), TREES.crop_box, TREES.input_size)
    crop = TREES.to_model_colour(TREES.normalize(warp_crop(image, matrix, TREES.input_size)))
    x0, y0, x1, y1 = TREES.box
    initial = (transform_points(start, matrix) - np.array([x0, y0]) - 0.5) / np.array([x1 - x0, y1 - y0], float)
    return transform_points(TREES.trees(crop[None], TREES.box, initial[None])[0], invert_affine(matrix))


def main() -> None:
    rows = []
    for root in (SHARED / "data", SHARED / "turned"):
        for path in find_annotation_files(root):
            annotations = json.loads(path.read_text())
            if not str(annotations.get("landmarks_kind", "")).startswith("human"):
                continue
            for entry in annotations["images"]:
                if not entry.get("faces"):
                    continue
                image, _ = read_image(path.parent / entry["file"])
                found = DETECT.run([image])[0]
                for detected, truth_index in match(found, [f["box"] for f in entry["faces"]]):
                    truth_face = entry["faces"][truth_index]
                    truth = np.array(truth_face["landmarks68"])
                    today = copy.deepcopy(found[detected])
                    ALIGN.run([image], [today])
                    theta = yaw_from_five(found[detected].detector_points)
                    shape = turned(theta)
                    first = one_pass(image, transform_points(shape, umeyama(five(shape),
                                                                            found[detected].detector_points)[:2]))
                    from_template = one_pass(image, transform_points(shape, umeyama(shape, first)[:2]))
                    from_itself = one_pass(image, first)
                    rows.append((face_yaw(truth_face), np.degrees(theta),
                                 *(nme_over_box(points, truth)
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
