"""Stage logic around plugins: the options users set that are not a model's business.

- detect: smallest and largest face size (filtered after detection, see the MTCNN bug in MODELS.md),
  rotation retries for frames where nothing is found, panoramas also looked at in windows;
- align: hands the aligner its options (normalisation, which detector made the boxes);
- mask: runs each chosen masker.

Each stage takes and returns plain lists, with no queue or process, so the single-process engine
and the pool workers run exactly the same code. ``run_isolated`` is ``run`` for engines: one item
a plugin cannot handle (a hostile frame, a degenerate face) costs only itself, not the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable

import numpy as np

from extractor import panorama
from extractor.faces import DetectedFace
from extractor import fields
from extractor.fields import one_field
from extractor.geometry import invert_affine, nms, overlapping, rotate_image, transform_points, widen_image
from extractor.hdr import as_sdr
from extractor.plugins import registry
from extractor.plugins.base import Batch, Plugin
from extractor.noise import seen_through_noise
from extractor.tracking import FaceFollower


@dataclass
class StageConfig:
    """Everything needed to build the stages in any process (picklable, small)."""

    detector: str = registry.DEFAULTS["detect"]
    aligner: str = registry.DEFAULTS["align"]
    maskers: tuple[str, ...] = (registry.DEFAULTS["mask"],)
    batch_sizes: dict[str, int] = field(default_factory=dict)  # plugin stage -> batch size
    min_size: int = 0  # pixels: smaller faces are dropped after detection
    min_size_percent: float = 0.0  # or faceswap's: a percentage of the frame's shorter side
    max_size: int = 0  # pixels: larger faces are dropped after detection (0: none)
    max_size_percent: float = 0.0  # or faceswap's: a percentage of the frame's shorter side (0: none)
    rotations: tuple[int, ...] = ()  # frames with no face are looked at again turned by these (--rotate on)
    upright_look: bool = True  # frames whose faces lie on their side are looked at again turned upright
    normalization: str = "auto"
    re_feed: int = 0  # the aligner's last pass run again from this many moved crops, averaged (--re-feed)
    identity: str | None = None  # identity plugin name, or None for no embeddings
    plugin_options: dict[str, dict] = field(default_factory=dict)  # "stage.name" -> constructor options
    backend: str | None = None  # Keras backend asked for (--backend / KERAS_BACKEND); None: auto
    track_every: int = 0  # a video's faces followed between full detections every this many frames; 0: none
    track_step: int = 1  # frames from one frame of the run to the next (--extract-every-n)
    upright: int = 0  # degrees clockwise that turn a video's stored frames upright (its display rotation)
    # A stored pixel's width over its height as players show it (an anamorphic video's sample aspect
    # ratio, a DVD's 32:27): the detector and the aligner look at the frames widened so.
    pixel_aspect: float = 1.0
    # An HDR video's transfer ("pq" or "hlg"; None: SDR): the detector and the aligner look at its
    # frames tone-mapped as an SDR player shows them (extractor/hdr.py).
    hdr_transfer: str | None = None
    # An interlaced video: the detector and the aligner look at one field of each frame with any
    # combing (extractor/fields.py), the whole frame combed where faces move.
    one_field: bool = False
    # A video that does not say it is interlaced, and a photo folder (frames saved from a video):
    # one field of each frame that shows combing (``fields.combed``: interlaced pictures stored
    # as progressive ones); a --filter reference photo's too (``for_photos``).
    one_field_if_combed: bool = False
    # Photos, and a video whose sampled frames show faces only a finer view finds: the detector
    # looks closer at each frame (CenterFace: its finer look from fine_if_from_close, not fine_if_from).
    close_look: bool = False
    # A video's frames (not imported; if tracked, only every frame): the detector's doubtful faces
    # (CenterFace's confirm_from up to its threshold) are passed on, and kept where frames are
    # written only where the frame before or after has a face there (extractor/neighbours.py).
    neighbours: bool = False

    def for_photos(self) -> StageConfig:
        """This configuration for photos (a --filter reference): looked at as they are, not as a
        video's frames are shown (turned, widened, tone-mapped, one field), and not followed;
        but a photo that shows combing (a frame saved from an interlaced video) one field at a
        time where the run's frames that do are: its face is compared with theirs."""
        return replace(self, upright=0, pixel_aspect=1.0, hdr_transfer=None, one_field=False, track_every=0)

    def plugin_names(self, stage: str) -> list[str]:
        return {"detect": [self.detector], "align": [self.aligner], "mask": list(self.maskers),
                "identity": [self.identity or registry.DEFAULTS["identity"]]}[stage]

    def changed_plugin_options(self) -> dict[str, dict]:
        """The chosen plugins' options that differ from the packaged configuration and decide which
        faces are found and where (a detector's threshold, its ``max_side``...; not batch sizes or
        runtimes): recorded in the alignments header, as a resume must match them."""
        from extractor.config import load_config

        packaged, changed = load_config(None)["plugins"], {}
        for stage in ("detect", "align", "mask"):
            for name in self.plugin_names(stage):
                key, default = f"{stage}.{name}", packaged.get(stage, {}).get(name, {})
                differ = {option: value for option, value in self.plugin_options.get(key, {}).items()
                          if option not in ("batch_size", "runtime") and default.get(option) != value}
                if differ:
                    changed[key] = differ
        return changed

    def batch_size(self, stage: str) -> int:
        """The batch a stage's plugins run (--batch-size, else the configured option, else the
        plugin's own; the largest where a stage has several plugins)."""
        if self.batch_sizes.get(stage):
            return self.batch_sizes[stage]
        return max(self.plugin_options.get(f"{stage}.{name}", {}).get("batch_size")
                   or registry.get_plugin_class(stage, name).batch_size for name in self.plugin_names(stage))

    def on_runtime(self, stage: str, label: str) -> "StageConfig":
        """This config with the stage's GPU plugins set to run ``label`` (the plan's choice, e.g.
        ``keras/torch`` or ``onnxruntime``), for a worker planned on a GPU."""
        options = {key: dict(value) for key, value in self.plugin_options.items()}
        backend = label[len("keras/"):] if label.startswith("keras/") else self.backend
        for name in self.plugin_names(stage):
            cls = registry.get_plugin_class(stage, name)
            if label in cls.gpu_runtimes(self.backend, options.get(f"{stage}.{name}")):
                options.setdefault(f"{stage}.{name}", {}).update(cls.options_for_runtime(label))
        return replace(self, plugin_options=options, backend=backend)

    def create(self, stage: str, name: str, **options) -> Plugin:
        """The plugin with its configured options; explicit ``options`` and --batch-size win."""
        merged = dict(self.plugin_options.get(f"{stage}.{name}", {}))
        merged.update({k: v for k, v in options.items() if v is not None})
        if self.batch_sizes.get(stage):
            merged["batch_size"] = self.batch_sizes[stage]
        if stage == "detect" and self.close_look:
            merged["close_look"] = True
        if registry.get_plugin_class(stage, name).runtime == "keras":
            merged["backend"] = self.backend
        return registry.create(stage, name, **merged)


