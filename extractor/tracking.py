"""Following faces across the frames of a video: track ids and steady landmarks (pure computation).

- ``TrackAssigner`` gives each face of a frame the id of the face it continues in the previous
  frames (the best box overlap, one face per track), or a new id; a track unseen for
  ``max_gap`` frames ends.
- ``OneEuroFilter`` smooths one track's landmarks over time (Casiez et al., CHI 2012): a low-pass
  filter whose cut-off rises with the points' speed, so a still face stops shimmering while a
  moving one is followed without lag.

The engines feed frames in input order; nothing here knows about processes or files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from extractor.fields import one_field
from extractor.geometry import nms


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b`` (left, top, width,
    height rows): an ``len(a) x len(b)`` matrix."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def greedy_pairs(overlap: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs of an overlap matrix, the best first, each row and column used once,
    none under ``threshold``."""
    pairs, rows, columns = [], set(), set()
    for row, column in sorted(np.ndindex(*overlap.shape), key=lambda rc: -overlap[rc]):
        if overlap[row, column] < threshold:
            break
        if row not in rows and column not in columns:
            pairs.append((row, column))
            rows.add(row)
            columns.add(column)
    return pairs


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_frame: int


@dataclass
class TrackAssigner:
    """Track ids for the faces of consecutive frames, by box overlap."""

    min_iou: float = 0.3  # below this a face starts a new track
    max_gap: int = 5  # frames a track may go unseen (a missed detection, a hand in front) and go on
    next_id: int = 0
    tracks: list[_Track] = field(default_factory=list)

    def assign(self, frame_index: int, boxes) -> list[int]:
        """The track id of each box of frame ``frame_index`` (frames in increasing order)."""
        self.tracks = [t for t in self.tracks if frame_index - t.last_frame <= self.max_gap]
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        ids = [-1] * len(boxes)
        if self.tracks and len(boxes):
            overlap = box_iou(boxes, np.stack([t.box for t in self.tracks]))
            for face, track in greedy_pairs(overlap, self.min_iou):
                ids[face] = self.tracks[track].track_id
        for face, box in enumerate(boxes):
            if ids[face] == -1:
                ids[face] = self.next_id
                self.tracks.append(_Track(self.next_id, box, frame_index))
                self.next_id += 1
            else:
                track = next(t for t in self.tracks if t.track_id == ids[face])
                track.box, track.last_frame = box, frame_index
        return ids


class OneEuroFilter:
    """The One Euro filter over an array of points (e.g. 68 x 2 landmarks), one sample a frame.

    ``min_cutoff`` (Hz) sets the smoothing of a still face (lower: steadier), ``beta`` how fast
    the cut-off rises with speed (higher: less lag on a moving face); ``rate`` is the frame rate
    (a sample may bring its own).
    """

    def __init__(self, rate: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff, rate: float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, float))
        return 1.0 / (1.0 + tau * rate)

    def __call__(self, points, rate: float | None = None) -> np.ndarray:
        """The next sample, ``rate`` (Hz) given by its time since the one before (a variable frame
        rate), else the filter's."""
        points = np.asarray(points, float)
        if self.value is None:
            self.value, self.speed = points.copy(), np.zeros_like(points)
            return points.copy()
        rate = rate or self.rate
        speed = (points - self.value) * rate
        self.speed = self.speed + self._alpha(self.d_cutoff, rate) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value = self.value + self._alpha(cutoff, rate) * (points - self.value)
        return self.value.copy()


# --- following faces between full detections (the detect stage) --------------------------------

CONTEXT = 3.0  # a follow crop's side, in face sizes: room to move, and the surroundings a detector scores faces in
CROP_SIDE = 128  # pixels the detector sees per follow crop (a 640 x 360 frame is 15x more)
MIN_FOLLOW_IOU = 0.3  # a face found in the crop continues the face only if it overlaps its last box this much
CUT_DISTANCE = 0.3  # colour-histogram distance (0-2) between consecutive frames that marks a scene cut


@dataclass(frozen=True)
class FrameSignature:
    """What a scene cut changes: the frame's size (joined clips) and a coarse hue-saturation
    histogram (sums to 1), which changes at a cut and hardly at all when people move or the
    camera pans."""

    shape: tuple
    histogram: np.ndarray


def frame_signature(image: np.ndarray) -> FrameSignature:
    import cv2

    small = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
    return FrameSignature(image.shape, hist / max(float(hist.sum()), 1.0))


def is_scene_cut(before: FrameSignature | None, after: FrameSignature) -> bool:
    """A new scene: another frame size (the boxes of the frame before say nothing of this one),
    or colours that jump."""
    return before is not None and (before.shape != after.shape or
                                   float(np.abs(after.histogram - before.histogram).sum()) >= CUT_DISTANCE)


