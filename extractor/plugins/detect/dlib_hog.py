"""dlib's HOG + linear SVM frontal face detector (``dlib-bin``): no TensorFlow, frontal only.

Its boxes are the kind dlib's 68-point predictor was trained on, so it pairs well with the
dlib aligner on frontal faces. Upsampling once lets it find faces down to about 40 px.
"""
from __future__ import annotations

from extractor.faces import DetectedFace
from extractor.plugins.base import Batch, DeviceNeed, Detector
from extractor.plugins.options import Limit
from extractor.plugins.registry import register


@register
class DlibHogDetector(Detector):
    name = "dlib-hog"
    input_size = 0
    colour_format = "RGB"
    batch_size = 1
    # Each upsampling doubles the frame's sides: 2 on a 4K frame is an 8K one; 9 took 8 GB.
    option_limits = {"upsample": Limit(0, 3, meaning="doublings of the frame's size")}
    device_need = DeviceNeed(gpu=False)
    runtime = "dlib"
    description = "dlib HOG frontal detector (CPU); frontal faces only"

    def __init__(self, batch_size=None, upsample: int = 1, threshold: float = 0.0, **options):
        super().__init__(batch_size, **options)
        self.upsample = upsample
        self.threshold = threshold
        self.detector = None

    def load(self):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        super().load()

    def pre_process(self, batch: Batch) -> None:
        batch.feed = [self.to_model_colour(image) for image in batch.images]

    def predict(self, batch: Batch) -> None:
        batch.prediction = [self.detector.run(image, self.upsample, self.threshold)[:2]
                            for image in batch.feed]

    def post_process(self, batch: Batch) -> None:
        batch.detections = [
            [DetectedFace(rect.left(), rect.top(), rect.width(), rect.height(), score)
             for rect, score in zip(rects, scores)]
            for rects, scores in batch.prediction]