def _face_moved(face: DetectedFace, matrix: np.ndarray) -> DetectedFace:
    """A face's box and key points moved by ``matrix`` (2x3): from a turned or widened view of a
    frame back to the frame, or on to such a view."""
    corners = transform_points([[face.left, face.top], [face.right, face.bottom]], matrix)
    left, top = corners.min(0)
    right, bottom = corners.max(0)
    out = DetectedFace(left, top, right - left, bottom - top, face.score)
    if face.detector_points is not None:
        out.detector_points = transform_points(face.detector_points, matrix)
    return out


def looked_at(image: np.ndarray, config: StageConfig, field: bool | None = None) -> np.ndarray:
    """A video frame as players show it, but for its geometry (``as_shown`` widens it): one field
    of an interlaced frame (``on_one_field``, or ``field`` where given), an HDR frame tone-mapped
    (``as_sdr``)."""
    field = on_one_field(image, config) if field is None else field
    return as_sdr(one_field(image) if field else image, config.hdr_transfer)


def on_one_field(image: np.ndarray, config: StageConfig) -> bool:
    """Whether the video frame ``image`` is looked at one field at a time: a frame with any
    combing of a video that says it is interlaced (its frames may hold progressive pictures:
    film on a DVD, PsF), a frame that shows combing of one that does not."""
    if config.one_field:
        return fields.combed(image, share=0)
    return config.one_field_if_combed and fields.combed(image)