def follow_crop(image: np.ndarray, box, top_field: bool = False) -> tuple[np.ndarray, float, float, float]:
    """The square around a face's last box (``CONTEXT`` face sizes, zero beyond the frame),
    resized to ``CROP_SIDE``; and the scale and offset that map crop pixels back to the frame
    (frame = crop / scale + offset). ``top_field``: cut from the frame's top field (``one_field``,
    an interlaced video's), made of the lines around the square only."""
    import cv2

    left, top, width, height = box
    side = max(8, int(round(max(width, height) * CONTEXT)))
    x0 = int(round(left + width / 2 - side / 2))
    y0 = int(round(top + height / 2 - side / 2))
    frame_h, frame_w = image.shape[:2]
    rows = slice(max(0, y0), min(frame_h, y0 + side))
    columns = slice(max(0, x0), min(frame_w, x0 + side))
    if top_field and rows.start < rows.stop:
        # From an even line (the top field's) to the line below the square (an odd line's lower neighbour).
        start = rows.start - rows.start % 2
        view = one_field(image[start:min(frame_h, rows.stop + 1), columns])
        view = view[rows.start - start:rows.stop - start]
    else:
        view = image[rows, columns]
    pad = (max(0, -y0), max(0, y0 + side - frame_h), max(0, -x0), max(0, x0 + side - frame_w))
    if any(pad):
        view = cv2.copyMakeBorder(view, *pad, cv2.BORDER_CONSTANT, value=0)
    scale = CROP_SIDE / side
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(view, (CROP_SIDE, CROP_SIDE), interpolation=interpolation), scale, x0, y0


class FaceFollower:
    """The detect stage's memory of a video: where its faces were in the frame before.

    A frame gets a full detection when it starts a range (its index a multiple of ``every``),
    follows a gap (the frame before, ``step`` frames back with --extract-every-n, was not seen
    here: another worker's range, a resumed run) or a scene cut (a change of frame size, joined
    clips, is one). Otherwise each face of the frame
    before is looked for in a small crop around its last box (``detect_crops``: 15x fewer pixels than the frame); a face
    not found there is dropped, and a face entering the picture waits for the next full detection.
    The result depends only on the frames since the range began, so every engine and every
    worker count gives the same faces.

    Tried and not kept (docs/tracking.md): watching the spots a full detection scored just under
    its threshold and taking them as faces once a crop scored them over it found more of the
    faces every-frame detection finds on some frames only, but also faces that are not there
    (21-57 false faces on clips whose every face is boxed, against 1 for every-frame detection).
    """

    def __init__(self, every: int, step: int = 1, on_one_field: Callable[[np.ndarray], bool] | None = None):
        self.every = max(1, int(every))
        self.frame_step = step  # frames from one frame of the run to the next (--extract-every-n)
        # Whether a frame's follow crops are cut from its top field (an interlaced video's frame).
        self.on_one_field = on_one_field or (lambda image: False)
        self.reset()

    def reset(self) -> None:
        self.last_index: int | None = None
        self.faces: list = []
        self.signature: FrameSignature | None = None
        self.full_detections = 0

    def needs_full_detection(self, index: int, signature: FrameSignature) -> bool:
        return (index % self.every == 0 or self.last_index is None or index != self.last_index + self.frame_step
                or is_scene_cut(self.signature, signature))

    def step(self, image: np.ndarray, index: int, detect_full, detect_crops) -> list:
        """The faces of frame ``index``: ``detect_full(image)`` -> faces on a full detection,
        ``detect_crops(crops, turns)`` -> faces (crop pixels) per crop when following, each crop
        looked at turned as its face lay in the frame before (``standing_turn``)."""
        signature = frame_signature(image)
        full = self.needs_full_detection(index, signature)
        self.last_index, self.signature = None, None  # a failure below leaves the next frame a full detection
        faces = detect_full(image) if full else self._follow(image, detect_crops)
        self.full_detections += full
        self.faces, self.last_index, self.signature = faces, index, signature
        return faces

    def _follow(self, image: np.ndarray, detect_crops) -> list:
        if not self.faces:
            return []
        of_field = self.on_one_field(image)
        crops = [follow_crop(image, (f.left, f.top, f.width, f.height), of_field) for f in self.faces]
        found = detect_crops([crop for crop, *_ in crops], [f.standing_turn() for f in self.faces])
        followed = []
        for before, (_, scale, x0, y0), candidates in zip(self.faces, crops, found):
            for face in candidates:
                _to_frame(face, scale, x0, y0)
            boxes = np.array([[f.left, f.top, f.width, f.height] for f in candidates]).reshape(-1, 4)
            overlap = box_iou(boxes, _box(before))[:, 0] if len(candidates) else np.zeros(0)
            if len(overlap) and overlap.max() >= MIN_FOLLOW_IOU:
                followed.append(candidates[int(overlap.argmax())])
        return _one_per_place(followed)


