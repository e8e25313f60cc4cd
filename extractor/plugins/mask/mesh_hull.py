"""Face-mesh hull mask: the filled face oval of MediaPipe's 468-point mesh.

Unlike the landmark masks it follows the real face outline (forehead included) as the model
sees it. The mesh is framed on the face's 68 landmarks, so it runs after any aligner.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.crops import MASK_CROP
from extractor.faces import Mask
from extractor.geometry import transform_points
from extractor.plugins.align.crop import landmarks_to_frame, pose_from_landmarks
from extractor.plugins.align.face_mesh import FaceMeshAligner
from extractor.plugins.base import Batch, DeviceNeed, Masker
from extractor.plugins.registry import register
from extractor.plugins.tflite import TFLITE_PACKAGES

# The mesh's face oval, in order around the face (MediaPipe FACEMESH_FACE_OVAL).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]


@register
class MeshHullMasker(Masker):
    name = "mesh-hull"
    input_size = FaceMeshAligner.input_size
    colour_format = "RGB"
    batch_size = 16
    device_need = DeviceNeed(gpu=False)
    runtime = "tflite"
    description = "filled face oval of the MediaPipe face mesh (TFLite)"
    model_packages = TFLITE_PACKAGES

    def load(self):
        self.mesh = FaceMeshAligner(raw_mesh=True, refine=0)
        self.mesh.load()
        super().load()

    def pre_process(self, batch: Batch) -> None:
        batch.feed = [pose_from_landmarks(face.landmarks) for face in batch.faces]
        self.mesh.pre_process(batch)

    def predict(self, batch: Batch) -> None:
        self.mesh.predict(batch)

    def post_process(self, batch: Batch) -> None:
        for face, mesh, crop_matrix in zip(batch.faces, batch.prediction, batch.feed[1]):
            frame_points = landmarks_to_frame(mesh[FACE_OVAL], crop_matrix)
            to_mask = MASK_CROP.matrix(face.landmarks)
            outline = np.round(transform_points(frame_points, to_mask)).astype(np.int32)
            mask = np.zeros((MASK_CROP.size, MASK_CROP.size), np.uint8)
            cv2.fillPoly(mask, [outline], 255)
            face.masks[self.name] = Mask(mask, to_mask)
