"""Two interchangeable runtimes for one packaged ONNX network: Keras 3 (any backend) and OpenCV DNN.

Both take a batch of NHWC float32 images and return the network's outputs as NHWC numpy arrays,
so a plugin's pre- and post-processing never knows which one ran. Parity tests
(``tests/test_models.py``) keep them equal; the plugin picks OpenCV DNN on a CPU-only machine
(measured faster there) and Keras wherever a GPU or an explicit ``--backend`` is asked for.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed: run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise RuntimeError(f"model file {path} is missing from package {package!r}")
    return path


class OpenCVRunner:
    """The ONNX file through ``cv2.dnn`` (CPU), one image per call.

    One image at a time on purpose: OpenCV's kernels block differently for other batch sizes, so
    a batched call moves outputs by float round-off, enough to flip a dlib landmark tree and move
    a landmark by a pixel; per image, a frame's result never depends on its batch (and batching
    gains nothing measurable on a CPU).
    """

    name = "opencv-dnn"

    def __init__(self, onnx_path: Path, output_names: list[str]):
        import cv2

        self.net = cv2.dnn.readNetFromONNX(str(onnx_path))
        self.output_names = output_names

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        per_image = []
        for image in images:
            self.net.setInput(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
            per_image.append(self.net.forward(self.output_names))
        return [np.concatenate([outs[k] for outs in per_image]).transpose(0, 2, 3, 1)
                for k in range(len(self.output_names))]


class KerasRunner:
    """The same weights as a Keras 3 model on ``backend`` (compiled per input shape)."""

    def __init__(self, onnx_path: Path, backend: str):
        from extractor.models.backend import use_backend

        use_backend(backend)
        import keras

        from extractor.models.onnx_to_keras import keras_model_from_onnx

        self.model = keras_model_from_onnx(onnx_path)
        self.name = f"keras-{keras.backend.backend()}"

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        outputs = self.model.predict_on_batch(images)
        return [np.asarray(out) for out in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
