"""MTCNN (P/R/O-net cascade): Keras 3 networks built from the ``mtcnn`` package's weights, the
cascade in numpy/OpenCV (``mtcnn_cascade``); runs on any Keras backend and on a GPU.

It finds small faces well. ``min_face_size`` is left at the package default on purpose: raising
it loses large faces (the pyramid ignores it), so the detect stage filters small faces after
detection instead. The parity test holds it to the ``mtcnn`` package itself (boxes within 0.5 px,
scores within 1e-3).

Frames longer than ``max_side`` (default 1920) are shrunk for detection: the pyramid's first
level is 0.6 of the frame in float32, so a 48 MP photo would cost gigabytes; faces big enough to
align stay findable at 1920 px.

On a CPU, frames share a cascade only up to ``CPU_PIXELS_AT_ONCE``: small video frames gain from
running four together (a call's overhead shared), big ones do not, and four 1920 x 1440 photos at
once took 1.6 GB more (docs/performance.md). On a GPU the worker's memory budget bounds the batch.
"""
from __future__ import annotations

import numpy as np

from extractor.faces import DetectedFace
from extractor.geometry import shrink_to_side
from extractor.plugins.base import Batch, DeviceNeed, Detector
from extractor.plugins.options import SCORE, Limit
from extractor.plugins.detect.mtcnn_cascade import CascadeSettings, detect
from extractor.plugins.registry import register


CPU_PIXELS_AT_ONCE = 4_000_000  # four 640 x 360 or 1280 x 720 frames, one 1080p frame or photo


@register
class MTCNNDetector(Detector):
    name = "mtcnn"
    input_size = 0  # whole frame, scale pyramid
    colour_format = "RGB"
    batch_size = 4
    option_limits = {"thresholds": SCORE, "max_side": Limit(160, off=0, meaning="pixels")}
    device_need = DeviceNeed(gpu=True, base_mb=350, per_item_mb=120)
    runtime = "keras"
    description = "MTCNN cascade (Keras 3 on any backend); finds small faces; 5 points per face"

    def __init__(self, batch_size=None, thresholds=(0.6, 0.7, 0.8), backend: str | None = None,
                 max_side: int = 1920, **options):
        super().__init__(batch_size, **options)
        self.max_side = int(max_side)  # frames with a longer side are shrunk for detection (0: never)
        self.settings = CascadeSettings(thresholds=tuple(float(t) for t in thresholds))
        self.backend = backend
        self.nets = None
        self.on_gpu = False  # whether the networks run on a GPU (set by load)

    def load(self):
        from extractor.models.backend import default_backend, gpu_visible
        from extractor.models.mtcnn_nets import build_onet, build_pnet, build_rnet
        from extractor.models.runners import KerasRunner

        backend = self.backend or default_backend()
        self.nets = [KerasRunner(build, backend) for build in (build_pnet, build_rnet, build_onet)]
        self.on_gpu = gpu_visible(backend)
        super().load()

    def pre_process(self, batch: Batch) -> None:
        """RGB frames, shrunk to ``max_side``; ``batch.feed`` = (frames, their scales)."""
        frames, scales = [], []
        for image in batch.images:
            image, scale = shrink_to_side(image, self.max_side)
            frames.append(np.ascontiguousarray(self.to_model_colour(image)))
            scales.append(scale)
        batch.feed = (frames, scales)

    def predict(self, batch: Batch) -> None:
        """One cascade per group of frames of the same size: padding mixed sizes to the largest
        would waste work on image folders and make a frame's faces depend on its neighbours."""
        frames = batch.feed[0]
        results = [None] * len(frames)
        for same_shape in self.groups_of_one_shape(frames):
            at_once = self.frames_at_once(*frames[same_shape[0]].shape[:2])
            for start in range(0, len(same_shape), at_once):
                indices = same_shape[start:start + at_once]
                rows = detect([frames[i] for i in indices], *self.nets, self.settings)
                for local, index in enumerate(indices):
                    results[index] = rows[rows[:, 0] == local]
        batch.prediction = results

    def frames_at_once(self, height: int, width: int) -> int:
        """How many frames of this size run through one cascade."""
        return self.batch_size if self.on_gpu else max(1, min(self.batch_size, CPU_PIXELS_AT_ONCE // (height * width)))

    def post_process(self, batch: Batch) -> None:
        batch.detections = []
        for rows, scale in zip(batch.prediction, batch.feed[1]):
            faces = []
            if scale != 1.0:
                rows = rows.copy()
                rows[:, 1:5] /= scale
                rows[:, 6:16] /= scale
            for row in rows:
                left, top, right, bottom, score = row[1:6]
                face = DetectedFace(left, top, right - left, bottom - top, score)
                face.detector_points = row[6:16].reshape(2, 5).T  # stored as x1..x5, y1..y5
                faces.append(face)
            batch.detections.append(faces)