def _box(face) -> np.ndarray:
    return np.array([[face.left, face.top, face.width, face.height]], float)


def _to_frame(face, scale: float, x0: float, y0: float) -> None:
    """A face found in a follow crop, moved to frame pixels (in place), in float32 as a full
    detection's faces are: a face must reach the aligner bit-identical in every engine."""
    f32 = np.float32
    face.left, face.top = float(f32(face.left / scale + x0)), float(f32(face.top / scale + y0))
    face.width, face.height = float(f32(face.width / scale)), float(f32(face.height / scale))
    if face.detector_points is not None:
        face.detector_points = (face.detector_points / scale + np.array([x0, y0])).astype(f32).astype(np.float64)


def _one_per_place(faces: list, max_iou: float = 0.5) -> list:
    """Two followed faces that converged on one face: the better-scored one stays (input order kept)."""
    keep = nms([face.box_ltrb for face in faces], [face.score for face in faces], max_iou)
    return [faces[i] for i in sorted(keep)]


# --- track ids and steady landmarks (the writer, frames in input order) ------------------------

class TrackLabeller:
    """Gives the faces of each written frame their track id and, with ``smooth``, steadies their
    landmarks along the track (a One Euro filter per track, on points measured in face sizes so
    one setting suits small and large faces). Runs where frames are written, in input order,
    whatever engine and worker found the faces. The default cut-off and speed response were
    chosen on clips with known motion (docs/tracking.md): 1 Hz and 0.5 cut jitter by 63 % but
    lagged (NME doubled); 4 Hz and 40 cut it by 31 % with NME no worse."""

    def __init__(self, rate: float, smooth: bool = True, first_id: int = 0, step: int = 1,
                 min_cutoff: float = 4.0, beta: float = 40.0):
        self.rate, self.smooth, self.step = rate / step, smooth, step  # step: --extract-every-n
        self.min_cutoff, self.beta = min_cutoff, beta
        self.assigner = TrackAssigner(max_gap=5 * step, next_id=first_id)
        self.first_id = first_id
        self.filters: dict[int, tuple[OneEuroFilter, float, int]] = {}  # track -> filter, face size, last frame
        self.signature: FrameSignature | None = None  # the frame before's, to see scene cuts
        self.time: float | None = None  # the frame before's time (seconds)

    def label(self, frame_index: int, faces: list, image: np.ndarray | None = None, time: float | None = None) -> None:
        """Sets ``track_id`` (and steadied ``landmarks``) on each face of frame ``frame_index``;
        a scene cut (seen in ``image``; a change of frame size is one) ends every track. ``time``:
        the frame's time in seconds, so that a variable-frame-rate video's faces are steadied by
        the time that really passed (else each frame is one average frame's time on)."""
        before, self.time = self.time, time
        # 1 / the seconds since the frame before, where both have a time that goes forward; else the stream's rate
        rate = 1.0 / (time - before) if time is not None and before is not None and time > before else None
        if image is not None:
            signature = frame_signature(image)
            if is_scene_cut(self.signature, signature):
                self.assigner.tracks = []
            self.signature = signature
        ids = self.assigner.assign(frame_index, [[f.left, f.top, f.width, f.height] for f in faces])
        for face, track in zip(faces, ids):
            face.track_id = track
            if self.smooth and face.landmarks is not None:
                face.landmarks = self._steady(track, frame_index, face, rate)
        self.filters = {track: entry for track, entry in self.filters.items() if entry[2] == frame_index}

    def _steady(self, track: int, frame_index: int, face, rate: float | None) -> np.ndarray:
        entry = self.filters.get(track)
        if entry is None or entry[2] != frame_index - self.step:  # a new track, or one back after a gap: afresh
            entry = (OneEuroFilter(self.rate, self.min_cutoff, self.beta), max(face.width, face.height, 1.0), 0)
        smoother, size, _ = entry
        self.filters[track] = (smoother, size, frame_index)
        # From float32, the precision faces cross the pool's queues in: the same steadied points in every engine.
        return smoother(np.asarray(face.landmarks, np.float32).astype(float) / size, rate) * size

    @property
    def tracks(self) -> int:
        """Tracks begun in this run."""
        return self.assigner.next_id - self.first_id
