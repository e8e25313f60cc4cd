"""extractor inside a Python program: the faces of an image, in this process, as insightface's
``FaceAnalysis.get`` gives them; no worker, no file written.

    import cv2
    from extractor.api import FaceExtractor

    extractor = FaceExtractor()                  # the CLI's defaults: CenterFace, dlib68, components
    image = cv2.imread("group.jpg")              # BGR, as OpenCV reads it
    for face in extractor.get(image):
        face.box_ltrb, face.score, face.landmarks, face.pose, face.quality, face.masks["components"]
        crop = extractor.crop(image, face)       # faceswap's 512 px 'head' crop; centering="arcface": 112 px

The faces are those ``extractor run`` finds in the same image in a photo folder (``photos=False``:
as a video's frame), with the same stage code and options (from the packaged configuration or
``config``), each a ``faces.DetectedFace``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from extractor.config import load_config, plugin_options
from extractor.crops import ARCFACE_SIZE, DEFAULT_CENTERING, DEFAULT_SIZE, CropSpec
from extractor.faces import DetectedFace
from extractor.models.backend import chosen_backend
from extractor.stages import StageConfig, build_stage, run_on_frames

logger = logging.getLogger(__name__)


def as_bgr8(image: np.ndarray) -> np.ndarray:
    """``image`` as the stages take it (8-bit BGR, H x W x 3): grey and BGRA are converted;
    anything else is a ``ValueError`` saying what was given."""
    if image is None:
        raise ValueError("expected an image, got None (what cv2.imread gives for a file it cannot read)")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image (numpy uint8, as cv2.imread gives), got "
                         f"{type(image).__name__}{' of ' + str(image.dtype) if isinstance(image, np.ndarray) else ''}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an image of H x W x 3 (BGR), H x W (grey) or H x W x 4 (BGRA), got shape "
                         f"{image.shape}")
    return np.ascontiguousarray(image)


def most_prominent(faces: dict[int, DetectedFace], shape: tuple, count: int) -> list[int]:
    """The keys of the ``count`` faces that are largest and nearest the image's centre, best
    first: box area less twice the squared distance of its centre from the image's, as
    insightface ranks them for ``max_num``."""
    centre = np.array([shape[1], shape[0]]) / 2

    def prominence(index: int) -> float:
        face = faces[index]
        offset = np.array([face.left + face.width / 2, face.top + face.height / 2]) - centre
        return face.width * face.height - 2.0 * float(offset @ offset)

    return sorted(faces, key=prominence, reverse=True)[:count]


class FaceExtractor:
    """Detect, align and mask the faces of images, one call at a time. The models load once,
    here; ``config``: a TOML file as ``extractor --config`` takes (its ``[run]`` detector, aligner,
    maskers and normalization are the defaults of the arguments left out; its plugin options
    apply; ``backend``: the Keras backend of GPU-capable models, else ``KERAS_BACKEND``, as for
    ``extractor run --backend``)."""

    def __init__(self, detector: str | None = None, aligner: str | None = None, maskers: tuple[str, ...] | None = None,
                 identity: bool = False, normalization: str | None = None, config: str | Path | None = None,
                 backend: str | None = None, photos: bool = True):
        """``photos=False`` for a video's frames: they are looked at as ``extractor run`` looks at a
        video's (a photo of 1280-2560 px whose view shows no big face gets a finer look too)."""
        settings = load_config(config)
        run = settings["run"]
        maskers = maskers or run["masker"]
        self.config = StageConfig(detector=detector or run["detector"], aligner=aligner or run["aligner"],
                                  maskers=(maskers,) if isinstance(maskers, str) else tuple(maskers),
                                  normalization=normalization or run["normalization"],
                                  identity="dlib-resnet" if identity else None, backend=chosen_backend(backend),
                                  plugin_options=plugin_options(settings, str(config or "default configuration")),
                                  close_look=photos)
        names = ("detect", "align", "mask") + (("identity",) if identity else ())
        self.stages = {name: build_stage(name, self.config) for name in names}
        for stage in self.stages.values():
            stage.load()

    def get(self, image: np.ndarray, max_num: int = 0) -> list[DetectedFace]:
        """The faces of one image, in the order they were detected; ``max_num`` > 0: at most that
        many, the largest and most central first (insightface's ``get(img, max_num)``)."""
        return self.get_many([as_bgr8(image)], max_num)[0]  # its own error, not images[0]'s

    def get_many(self, images: list[np.ndarray], max_num: int = 0) -> list[list[DetectedFace]]:
        """The faces of each image, the detector run on them in batches of its size. An image the
        detector cannot process raises ``RuntimeError``; a face a later stage cannot process is
        left out, with a warning."""
        checked = []
        for position, image in enumerate(images):
            try:
                checked.append(as_bgr8(image))
            except ValueError as exc:
                raise ValueError(f"images[{position}]: {exc}") from None
        size = max(1, self.stages["detect"].batch_size)
        return [faces for start in range(0, len(checked), size)
                for faces in self._batch(checked[start:start + size], max_num, start)]

    def _batch(self, images: list[np.ndarray], max_num: int, first: int = 0) -> list[list[DetectedFace]]:
        """``images``: the caller's ``images[first:first + len(images)]``, as its messages name them."""
        found = run_on_frames(self.stages["detect"], images)
        if found.frame_failures:
            position, why = next(iter(found.frame_failures.items()))
            raise RuntimeError(f"images[{first + position}]: the detector could not process it ({why})")
        faces = found.faces
        if max_num > 0:  # before the other stages, which then align only these
            faces = [{index: per_image[index] for index in most_prominent(per_image, image.shape, max_num)}
                     for per_image, image in zip(faces, images)]
        for name, stage in self.stages.items():
            if name != "detect":
                result = run_on_frames(stage, images, faces)
                for position, index, why in result.face_failures:
                    logger.warning("images[%d]: face %d left out (%s)", first + position, index, why)
                faces = result.faces
        return [[per_image[index] for index in (per_image if max_num > 0 else sorted(per_image))]
                for per_image in faces]

    @staticmethod
    def crop(image: np.ndarray, face: DetectedFace, size: int | None = None, centering: str = DEFAULT_CENTERING,
             coverage: float = 1.0) -> np.ndarray:
        """The aligned crop of ``face`` as ``extractor run`` writes it (faceswap's centerings,
        ``face``, ``head``, ``legacy``, or insightface's ``arcface`` template); ``size`` in pixels,
        by default 512 (112 for ``arcface``)."""
        crop = CropSpec(centering, size or (ARCFACE_SIZE if centering == "arcface" else DEFAULT_SIZE), coverage)
        return crop.cut(as_bgr8(image), face.aligned_matrix(crop))