def face_on_one_field(image: np.ndarray, face: DetectedFace, config: StageConfig, frame_on_one_field: bool) -> bool:
    """Whether a face stage looks at ``face`` one field at a time: its frame is
    (``frame_on_one_field``, ``on_one_field``), or, of a video that does not say it is
    interlaced, the face's surroundings show any combing (a face that moves in a still picture:
    too little of the frame for ``on_one_field``)."""
    if frame_on_one_field or not config.one_field_if_combed:
        return frame_on_one_field
    return fields.combed_around(image, face.left, face.top, face.width, face.height)


def as_shown(images: list[np.ndarray], aspect: float, detect) -> list[list[DetectedFace]]:
    """``detect`` on the images widened as players show them (``widen_image``), faces brought
    back to the stored images' pixels: a face squeezed sideways is found and placed less well."""
    if aspect == 1:
        return detect(images)
    widened = [widen_image(image, aspect) for image in images]
    found = detect([image for image, _ in widened])
    return [[_in_float32(_face_moved(face, back)) for face in faces] for faces, (_, back) in zip(found, widened)]


def _in_float32(face: DetectedFace) -> DetectedFace:
    """The face's box and key points in float32, the precision faces cross the pool's queues in
    (a detector's faces are float32 already): the aligner gets the same face in every engine."""
    face.left, face.top, face.width, face.height = (float(np.float32(value)) for value in
                                                    (face.left, face.top, face.width, face.height))
    if face.detector_points is not None:
        face.detector_points = np.asarray(face.detector_points, np.float32).astype(np.float64)
    return face


def upright_turn(faces: list[DetectedFace]) -> int:
    """Degrees clockwise (90, 180, 270) that would stand up the faces found lying on their side
    or upside down (turned more than 45 degrees, by the detector's key points), the turn most of
    them ask for; 0 when none is. A photo stored sideways without saying so shows every face
    turned, and the detector, trained on upright faces, finds only some of them (half of the
    annotated photos' faces): looked at turned upright, it finds the rest."""
    asked: dict[int, int] = {}
    for turn in (face.standing_turn() for face in faces):
        if turn:
            asked[turn] = asked.get(turn, 0) + 1
    return max(asked, key=lambda turn: (asked[turn], -turn)) if asked else 0


def merge_looks(first: list[DetectedFace], again: list[DetectedFace]) -> list[DetectedFace]:
    """The faces of two looks at one frame: where both found a face (boxes overlapping as much as
    the detector's own NMS allows), the better-scored one, usually the look that saw it upright."""
    faces = first + again
    keep = nms([face.box_ltrb for face in faces], [face.score for face in faces], LOOKS_OVERLAP)
    return [faces[i] for i in sorted(keep)]


LOOKS_OVERLAP = 0.3  # CenterFace's own NMS overlap
LYING_SPOT_CONFIRMS = 0.3  # a face of the look for lying faces is kept where it overlaps a doubtful spot this much


def by_key(keys: list, items: list, run: Callable[[list, object], list]) -> list:
    """``run(items, key)`` once for the items of each key (a batch per key: the turn a batch of
    images is looked at), the results put back in the items' order."""
    results: list = [None] * len(items)
    for key in dict.fromkeys(keys):
        chosen = [i for i, other in enumerate(keys) if other == key]
        for i, result in zip(chosen, run([items[i] for i in chosen], key)):
            results[i] = result
    return results


def isolating_failures(run_batch: Callable[[list[int]], list], count: int) -> tuple[list, dict[int, str]]:
    """``run_batch(indices)`` over all ``count`` items; if it raises, over each item alone, so a
    bad item is found and skipped. Returns per-item results (None for a failed item) and a
    one-line reason per failed index."""
    try:
        return list(run_batch(list(range(count)))), {}
    except Exception:  # noqa: BLE001 - any plugin error: find the item that causes it
        pass
    results, failures = [], {}
    for index in range(count):
        try:
            results.append(run_batch([index])[0])
        except Exception as exc:  # noqa: BLE001 - the item is skipped, with why
            results.append(None)
            failures[index] = (f"{type(exc).__name__}: {exc}".strip().splitlines() or ["error"])[0][:300]
    return results, failures


