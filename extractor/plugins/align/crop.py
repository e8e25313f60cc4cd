"""Face crops for landmark models, placed through the mean face, and their refinement.

Landmark models are trained on crops framed a particular way (dlib on its HOG detector's boxes,
the face mesh on 1.5x BlazeFace boxes). Feeding them another detector's box costs accuracy, so
every aligner here frames its crop in *mean-face space*: a similarity transform from the mean
face to the frame (the "pose") places the crop, upright, at the framing the model expects.

The first pose comes from the detector's key points (calibrated per detector in
``calibration.py``) or, without points, from its box; after one prediction the pose is re-fitted
on the 68 predicted points and the model runs again ("refinement"), which removes most of the
dependence on the detector.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.calibration import DETECTOR_POINTS, DETECTOR_BOXES
from extractor.faces import DetectedFace
from extractor.geometry import ALIGN_POINTS, invert_affine, points_size, transform_points, umeyama
from extractor.mean_face import MEAN_FACE_68
from extractor.plugins.base import Aligner, Batch
from extractor.plugins.options import Limit


MIN_POINTS_SPREAD = 2.0  # pixels: key points closer together than this say nothing of a face's pose
QUALITY_SCALE = 0.03  # the last pass moving the points this far (in face sizes) scores 1/e
# --re-feed moves the last pass's crop by this much (mean-face units: about 4 % of the width of the
# 68 points, as faceswap's re-feed moves its box by up to 5 % of its side). On the steadiness clips
# of `make tracking` (docs/accuracy.md) 0.025 and 0.1 steadied less than 0.05.
RE_FEED_SHIFT = 0.05
RE_FEED_CROPS = 64  # re-fed crops per model call at most: 64 of dlib68's are 20 MB, whatever the batch size


def alignment_quality(before: np.ndarray, after: np.ndarray) -> float:
    """0-1: how little the last refinement pass moved the points, in face sizes (sqrt(w x h) of
    their extent). A face the model reads well lands in the same place whatever its framing; a
    turned, blurred or hidden face does not. Measured against the true error of the
    human-annotated faces of ../shared/data and ../shared/turned: Spearman -0.61 over 20 faces
    (docs/accuracy.md)."""
    moved = np.linalg.norm(np.asarray(after) - np.asarray(before), axis=1).mean() / max(points_size(after), 1.0)
    return float(np.exp(-moved / QUALITY_SCALE))


def spread_out(points: np.ndarray) -> bool:
    """Whether key points (a detector's, say) are finite and spread enough to place a face by."""
    points = np.asarray(points, dtype=np.float64)
    return bool(np.isfinite(points).all() and np.ptp(points, axis=0).max() >= MIN_POINTS_SPREAD)


def pose_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """2x3 similarity from mean-face units to frame pixels, fitted on the inner-face points."""
    return umeyama(MEAN_FACE_68[ALIGN_POINTS], np.asarray(landmarks)[ALIGN_POINTS])[:2]


def pose_from_detection(face: DetectedFace, detector: str | None) -> np.ndarray:
    """First pose estimate from a detection: its key points if calibrated (and spread out), else its box."""
    points = DETECTOR_POINTS.get(detector or "")
    if points is not None and face.detector_points is not None:
        found = np.asarray(face.detector_points, dtype=np.float64)[:len(points)]
        if spread_out(found):  # else (a hostile or broken detection) the box places the crop
            return umeyama(np.array(points), found)[:2]
    centre_x, centre_y, side = DETECTOR_BOXES.get(detector or "", DETECTOR_BOXES["default"])
    scale = max(face.width, face.height) / side
    # Upright: mean-face point (cx, cy) lands on the box centre.
    return np.array([[scale, 0.0, face.left + face.width / 2 - scale * centre_x],
                     [0.0, scale, face.top + face.height / 2 - scale * centre_y]])


def re_feed_moves(pose: np.ndarray, count: int, shift: float = RE_FEED_SHIFT) -> np.ndarray:
    """(count, 2) frame-pixel moves of ``shift`` mean-face units for a face placed by ``pose``, in
    evenly spread directions: fixed, unlike faceswap's random ones, so that every engine and every
    rerun gives the same points."""
    scale = np.sqrt(abs(np.linalg.det(pose[:, :2])))  # pixels per mean-face unit
    angles = 2 * np.pi * np.arange(count) / max(count, 1)
    return scale * shift * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def re_fed_poses(pose: np.ndarray, count: int) -> list[np.ndarray]:
    """``pose`` moved by each of its ``re_feed_moves``."""
    return [np.asarray(pose, np.float64) + np.c_[np.zeros((2, 2)), move] for move in re_feed_moves(pose, count)]


def crop_matrix(pose: np.ndarray, crop_box: tuple[float, float, float], crop_size: int) -> np.ndarray:
    """2x3 matrix from frame pixels to an upright ``crop_size`` crop of the mean-face square
    ``crop_box`` = (centre x, centre y, side) in mean-face units."""
    centre_x, centre_y, side = crop_box
    # crop pixels -> mean-face units -> frame pixels, then invert.
    unit = side / crop_size
    crop_to_mean = np.array([[unit, 0.0, centre_x - side / 2], [0.0, unit, centre_y - side / 2]])
    crop_to_frame = np.vstack([pose, [0, 0, 1]]) @ np.vstack([crop_to_mean, [0, 0, 1]])
    return invert_affine(crop_to_frame[:2])


def warp_crop(image: np.ndarray, matrix: np.ndarray, crop_size: int) -> np.ndarray:
    """Cut the crop out of the frame (replicated borders for faces cut by the frame edge),
    bilinear whether the face is enlarged or shrunk (``warpAffine`` has no area averaging: its
    INTER_AREA is bilinear). dlib's trees were trained on raw pixels: shrinking large faces with
    area averaging first, nearest-pixel and bicubic sampling all aligned worse (docs/accuracy.md)."""
    return cv2.warpAffine(image, matrix, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def landmarks_to_frame(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop-pixel points back to frame pixels."""
    return transform_points(points, invert_affine(matrix))


class CropAligner(Aligner):
    """An aligner whose model sees an upright crop framed in mean-face space.

    Subclasses set ``crop_box`` (the framing their model was trained on, in mean-face units) and
    implement ``predict`` (crops -> points in crop pixels) and ``to_68`` (model points -> iBUG 68).
    ``refine`` extra passes re-frame the crop on the previous pass's landmarks, for faces whose
    detected box is smaller than ``refine_below`` pixels (0: every face): on ../shared/data the
    pass moves the mean NME of faces under 40 px from 0.0756 to 0.0673, of larger faces only
    from 0.0344 to 0.0337, while it doubles the aligner's cost.

    ``re_feed`` (faceswap's ``--re-feed``): each face's last pass runs again from that many
    slightly moved crops and the points are averaged, which steadies them (the model's answer
    depends a little on where its crop falls) at the cost of that many more passes.
    """

    crop_box: tuple[float, float, float] = (0.5, 0.5, 1.5)
    option_limits = {"refine": Limit(0, 5, meaning="extra passes"), "refine_below": Limit(0, meaning="pixels"),
                     "re_feed": Limit(0, 10, meaning="moved crops, as --re-feed")}

    def __init__(self, batch_size=None, detector: str | None = None, refine: int = 1, refine_below: int = 0,
                 re_feed: int = 0, **options):
        super().__init__(batch_size, **options)
        self.detector = detector
        self.refine = refine
        self.refine_below = int(refine_below)
        self.re_feed = int(re_feed)

    def process(self, batch: Batch) -> Batch:
        if not self.loaded:
            self.load()
        last_poses = [pose_from_detection(face, self.detector) for face in batch.faces]
        self._one_pass(batch, last_poses)
        chosen = [i for i, face in enumerate(batch.faces)
                  if not self.refine_below or max(face.width, face.height) < self.refine_below]
        before: dict[int, np.ndarray] = {}
        if chosen and self.refine:
            again = Batch([batch.images[i] for i in chosen], [batch.faces[i] for i in chosen])
            for _ in range(self.refine):  # the faces are shared: their landmarks update in place
                before = {i: face.landmarks for i, face in zip(chosen, again.faces)}
                for i, face in zip(chosen, again.faces):
                    last_poses[i] = pose_from_landmarks(face.landmarks)
                self._one_pass(again, [last_poses[i] for i in chosen])
        if self.re_feed:
            self._re_feed(batch, last_poses)
        for i, points in before.items():
            batch.faces[i].quality = alignment_quality(points, batch.faces[i].landmarks)
        batch.feed = batch.prediction = None
        return batch

    def _re_feed(self, batch: Batch, poses: list[np.ndarray]) -> None:
        """Average each face's points with those of its last pass run from ``re_feed`` moved
        crops (several faces' in one model call, up to ``RE_FEED_CROPS`` crops)."""
        step = max(1, RE_FEED_CROPS // self.re_feed)
        for start in range(0, len(poses), step):
            faces, images = batch.faces[start:start + step], batch.images[start:start + step]
            moved = [re_fed_poses(pose, self.re_feed) for pose in poses[start:start + step]]
            fed = Batch([image for image in images for _ in range(self.re_feed)],
                        feed=[pose for poses_of_face in moved for pose in poses_of_face])
            self.pre_process(fed)
            self.predict(fed)
            found = [landmarks_to_frame(self.to_68(points), matrix)
                     for points, matrix in zip(fed.prediction, fed.feed[1])]
            for i, face in enumerate(faces):
                face.landmarks = np.mean([face.landmarks, *found[i * self.re_feed:(i + 1) * self.re_feed]], axis=0)

    def _one_pass(self, batch: Batch, poses: list[np.ndarray]) -> None:
        batch.feed = poses
        self.pre_process(batch)
        self.predict(batch)
        self.post_process(batch)

    def pre_process(self, batch: Batch) -> None:
        """``batch.feed`` holds the poses; replace it with (crops, crop matrices)."""
        crops, matrices = [], []
        for image, pose in zip(batch.images, batch.feed):
            matrix = crop_matrix(pose, self.crop_box, self.input_size)
            crop = self.normalize(warp_crop(image, matrix, self.input_size))
            crops.append(self.to_model_colour(crop))
            matrices.append(matrix)
        batch.feed = (crops, matrices)

    def post_process(self, batch: Batch) -> None:
        """``batch.prediction`` holds model points in crop pixels, one array per face."""
        for face, points, matrix in zip(batch.faces, batch.prediction, batch.feed[1]):
            face.landmarks = landmarks_to_frame(self.to_68(points), matrix)

    def to_68(self, points: np.ndarray) -> np.ndarray:
        return points
