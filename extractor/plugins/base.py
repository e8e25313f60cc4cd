"""The plugin contract: what every detector, aligner and masker declares and implements.

A plugin is pure computation on a batch: ``load`` once, then for each batch ``pre_process`` ->
``predict`` -> ``post_process``. It owns no thread, queue or process, so the same object runs in
a unit test, in the single-process engine and inside a pool worker. Its resource needs are data
on the class (as NeMo Curator's stages declare theirs) so the device planner can read them
without loading the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from extractor.faces import DetectedFace
from extractor.media import convert_colour
from extractor.models.backend import default_backend
from extractor.plugins.options import Limit
from extractor.workers.gpu_support import GPU_RUNTIME_ORDER


@dataclass(frozen=True)
class DeviceNeed:
    """What a plugin needs from a device: ``gpu`` is False for CPU-only runtimes (dlib)."""

    gpu: bool
    base_mb: int = 0
    per_item_mb: int = 0

    def vram_mb(self, batch_size: int) -> int:
        return self.base_mb + self.per_item_mb * batch_size


@dataclass
class Batch:
    """A batch moving through one plugin.

    ``images`` are BGR frames, one per item (several items may share one frame). Detect batches
    have no ``faces`` in; align and mask batches carry one face per item. ``feed`` and
    ``prediction`` are the plugin's own intermediate data.
    """

    images: list[np.ndarray]
    faces: list[DetectedFace] = field(default_factory=list)
    feed: Any = None
    prediction: Any = None
    # Detect output: the faces found in each image, and (detectors that score spots) the spots
    # scored under the threshold but not far: where a face may be that the model did not see well.
    detections: list[list[DetectedFace]] = field(default_factory=list)
    doubtful: list[list[DetectedFace]] = field(default_factory=list)


class Plugin:
    """Base of every plugin. Subclasses set the class attributes and implement the four steps."""

    name: ClassVar[str] = ""
    stage: ClassVar[str] = ""  # "detect", "align", "mask" or "identity"
    input_size: ClassVar[int] = 0  # side of the square the model sees (0: whole frame)
    colour_format: ClassVar[str] = "BGR"  # what pre_process hands the model
    batch_size: ClassVar[int] = 1  # default; the CLI may override per run
    device_need: ClassVar[DeviceNeed] = DeviceNeed(gpu=False)
    runtime: ClassVar[str] = "numpy"  # "keras", "tflite", "dlib" or "numpy": what a worker sets up
    cpu_heavy: ClassVar[bool] = False  # a neural network per frame: its stage gets the spare CPU cores
    description: ClassVar[str] = ""
    # Installable packages the plugin's model files or runtime come from, with how to install
    # each where `pip install extractor` does not bring it.
    model_packages: ClassVar[dict[str, str]] = {}
    # Packages the plugin runs without, but better with: package -> what is lost, how to install.
    optional_packages: ClassVar[dict[str, str]] = {}
    # Ranges of the numeric options (``options.Limit``), checked when a configuration sets them;
    # their kinds come from the constructor's defaults.
    option_limits: ClassVar[dict[str, Limit]] = {}

    def __init__(self, batch_size: int | None = None, **options):
        self.batch_size = batch_size or type(self).batch_size
        self.options = options
        self.loaded = False

    # --- the contract -------------------------------------------------------------------
    def load(self) -> None:
        """Load the model (once per process)."""
        self.loaded = True

    def pre_process(self, batch: Batch) -> None:
        raise NotImplementedError

    def predict(self, batch: Batch) -> None:
        raise NotImplementedError

    def post_process(self, batch: Batch) -> None:
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------
    def process(self, batch: Batch) -> Batch:
        """Run the three batch steps; loads the model on first use."""
        if not self.loaded:
            self.load()
        self.pre_process(batch)
        self.predict(batch)
        self.post_process(batch)
        batch.feed = batch.prediction = None
        return batch

    @classmethod
    def runtime_label(cls, backend: str | None, on_gpu: bool, options: dict | None = None) -> str:
        """What will run the model (given the run's backend, device and this plugin's options),
        for the printed plan and ``extractor plugins``."""
        return f"keras/{backend or default_backend()}" if cls.runtime == "keras" else cls.runtime

    @classmethod
    def gpu_runtimes(cls, backend: str | None, options: dict | None = None) -> list[str]:
        """What can run this plugin on a GPU (given --backend and its options), preferred first;
        the plan takes the first one installed with GPU support."""
        if not cls.device_need.gpu or cls.runtime != "keras":
            return []
        if backend:
            return [f"keras/{backend}"]
        return [label for label in GPU_RUNTIME_ORDER if label.startswith("keras/")]

    @classmethod
    def options_for_runtime(cls, label: str) -> dict:
        """Constructor options that make the plugin run ``label`` (one of ``gpu_runtimes``); a
        Keras backend comes through the stage config instead."""
        return {}

    def to_model_colour(self, image: np.ndarray) -> np.ndarray:
        return convert_colour(image, self.colour_format)

    @classmethod
    def batch_vram_mb(cls, batch_size: int | None = None) -> int:
        """GPU memory one batch needs (``batch_size``, or the plugin's own): its default budget."""
        return cls.device_need.vram_mb(batch_size or cls.batch_size)

    @classmethod
    def missing(cls) -> list[str]:
        """How to install what this plugin needs and is not installed (empty: ready)."""
        return _not_installed(cls.model_packages)

    @classmethod
    def missing_optional(cls) -> list[str]:
        """What the plugin does without the optional packages that are not installed, and how to install them."""
        return _not_installed(cls.optional_packages)

    @classmethod
    def info(cls) -> dict:
        need = cls.device_need
        return {"name": cls.name, "stage": cls.stage, "input_size": cls.input_size,
                "colour_format": cls.colour_format, "batch_size": cls.batch_size,
                "gpu": need.gpu, "vram_mb": cls.batch_vram_mb(), "runtime": cls.runtime,
                "cpu_runtime": cls.runtime_label(None, False),
                "gpu_runtime": " | ".join(cls.gpu_runtimes(None)) or None,
                "description": cls.description}


class Detector(Plugin):
    """Finds faces in whole frames: fills ``batch.detections`` (one list per image)."""

    stage = "detect"
    cpu_heavy = True
    max_side = 0  # frames with a longer side are shrunk to it for detection (0: seen at full size)

    def detect_crops(self, crops: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces (crop pixels) in small same-sized crops around faces being followed in a video:
        a plain detection here; a detector that enlarges small frames or takes second looks at
        whole frames skips that for crops (``CenterFaceDetector``)."""
        return self.process(Batch(list(crops))).detections

    @staticmethod
    def groups_of_one_shape(arrays: list[np.ndarray]) -> list[list[int]]:
        """Indices of ``arrays`` grouped by shape, for one network call per group: frames of
        different sizes never share a call (padding would make a frame's faces depend on its
        batch neighbours, and resume must give what one run gives)."""
        groups: dict[tuple, list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape, []).append(index)
        return list(groups.values())


class Aligner(Plugin):
    """Places 68 iBUG landmarks (frame pixels) on each face of the batch.

    ``normalization`` ("auto", "none", "clahe", "hist", "mean") is applied to the face crop the
    model sees, as faceswap's aligner normalisation does. Landmark models compare pixel values
    against thresholds learnt on well-lit faces, so dark, shadowed or flat faces lose accuracy;
    but normalising every crop costs accuracy on the well-lit ones (CLAHE on every crop: NME
    median 0.0477 -> 0.0539 on ../shared/data). "auto" (the default) applies CLAHE only to crops
    whose face is dim or flat (``needs_contrast``; a face spanning very few grey levels
    ``stretched`` over all of them first) and a gamma only to overexposed ones (``blown_out``),
    and only for aligners that declare ``contrast_sensitive`` (dlib's trees; the face mesh
    network gains nothing from it).
    """

    stage = "align"
    NORMALIZATIONS = ("auto", "none", "clahe", "hist", "mean")
    contrast_sensitive: ClassVar[bool] = False  # "auto" normalises its dim or flat crops

    def __init__(self, batch_size: int | None = None, normalization: str = "auto", **options):
        super().__init__(batch_size, **options)
        if normalization not in self.NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {self.NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization

    def normalize(self, crop: np.ndarray) -> np.ndarray:
        """Apply the chosen normalisation to a BGR crop."""
        if self.normalization == "auto":
            if not self.contrast_sensitive:
                return crop
            # A contrast-sensitive model reads intensity only: CLAHE on the grey crop costs a
            # third of the colour round trip (0.35 ms against 1.2 a crop), with the same accuracy.
            grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
            if blown_out(grey):
                return pulled_down(crop)
            if not needs_contrast(grey):
                return crop
            return cv2.cvtColor(_clahe(stretched(grey)), cv2.COLOR_GRAY2BGR)
        if self.normalization == "none":
            return crop
        if self.normalization == "mean":
            out = crop.astype(np.float32)
            out = (out - out.mean(axis=(0, 1))) / (out.std(axis=(0, 1)) + 1e-6) * 64.0 + 127.5
            return np.clip(out, 0, 255).astype(np.uint8)
        lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)
        if self.normalization == "hist":
            lab[..., 0] = cv2.equalizeHist(lab[..., 0])
        else:
            lab[..., 0] = _clahe(lab[..., 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def _clahe(channel: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of one 8-bit channel ("clahe", "auto")."""
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(np.ascontiguousarray(channel))


MIN_FACE_RANGE = 100  # grey levels between the 2nd and 98th percentile of a well-lit face
MIN_FACE_MEDIAN = 45  # median grey level under which a face is dark
MIN_CLAHE_RANGE = 32  # grey levels a face spans under which it is stretched over all 256 before CLAHE


def needs_contrast(crop: np.ndarray) -> bool:
    """Whether the face in the middle of an aligner crop (BGR, or already grey) is dim or flat:
    its luminance spans fewer than ``MIN_FACE_RANGE`` grey levels (2nd to 98th percentile) or its
    median is under ``MIN_FACE_MEDIAN``. The 8 human-annotated faces of ../shared/data span 110 or more; 13 of
    the 72 crops of its 36 faces (small, soft faces of dlib_faces) are under the limit."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    low, median, high = _face_levels(grey)
    return high - low < MIN_FACE_RANGE or median < MIN_FACE_MEDIAN


def stretched(grey: np.ndarray) -> np.ndarray:
    """``grey`` (an aligner crop), its face's levels stretched over all 256 where they span
    fewer than ``MIN_CLAHE_RANGE``: CLAHE's clip limit bounds how far it spreads a narrow
    histogram, so a very dark or very flat face kept too little contrast for dlib's trees
    (``python tools/dim_faces.py``: the photos darkened 6.7 times, with sensor noise, through
    H.264 at CRF 23, NME median 0.099 -> 0.072). Faces spanning more are left to CLAHE alone."""
    low, _, high = _face_levels(grey)
    if high - low >= MIN_CLAHE_RANGE:
        return grey
    levels = np.clip((np.arange(256, dtype=np.float32) - low) * (255.0 / max(high - low, 1)), 0, 255)
    return cv2.LUT(grey, levels.astype(np.uint8))


MIN_BLOWN_OUT_MEDIAN = 230  # median grey level from which a face with clipped highlights is blown out
CLIPPED_LEVEL = 250  # a 98th percentile this high: the face's brightest parts are clipped
PULL_DOWN_GAMMA = 2.5
_PULL_DOWN = (255.0 * (np.arange(256) / 255.0) ** PULL_DOWN_GAMMA + 0.5).astype(np.uint8)


def blown_out(grey: np.ndarray) -> bool:
    """Whether the face of an aligner crop (grey) is overexposed: a flash at close range, stage
    light, a phone exposing for a dark room. Its median is at ``MIN_BLOWN_OUT_MEDIAN`` or over and
    its highlights clipped; a bright face that still spans its levels (the photos of
    ../shared/data reach a median of 197) is not."""
    _, median, high = _face_levels(grey)
    return median >= MIN_BLOWN_OUT_MEDIAN and high >= CLIPPED_LEVEL


def pulled_down(crop: np.ndarray) -> np.ndarray:
    """A blown-out crop through a gamma of ``PULL_DOWN_GAMMA``: the few levels left between the
    face's skin and white are spread over more, where dlib's trees compare them (``python
    tools/bright_faces.py``: the annotated photos 2 stops overexposed, NME mean 0.081 -> 0.076;
    a face 1 stop over is seldom touched)."""
    return cv2.LUT(crop, _PULL_DOWN)


def _face_levels(channel: np.ndarray) -> np.ndarray:
    """The 2nd, 50th and 98th percentile levels of the middle of an aligner crop's ``channel``
    (8-bit), where the face lies."""
    height, width = channel.shape[:2]
    middle = np.ascontiguousarray(channel[height // 4:height - height // 4, width // 4:width - width // 4])
    cumulative = np.cumsum(cv2.calcHist([middle], [0], None, [256], [0, 256]).ravel()) / middle.size
    return np.searchsorted(cumulative, [0.02, 0.5, 0.98])


class Masker(Plugin):
    """Computes one named mask per face; stores it on ``face.masks[self.name]``.

    Maskers work in the aligned space of faceswap's ``centering`` (its maskers' 'face') at
    ``input_size``, and store their mask with ``Mask.from_aligned`` (or an explicit affine
    matrix) so that it maps back to the frame and faceswap places it where it belongs.
    """

    stage = "mask"
    centering: ClassVar[str] = "face"


def _not_installed(packages: dict[str, str]) -> list[str]:
    """The notes of ``packages`` (package -> note) whose package is not installed."""
    import importlib.util

    return [note for package, note in packages.items() if importlib.util.find_spec(package) is None]