class DetectStage:
    name = "detect"

    def __init__(self, config: StageConfig):
        self.config = config
        self.plugin: Plugin = config.create("detect", config.detector)
        self.follower = FaceFollower(config.track_every, config.track_step, partial(on_one_field, config=config)) \
            if config.track_every else None
        # Doubtful faces passed on from this score (a video's frames; 0: none): see ``_with_doubtful``.
        self.doubtful_from = float(getattr(self.plugin, "confirm_from", 0.0)) if config.neighbours else 0.0
        self.outside_size_limits = 0  # faces found that --min-size/--max-size left out, in all (the summary)

    @property
    def batch_size(self) -> int:
        return self.plugin.batch_size

    def load(self) -> None:
        self.plugin.load()

    def run(self, images: list[np.ndarray], upright: int = 0, video: bool = True) -> list[list[DetectedFace]]:
        """Faces found in each image (of --min-size to --max-size), retried on rotated copies if none.
        ``upright``: degrees clockwise that turn the images upright (a video stored turned): they are looked
        at so, and the faces come back in the stored images' coordinates. ``video``: the images are
        the video's frames, looked at as players show them (``looked_at``, ``as_shown``); not a
        --filter reference photo. The size limits judge the faces of every look at once, at the
        end: a frame whose faces are all outside them has faces, and is not looked at again turned."""
        config = self.config if video else self.config.for_photos()
        found = as_shown([looked_at(image, config) for image in images], config.pixel_aspect,
                         lambda shown: self._turned(shown, upright, self._run_upright) if upright
                         else self._run_upright(shown))
        return self._sized_within(found, images)

    @staticmethod
    def _turned(images: list[np.ndarray], angle: int, detect) -> list[list[DetectedFace]]:
        """``detect`` on the images turned ``angle`` degrees clockwise, faces turned back."""
        turned = [rotate_image(image, angle) for image in images]
        found = detect([image for image, _ in turned])
        return [[_face_moved(face, back) for face in faces] for faces, (_, back) in zip(found, turned)]

    def _run_upright(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        found, doubtful = self._detect_with_doubts(images)
        if self.config.upright_look:
            self._look_again_upright(images, found)
            self._look_for_lying_faces(images, found, doubtful)
        for angle in self.config.rotations:
            empty = [i for i, faces in enumerate(found) if not faces]
            if not empty:
                break
            for i, faces in zip(empty, self._turned([images[i] for i in empty], angle, self._detect)):
                found[i] = faces
        return self._with_doubtful(found, doubtful) if self.doubtful_from else found

    def _with_doubtful(self, found: list[list[DetectedFace]],
                       doubtful: list[list[DetectedFace]]) -> list[list[DetectedFace]]:
        """Each frame's faces, then its doubtful spots scored from ``doubtful_from`` that no face
        found explains: faces too, scored under the detector's threshold, which the writer keeps
        only where a neighbouring frame confirms them (``neighbours.NeighbourCheck``)."""
        out = []
        for faces, spots in zip(found, doubtful):
            spots = [spot for spot in spots if spot.score >= self.doubtful_from]
            explained = overlapping([spot.box_ltrb for spot in spots], [face.box_ltrb for face in faces], LOOKS_OVERLAP)
            out.append(faces + [spot for spot, known in zip(spots, explained) if not known])
        return out

    def _look_again_upright(self, images: list[np.ndarray], found: list[list[DetectedFace]]) -> None:
        """Frames whose faces lie on their side, looked at again turned upright (``upright_turn``),
        their faces merged into ``found`` (in place)."""
        turns = [upright_turn(faces) for faces in found]
        looked = [i for i, turn in enumerate(turns) if turn]
        again = self._detect_turned([images[i] for i in looked], [turns[i] for i in looked])
        for i, faces in zip(looked, again):
            found[i] = merge_looks(found[i], faces)

    def _look_for_lying_faces(self, images: list[np.ndarray], found: list[list[DetectedFace]],
                              doubtful: list[list[DetectedFace]]) -> None:
        """Frames whose doubtful spots that no found face explains lie on their side or upside
        down, looked at again turned as most of those spots ask (``upright_turn``), then the other
        quarter turns until a look confirms a spot (upside down, the spots' key points are often
        read a quarter off); a face found there is kept only where it confirms such a spot, beside
        the faces found as the frame stands (in place). Such spots are every face of a photo stored
        turned without saying so, or one face lying among upright ones (someone lying down, a head
        bent far over: missed as the frame stands in 4 of 17 faces turned 90 degrees in their
        photos). A blind turned look at every frame finds faces in clutter (``--rotate on``)."""
        spots = [[spot for spot, explained in zip(spots, overlapping([spot.box_ltrb for spot in spots],
                                                                     [face.box_ltrb for face in faces], LOOKS_OVERLAP))
                  if not explained] for faces, spots in zip(found, doubtful)]
        waiting = {i: [turn] + [other for other in (180, 90, 270) if other != turn]
                   for i, turn in enumerate(upright_turn(unexplained) for unexplained in spots) if turn}
        while waiting:
            looked = sorted(waiting)
            again = self._detect_turned([images[i] for i in looked], [waiting[i][0] for i in looked])
            for i, faces in zip(looked, again):
                confirms = overlapping([face.box_ltrb for face in faces], [spot.box_ltrb for spot in spots[i]],
                                       LYING_SPOT_CONFIRMS)
                lying = [face for face, confirmed in zip(faces, confirms) if confirmed]
                found[i] = merge_looks(found[i], lying) if found[i] else lying
                waiting[i].pop(0)
                if lying or not waiting[i]:
                    del waiting[i]

    def run_isolated(self, images: list[np.ndarray], indices: list[int] | None = None) -> tuple[list, dict[int, str]]:
        """``run``, with a frame the detector fails on returned as None (and why). Given the
        frames' ``indices`` in a video (consecutive frames, in order) and a tracking interval,
        faces are followed from frame to frame (``FaceFollower``), one frame after the other.
        Doubtful faces (``_with_doubtful``) come back for a video's frames only: a --filter
        reference photo (index -1, or no index) has no neighbouring frame to confirm them."""
        results, failures = self._detect_isolated(images, indices)
        if self.doubtful_from:
            results = [faces if faces is None or (indices and indices[i] >= 0) else
                       [face for face in faces if not self._doubtful(face)] for i, faces in enumerate(results)]
        return results, failures

    def _detect_isolated(self, images: list[np.ndarray], indices: list[int] | None) -> tuple[list, dict[int, str]]:
        # A video's frames (index 0 on) are looked at upright and as players show them; a --filter
        # reference photo (index -1, or no index) as it is.
        looks = [(self.config.upright, True) if index >= 0 else (0, False) for index in indices] if indices \
            else [(0, False)] * len(images)
        if self.follower is None or indices is None:
            return isolating_failures(lambda chosen: self._run_at([images[i] for i in chosen],
                                                                  [looks[i] for i in chosen]), len(images))
        results, failures = [], {}
        for position, (image, index, (angle, video)) in enumerate(zip(images, indices, looks)):
            # A frame that fails is tried once more alone; the failure left the follower without a
            # frame before, so that second try is a full detection.
            step = partial(self.follower.step, image, index, partial(self._full, upright=angle, video=video),
                           partial(self._crops, upright=angle))
            found, failed = isolating_failures(lambda _, step=step: [step()], 1)
            # Followed faces come back in frame pixels: only now can --min-size and --max-size judge them.
            results.append(None if found[0] is None else self._sized_within(found, [image])[0])
            if failed:
                failures[position] = failed[0]
        return results, failures

    def _run_at(self, images: list[np.ndarray], looks: list[tuple[int, bool]]) -> list[list[DetectedFace]]:
        """``run`` on each image at its own ``upright`` angle, as a video frame or not (a batch per look)."""
        return by_key(looks, images, lambda chosen, look: self.run(chosen, *look))

    def _full(self, image: np.ndarray, upright: int = 0, video: bool = True) -> list[DetectedFace]:
        return self.run([image], upright, video)[0]

    def _crops(self, crops: list[np.ndarray], turns: list[int | None], upright: int = 0) -> list[list[DetectedFace]]:
        """Faces in follow crops, each crop turned as its face stood in the frame before (``turns``,
        ``DetectedFace.standing_turn``; where the detector gives none, as the video's frames are turned):
        a face lying on its side or upside down is looked for standing up, as the detector
        found it. Faces come back in crop pixels (``run_isolated`` judges their size in the frame's)."""
        def detect(views: list[np.ndarray]) -> list[list[DetectedFace]]:  # one field: cut so (follow_crop)
            return as_shown([as_sdr(view, self.config.hdr_transfer) for view in views], self.config.pixel_aspect,
                            self.plugin.detect_crops)

        return by_key([upright if turn is None else turn for turn in turns], crops,
                      lambda views, angle: self._turned(views, angle, detect) if angle else detect(views))

    def _detect(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        return self._detect_with_doubts(images)[0]

    def _detect_turned(self, images: list[np.ndarray], turns: list[int]) -> list[list[DetectedFace]]:
        """Each image looked at turned by its own turn (a batch per turn), faces turned back."""
        return by_key(turns, images, lambda views, angle: self._turned(views, angle, self._detect))

    def _detect_with_doubts(self, images: list[np.ndarray]) -> tuple[list[list[DetectedFace]],
                                                                      list[list[DetectedFace]]]:
        """The faces found in each image (whatever their size: ``run`` applies the limits), and its
        doubtful spots (``Batch.doubtful``; none from a detector that reports none). A noisy
        image is looked at smoothed too (``seen_through_noise``), the faces of both looks merged."""
        batch = self.plugin.process(Batch(list(images)))
        found, doubtful = batch.detections, batch.doubtful or [[] for _ in images]
        smoothed = {i: view for i, view in enumerate(map(seen_through_noise, images)) if view is not None}
        if smoothed:
            again = self.plugin.process(Batch(list(smoothed.values())))
            for j, i in enumerate(smoothed):
                found[i] = merge_looks(found[i], again.detections[j])
                doubtful[i] = merge_looks(doubtful[i], again.doubtful[j] if again.doubtful else [])
        return self._look_along_panoramas(images, found), doubtful

    def _look_along_panoramas(self, images: list[np.ndarray],
                              found: list[list[DetectedFace]]) -> list[list[DetectedFace]]:
        """``found`` with the faces of each panorama's windows (``panorama``) merged in: a frame
        far longer than tall, seen whole, shows its faces too small. Windows run in batches of the
        detector's size (its memory on a GPU is planned for that)."""
        looks = [(i, window) for i, image in enumerate(images)
                 for window in panorama.windows(*image.shape[:2], self.plugin.max_side)]
        found = list(found)
        for start in range(0, len(looks), self.batch_size):
            chosen = looks[start:start + self.batch_size]
            views = [panorama.cut(images[i], window) for i, window in chosen]
            for (i, window), faces in zip(chosen, self.plugin.process(Batch(views)).detections):
                found[i] = merge_looks(found[i], panorama.to_frame(window, faces))
        return found

    def _sized_within(self, faces: list[list[DetectedFace]], images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """The faces of each image whose box's longer side reaches --min-size and does not pass
        --max-size: pixels, or (faceswap's ``-m``, ``-x``) a percentage of the image's shorter side;
        the others are counted (``outside_size_limits``)."""
        config, kept = self.config, []
        for found, image in zip(faces, images):
            short = min(image.shape[:2])
            minimum = max(config.min_size, config.min_size_percent / 100 * short)
            maximum = max(config.max_size, config.max_size_percent / 100 * short) or float("inf")
            inside = [minimum <= max(f.width, f.height) <= maximum for f in found]
            kept.append([f for f, ok in zip(found, inside) if ok])
            # A doubtful face left out is no face found: only a neighbouring frame could have made it one.
            self.outside_size_limits += sum(not ok and not self._doubtful(f) for f, ok in zip(found, inside))
        return kept

    def _doubtful(self, face: DetectedFace) -> bool:
        """One of the doubtful faces passed on for a video (``_with_doubtful``)."""
        return bool(self.doubtful_from) and face.recorded_score < self.plugin.threshold


def process_looked_at(process: Callable[[Batch], None], images: list[np.ndarray], faces: list[DetectedFace],
                      video: list[bool] | None, config: StageConfig, makes_landmarks: bool) -> None:
    """A face plugin's ``process`` on each face's image as it is, but for the frames that players
    show otherwise than as decoded, which it sees as shown (``process_as_shown``): a video
    frame's looks are ``config``'s, a --filter reference photo's (``video`` False; None: all are
    video frames) ``config.for_photos()``'s."""
    looks = (config, config.for_photos())
    frames_on_one_field: dict[tuple[int, int], bool] = {}  # (frame, look): each frame judged once

    def look(i: int) -> tuple[int, bool, bool]:  # (0: a video frame, 1: a reference photo; on one field; shown)
        photo = int(video is not None and not video[i])
        key = (id(images[i]), photo)
        if key not in frames_on_one_field:
            frames_on_one_field[key] = on_one_field(images[i], looks[photo])
        field = face_on_one_field(images[i], faces[i], looks[photo], frames_on_one_field[key])
        return photo, field, field or looks[photo].pixel_aspect != 1 or bool(looks[photo].hdr_transfer)

    by_look = [look(i) for i in range(len(faces))]
    for kind in sorted(set(by_look)):
        chosen = [i for i, each in enumerate(by_look) if each == kind]
        chosen_images, chosen_faces = [images[i] for i in chosen], [faces[i] for i in chosen]
        photo, field, shown = kind
        if shown:
            process_as_shown(process, chosen_images, chosen_faces, looks[photo], makes_landmarks, field)
        else:
            process(Batch(chosen_images, chosen_faces))


def process_as_shown(process: Callable[[Batch], None], images: list[np.ndarray], faces: list[DetectedFace],
                     config: StageConfig, makes_landmarks: bool, field: bool) -> None:
    """A face plugin's ``process`` on the faces' frames as players show them (``looked_at``: one
    field, tone-mapped; widened, ``widen_image``; each frame made so once), the faces' box, key
    points and landmarks moved onto that view for it. Afterwards each face's box, key points and
    landmarks are the stored frame's again: the landmarks the plugin made brought back
    (``makes_landmarks``, the aligner), else the ones it was given (an identity embedding looks
    at the face as shown: a squeezed face reads as another person). ``field``: on one field."""
    views: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for image in images:
        if id(image) not in views:
            views[id(image)] = widen_image(looked_at(image, config, field), config.pixel_aspect)
    backs = [views[id(image)][1] for image in images]
    kept = [(face.left, face.top, face.width, face.height, face.detector_points, face.landmarks) for face in faces]
    made = []
    try:
        for face, back in zip(faces, backs):
            forward = invert_affine(back)
            shown = _face_moved(face, forward)
            face.left, face.top, face.width, face.height = shown.left, shown.top, shown.width, shown.height
            face.detector_points = shown.detector_points
            if face.landmarks is not None:
                face.landmarks = transform_points(face.landmarks, forward)
        process(Batch([views[id(image)][0] for image in images], list(faces)))
        made = [None if face.landmarks is None else transform_points(face.landmarks, back)
                for face, back in zip(faces, backs)]
    finally:
        for face, (left, top, width, height, points, landmarks) in zip(faces, kept):
            face.left, face.top, face.width, face.height = left, top, width, height
            face.detector_points, face.landmarks = points, landmarks
    if makes_landmarks:
        for face, landmarks in zip(faces, made):
            face.landmarks = landmarks


class FaceStage:
    """A stage that takes faces (each with its frame) and returns them completed."""

    def run(self, images: list[np.ndarray], faces: list[DetectedFace],
            video: list[bool] | None = None) -> list[DetectedFace]:
        """The faces completed; ``video``: whether each face's image is a video frame (looked at
        as players show it) or a --filter reference photo (as it is); None: all video frames."""
        raise NotImplementedError

    def run_isolated(self, images: list[np.ndarray], faces: list[DetectedFace],
                     video: list[bool] | None = None) -> tuple[list, dict[int, str]]:
        """``run``, with a face the plugin fails on returned as None (and why)."""
        return isolating_failures(lambda chosen: self.run([images[i] for i in chosen], [faces[i] for i in chosen],
                                                          None if video is None else [video[i] for i in chosen]),
                                  len(faces))


class AlignStage(FaceStage):
    name = "align"

    def __init__(self, config: StageConfig):
        self.plugin: Plugin = config.create("align", config.aligner, normalization=config.normalization,
                                            detector=config.detector, re_feed=config.re_feed or None)
        self.config = config  # how its frames are looked at: pixel_aspect, hdr_transfer, one_field

    @property
    def batch_size(self) -> int:
        return self.plugin.batch_size

    def load(self) -> None:
        self.plugin.load()

    def run(self, images: list[np.ndarray], faces: list[DetectedFace],
            video: list[bool] | None = None) -> list[DetectedFace]:
        """Fills ``landmarks`` of each face (one frame per face, frames may repeat); a video's
        frames are looked at as players show them (``process_looked_at``)."""
        process_looked_at(self.plugin.process, images, faces, video, self.config, makes_landmarks=True)
        return faces


class MaskStage(FaceStage):
    """Runs every chosen masker; also the base of the identity stage (one plugin, same shape)."""

    name = "mask"

    def __init__(self, config: StageConfig):
        self.plugins: list[Plugin] = [config.create("mask", name) for name in config.maskers]

    @property
    def batch_size(self) -> int:
        return min((p.batch_size for p in self.plugins), default=64)

    def load(self) -> None:
        for plugin in self.plugins:
            plugin.load()

    def run(self, images: list[np.ndarray], faces: list[DetectedFace],
            video: list[bool] | None = None) -> list[DetectedFace]:
        """Adds every chosen mask to each face (from its landmarks and its image as decoded, photo
        or video frame alike)."""
        if faces:
            for plugin in self.plugins:
                plugin.process(Batch(list(images), list(faces)))
        return faces


class IdentityStage(MaskStage):
    name = "identity"

    def __init__(self, config: StageConfig):
        self.plugins = [config.create("identity", config.identity or registry.DEFAULTS["identity"])]
        self.config = config  # how its frames are looked at, as the aligner's

    def run(self, images: list[np.ndarray], faces: list[DetectedFace],
            video: list[bool] | None = None) -> list[DetectedFace]:
        """Adds each face's embedding, from its face as players show it (``process_looked_at``) on a
        video frame, as it is on a --filter reference photo: the two are compared."""
        process_looked_at(self.plugins[0].process, images, faces, video, self.config, makes_landmarks=False)
        return faces


STAGE_CLASSES = {"detect": DetectStage, "align": AlignStage, "mask": MaskStage, "identity": IdentityStage}


def build_stage(stage: str, config: StageConfig) -> DetectStage | FaceStage:
    """The stage named ``stage`` with its plugins built (not loaded): the one name -> class map."""
    return STAGE_CLASSES[stage](config)


@dataclass
class StageResult:
    """A stage's work on a batch of frames. Faces keep the index they got at detection, so a
    face dropped by one stage does not renumber the others."""

    faces: list[dict[int, DetectedFace]]  # per frame: face index -> face
    frame_failures: dict[int, str] = field(default_factory=dict)  # frame position -> why (detect)
    face_failures: list[tuple[int, int, str]] = field(default_factory=list)  # (frame position, face index, why)


def run_on_frames(stage, images: list[np.ndarray], faces: list[dict[int, DetectedFace]] | None = None,
                  indices: list[int] | None = None) -> StageResult:
    """Every engine's way to run a stage: detection on ``images`` (``faces`` None), or a face
    stage on the given faces of each image in batches of the stage's size. What a plugin cannot
    process is routed here, the same for every engine: a frame the detector fails on is a frame
    failure (not written; a resumed run tries it again), a face a stage fails on is a face
    failure (the frame is written without it). ``indices``: the frames' places in a video, for a
    detect stage that follows faces; -1 for a --filter reference photo, looked at as it is (a
    detect stage without indices looks at photos; a face stage, at the run's frames)."""
    if faces is None:
        found, failures = stage.run_isolated(images, indices)
        return StageResult([dict(enumerate(f)) if f is not None else {} for f in found], failures)
    owners = [(frame, index) for frame, per_frame in enumerate(faces) for index in per_frame]
    result = StageResult([{} for _ in images])
    size = max(1, stage.batch_size)
    for start in range(0, len(owners), size):
        chunk = owners[start:start + size]
        done, failures = stage.run_isolated([images[frame] for frame, _ in chunk],
                                            [faces[frame][index] for frame, index in chunk],
                                            None if indices is None else [indices[frame] >= 0 for frame, _ in chunk])
        for position, ((frame, index), face) in enumerate(zip(chunk, done)):
            if position in failures:
                result.face_failures.append((frame, index, f"{stage.name}: {failures[position]}"))
            else:
                result.faces[frame][index] = face
    return result
