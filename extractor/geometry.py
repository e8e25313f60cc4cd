"""Pure geometry shared by plugins and outputs: boxes, similarity transforms, the aligned-face matrix.

Kept free of models and I/O so that every stage (and the tests) can use it cheaply.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.mean_face import MEAN_FACE_68

# Points used to fit the aligned-face transform: brows, nose, eyes and mouth (as faceswap does).
# The jaw line is left out because it moves with pose much more than the inner face.
ALIGN_POINTS = slice(17, 68)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (3x3: rotation, uniform scale, translation; never a
    reflection) mapping 2-D ``src`` points onto ``dst`` points.

    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", PAMI 1991: the transform faceswap and insightface align faces with. In 2-D its
    SVD solution has a closed form (the best scaled rotation [[a, -b], [b, a]] from two sums),
    equal to it to rounding and about three times faster: it runs several times per face.
    Points collapsed onto one point (either side) give NaN, as the SVD form's rank test did.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    spread = float((s * s).sum())
    if spread == 0 or not (d * d).sum():
        return np.full((3, 3), np.nan)
    a = float((s * d).sum()) / spread
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / spread
    transform = np.array([[a, -b, 0.0], [b, a, 0.0], [0.0, 0.0, 1.0]])
    transform[:2, 2] = dst_mean - transform[:2, :2] @ src_mean
    return transform


def aligned_face_matrix(landmarks: np.ndarray, size: int, coverage: float) -> np.ndarray:
    """2x3 affine matrix from frame pixels to an aligned face of ``size`` pixels.

    The inner-face points of the mean face span the unit square; ``coverage`` is the fraction of
    the output that this square takes, so lower coverage shows more of the head around the face.
    """
    unit = umeyama(np.asarray(landmarks)[ALIGN_POINTS], MEAN_FACE_68[ALIGN_POINTS])[:2]
    padding = size * (1.0 - coverage) / 2.0
    scale = size * coverage
    out = unit * scale
    out[:, 2] += padding
    return out


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to an (N, 2) array of points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose_affine(*matrices: np.ndarray) -> np.ndarray:
    """One 2x3 affine matrix doing what ``matrices`` do, the last one first (as ``a @ b`` does)."""
    out = np.eye(3)
    for matrix in matrices:
        out = out @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return out[:2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def points_size(points: np.ndarray) -> float:
    """A face's size from its points: sqrt(w x h) of their extent (AFLW2000-3D's normaliser)."""
    width, height = np.ptp(np.asarray(points, dtype=np.float64), axis=0)
    return float(np.sqrt(width * height))


def ltrb(box) -> list:
    """A ``[left, top, width, height]`` box as ``[left, top, right, bottom]``."""
    left, top, width, height = box
    return [left, top, left + width, top + height]


def iou(box_a, box_b) -> float:
    """Intersection over union of two ``[left, top, right, bottom]`` boxes."""
    left = max(box_a[0], box_b[0])
    top = max(box_a[1], box_b[1])
    right = min(box_a[2], box_b[2])
    bottom = min(box_a[3], box_b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    area_a = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    area_b = (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def overlapping(boxes, others, threshold: float) -> np.ndarray:
    """Which of ``boxes`` (``[left, top, right, bottom, ...]``) overlap one of ``others`` by
    ``threshold`` (IoU) or more: a second look's faces that confirm what the first look doubted."""
    return np.array([any(iou(box, other) >= threshold for other in others) for box in boxes], bool)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first.

    A box is dropped when it overlaps an already kept one by IoU >= ``threshold``. Ties in score
    keep input order (stable sort), so the result never depends on what else is in the batch.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        left = np.maximum(boxes[best, 0], boxes[rest, 0])
        top = np.maximum(boxes[best, 1], boxes[rest, 1])
        right = np.minimum(boxes[best, 2], boxes[rest, 2])
        bottom = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap < threshold]
    return np.array(keep, dtype=np.int64)


