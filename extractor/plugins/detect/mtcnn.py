"""MTCNN (P/R/O-net cascade, TensorFlow) from the ``mtcnn`` package: the default detector.

It finds small faces well (every annotated face in ../shared/data). Its ``min_face_size`` is
left at the package default on purpose: raising it loses large faces (the pyramid ignores it),
so the detect stage filters small faces after detection instead.

Package bug worked around: ``mtcnn.utils.bboxes.sort_by_scores`` sorts the boxes of the whole
batch with an unstable sort, so boxes of equal score (saturated near 1.0) are ordered by chance
and NMS may keep a box a few pixels off depending on which *other* frames share the batch. A
resumed or pooled run then differs from an uninterrupted one. A stable sort makes each frame's
result independent of its batch (measured: 0 px difference over the sample video).
"""
from __future__ import annotations

import numpy as np

from extractor.faces import DetectedFace
from extractor.plugins.base import Batch, DeviceNeed, Detector
from extractor.plugins.registry import register


def _stable_sort_by_scores(tensor, scores, ascending=True):
    """``mtcnn.utils.bboxes.sort_by_scores`` with a stable sort (see the module docstring)."""
    order = np.argsort(scores, kind="stable")
    return tensor[order if ascending else order[::-1]]


@register
class MTCNNDetector(Detector):
    name = "mtcnn"
    input_size = 0  # whole frame, scale pyramid
    colour_format = "RGB"
    batch_size = 4
    device_need = DeviceNeed(gpu=True, base_mb=350, per_item_mb=120)
    runtime = "tensorflow"
    description = "MTCNN cascade (TensorFlow); finds small faces; 5 points per face"

    def __init__(self, batch_size=None, thresholds=(0.6, 0.7, 0.8), **options):
        super().__init__(batch_size, **options)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.model = None

    def load(self):
        import mtcnn.utils.bboxes
        import tensorflow as tf
        from mtcnn import MTCNN

        mtcnn.utils.bboxes.sort_by_scores = _stable_sort_by_scores

        device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
        self.model = MTCNN(device=device)
        super().load()

    def pre_process(self, batch: Batch) -> None:
        batch.feed = [np.ascontiguousarray(self.to_model_colour(image)) for image in batch.images]

    def predict(self, batch: Batch) -> None:
        # One call per distinct frame size: the package pads mixed sizes to the largest, which
        # wastes work on image folders; video frames all share one size and batch together.
        results = [None] * len(batch.feed)
        by_shape: dict[tuple, list[int]] = {}
        for index, image in enumerate(batch.feed):
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            rows = self.model.detect_faces(
                [batch.feed[i] for i in indices], box_format="xyxy", output_type="numpy",
                threshold_pnet=self.thresholds[0], threshold_rnet=self.thresholds[1],
                threshold_onet=self.thresholds[2])
            rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
            for local, index in enumerate(indices):
                results[index] = rows[rows[:, 0] == local]
        batch.prediction = results

    def post_process(self, batch: Batch) -> None:
        batch.detections = []
        for rows in batch.prediction:
            faces = []
            for row in rows:
                left, top, right, bottom, score = row[1:6]
                face = DetectedFace(left, top, right - left, bottom - top, score)
                face.detector_points = row[6:16].reshape(2, 5).T  # stored as x1..x5, y1..y5
                faces.append(face)
            batch.detections.append(faces)