def roll_from_points(points) -> float:
    """How far a face is turned in the picture, in degrees clockwise (0: upright, 90: lying with
    its chin to the left, 180: upside down), from a detector's key points: the eyes first, then
    the nose, then the mouth (two corners, or one centre point, then whatever else). The eyes-to-
    mouth line does not depend on which eye is listed first."""
    points = np.asarray(points, dtype=np.float64)
    mouth = points[3:5].mean(axis=0) if len(points) == 5 else points[3]
    down = mouth - points[:2].mean(axis=0)
    return float(np.degrees(np.arctan2(-down[0], down[1])))


def turn_to_stand(points) -> int:
    """Degrees clockwise (0, 90, 180 or 270) that stand up a face whose detector key points are
    ``points`` (``roll_from_points``): the nearest quarter turn, 0 for a face within 45 degrees
    of upright."""
    roll = roll_from_points(points)
    return int(round(-roll / 90.0)) * 90 % 360 if abs(roll) > 45 else 0


def rotate_image(image: np.ndarray, angle: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by a multiple of 90 degrees clockwise; returns the image and the 2x3 matrix
    that maps rotated-image points back to the original image."""
    import cv2

    height, width = image.shape[:2]
    angle %= 360
    if angle == 0:
        return image, np.array([[1.0, 0, 0], [0, 1.0, 0]])
    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    if angle not in codes:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {angle}")
    rotated = cv2.rotate(image, codes[angle])
    # Maps from rotated coordinates (x', y') back to original (x, y).
    back = {
        90: np.array([[0.0, 1, 0], [-1, 0, height - 1]]),
        180: np.array([[-1.0, 0, width - 1], [0, -1, height - 1]]),
        270: np.array([[0.0, -1, width - 1], [1, 0, 0]]),
    }[angle]
    return rotated, back


def widen_image(image: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` as players show it when a stored pixel is ``aspect`` times as wide as tall (an
    anamorphic video's sample aspect ratio): resized sideways; and the 2x3 matrix that maps its
    pixels back to the stored image's (pixel centres, as ``cv2.resize`` places them)."""
    height, width = image.shape[:2]
    shown = max(1, round(width * aspect))
    ratio = width / shown
    back = np.array([[ratio, 0.0, 0.5 * ratio - 0.5], [0.0, 1.0, 0.0]])
    if shown == width:
        return image, back
    flags = cv2.INTER_AREA if shown < width else cv2.INTER_LINEAR
    return cv2.resize(image, (shown, height), interpolation=flags), back


def shrink_to_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area interpolation) so its longer side is at most ``max_side`` (0: never),
    and the scale applied. Each side keeps at least one pixel, so a long thin strip shrinks too."""
    longest = max(image.shape[:2])
    if not max_side or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def shrink_by(image: np.ndarray, factor: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk ``factor`` (a whole number) times, each output pixel the mean of a
    ``factor`` x ``factor`` block (OpenCV's fast area path: a non-whole factor takes about three
    times as long on a 4K frame), and the scale applied. A side shorter than ``factor`` keeps
    one pixel (OpenCV refuses an empty image)."""
    height, width = image.shape[:2]
    if min(height, width) < factor:
        size = (max(1, width // factor), max(1, height // factor))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), 1 / factor
    return cv2.resize(image, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA), 1 / factor


def fit_to_sides(image: np.ndarray, min_side: int, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` with its longer side brought between ``min_side`` and ``max_side`` (0: no bound),
    and the scale applied: shrunk as ``shrink_to_side`` does, or enlarged (bilinear) when smaller
    than ``min_side``, so that the faces of a thumbnail reach sizes a detector was trained on."""
    longest = max(image.shape[:2])
    if max_side:
        min_side = min(min_side, max_side)
    if not min_side or longest >= min_side:
        return shrink_to_side(image, max_side)
    scale = min_side / longest
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), scale
