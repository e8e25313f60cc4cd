"""MTCNN's cascade (scale pyramid, P-net proposals, R-net and O-net refinement) in numpy and
OpenCV, around any runner of the three networks.

It follows the ``mtcnn`` 1.0 package step by step, so the parity test can hold the two to the
same boxes, with three deliberate differences:

- sorts are stable: the package sorts the boxes of a whole batch by score with an unstable sort,
  so boxes of equal (saturated) score come out in an order that depends on the other frames of
  the batch, and a resumed or pooled run would differ from an uninterrupted one;
- the pyramid is resized with OpenCV's area interpolation (``tf.image.resize(AREA)`` in the
  package; the same averaging, within 4e-5 of a normalised pixel);
- crops are cut by ``crop_and_resize`` below, a numpy copy of TensorFlow's bilinear kernel.

Boxes are rows ``[image, x1, y1, x2, y2, score]`` (+ 10 key-point columns after the O-net), in
float64, as in the package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

Net = Callable[[np.ndarray], list]  # NHWC float32 batch -> the network's outputs as numpy


@dataclass(frozen=True)
class CascadeSettings:
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)  # P-, R-, O-net score thresholds
    min_face_size: int = 20
    scale_factor: float = 0.709


def normalise(images: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 frames of one size -> the nets' input range, (x - 127.5) / 128, float32."""
    return (np.stack(images).astype(np.float32) - np.float32(127.5)) / np.float32(128)


def scale_pyramid(height: int, width: int, settings: CascadeSettings, min_size: int = 12) -> np.ndarray:
    count = round(-((np.log(min(width, height) / min_size) / np.log(settings.scale_factor)) + 1))
    return (min_size / settings.min_face_size) * settings.scale_factor ** np.arange(count)


def area_resize(images: np.ndarray, scale: float) -> np.ndarray:
    height, width = (int(side * scale) for side in images.shape[1:3])  # truncated, as TensorFlow does
    return np.stack([cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images])


def by_score(rows: np.ndarray, column: int = 5) -> np.ndarray:
    """Highest score first; ties keep a fixed order (the reverse of their input order)."""
    return rows[np.argsort(rows[:, column], kind="stable")[::-1]]


def proposals(regression: np.ndarray, scores: np.ndarray, threshold: float, stride: int = 2, cell: int = 12):
    """P-net output maps -> candidate boxes in the scaled image, best first."""
    face = scores[..., 1]
    image, row, col = np.nonzero(face > threshold)
    dx1, dy1, dx2, dy2 = regression[image, row, col].T
    left, top = col * stride + 1, row * stride + 1
    right, bottom = col * stride + cell, row * stride + cell
    width, height = right - left, bottom - top
    rows = np.stack([image, left + dx1 * width, top + dy1 * height, right + dx2 * width,
                     bottom + dy2 * height, face[image, row, col]], axis=0).T
    return by_score(rows)


def overlaps(boxes: np.ndarray, others: np.ndarray, method: str) -> np.ndarray:
    """Intersection over union (``"union"``) or over the smaller box (``"min"``) of each of
    ``boxes`` (rows) with each of ``others`` (columns)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    low = np.maximum(others[None, :, :2], boxes[:, None, :2])
    high = np.minimum(others[None, :, 2:], boxes[:, None, 2:])
    inter = np.prod(np.maximum(0, high - low), axis=-1)
    if method == "union":
        denominator = area[:, None] + other_area[None, :] - inter
    else:
        denominator = np.minimum(area[:, None], other_area[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denominator


PAIRS_AT_ONCE = 1 << 20  # box pairs compared at once: a few tens of MB however many proposals


def beaten_by_better(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Whether each box (best first) overlaps any box before it by more than ``threshold``. The
    pairs are compared a band of rows at a time: all at once took n x n x 5 floats, about 800 MB
    for the 4,100 proposals of a 1080p frame at the default thresholds, 111 GB at 0.01."""
    count = len(boxes)
    beaten = np.zeros(count, bool)
    step = max(1, PAIRS_AT_ONCE // max(count, 1))
    for start in range(0, count, step):
        end = min(start + step, count)
        over = overlaps(boxes[start:end], boxes[start:], method) > threshold
        over &= np.arange(start, count)[None, :] > np.arange(start, end)[:, None]  # a later box only
        beaten[start:] |= over.any(axis=0)
    return beaten


def suppress(rows: np.ndarray, threshold: float, method: str = "union", sort: bool = True) -> np.ndarray:
    """The package's NMS, per image: a box is dropped if any better box overlaps it by more than
    ``threshold`` (even a box that was itself dropped: not greedy NMS, kept for parity)."""
    if sort:
        rows = by_score(rows)
    kept = []
    for image in np.unique(rows[:, 0]):
        mine = rows[rows[:, 0] == image]
        kept.append(mine[~beaten_by_better(mine[:, 1:5], threshold, method)])
    return np.concatenate(kept) if kept else rows[:0]


def to_square(rows: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]
    side = np.maximum(width, height)
    rows[:, 1] += width * 0.5 - side * 0.5
    rows[:, 2] += height * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def crop_and_resize(images: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """``tf.image.crop_and_resize`` (bilinear, zero outside the image) of each row's box, float32."""
    f32 = np.float32
    height, width = images.shape[1:3]
    index = rows[:, 0].astype(int)

    def sample(start, end, side):
        start, end = (start / side).astype(f32), (end / side).astype(f32)
        step = (end - start) * f32(side - 1) / f32(size - 1)
        where = start[:, None] * f32(side - 1) + np.arange(size, dtype=f32)[None] * step[:, None]
        inside = (where >= 0) & (where <= side - 1)
        low = np.clip(np.floor(where), 0, side - 1).astype(int)
        high = np.clip(np.ceil(where), 0, side - 1).astype(int)
        return low, high, (where - np.floor(where)).astype(f32), inside

    top, bottom, y_lerp, y_in = sample(rows[:, 2], rows[:, 4], height)
    left, right, x_lerp, x_in = sample(rows[:, 1], rows[:, 3], width)
    at = index[:, None, None]

    def row_values(ys):
        near, far = images[at, ys[:, :, None], left[:, None, :]], images[at, ys[:, :, None], right[:, None, :]]
        return near + (far - near) * x_lerp[:, None, :, None]

    upper, lower = row_values(top), row_values(bottom)
    crops = upper + (lower - upper) * y_lerp[:, :, None, None]
    crops[~(y_in[:, :, None] & x_in[:, None, :])] = 0
    return crops.astype(f32)


def run_pnet_padded(pnet: Net, images: np.ndarray, multiple: int = 32) -> list[np.ndarray]:
    """P-net on ``images`` zero-padded at the bottom and right to multiples of ``multiple``, its
    maps cut back to the unpadded size: compiled backends build one program per input shape
    (JAX: about 0.45 s each, ten pyramid levels per new frame size), so a folder of photos of
    many sizes shares a few programs. Only a map's last row or column can change, and only for
    an odd side (its "same" max-pool saw padding instead of the image edge)."""
    count, height, width = images.shape[:3]
    padded = np.zeros((count, -(-height // multiple) * multiple, -(-width // multiple) * multiple, 3), np.float32)
    padded[:, :height, :width] = images
    rows, cols = -(-(height - 2) // 2) - 4, -(-(width - 2) // 2) - 4
    return [np.asarray(out)[:, :rows, :cols] for out in pnet(padded)]


def run_bucketed(net: Net, crops: np.ndarray) -> list[np.ndarray]:
    """R/O-net on ``crops`` padded with zeros to a power-of-two batch (16 at least): compiled
    backends (JAX, TensorFlow's graphs) build one program per batch size, and the number of
    candidates changes with every frame. Rows are independent, so padding changes nothing."""
    count = len(crops)
    bucket = max(16, 1 << (count - 1).bit_length())
    padded = np.zeros((bucket, *crops.shape[1:]), crops.dtype)
    padded[:count] = crops
    return [np.asarray(out)[:count] for out in net(padded)]


def shift_boxes(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply R/O-net box regression (offsets relative to the box size, +1 pixel as in Caffe)."""
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1] + 1, rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([width, height, width, height], axis=-1)
    return rows


def detect(images: list[np.ndarray], pnet: Net, rnet: Net, onet: Net, settings: CascadeSettings) -> np.ndarray:
    """Faces of RGB uint8 frames of one size: rows ``[image, x1, y1, x2, y2, score, x1..x5,
    y1..y5]``, boxes clipped to the frame (key points not), as ``MTCNN.detect_faces`` gives."""
    empty = np.zeros((0, 16))
    normalised = normalise(images)
    height, width = normalised.shape[1:3]
    p_threshold, r_threshold, o_threshold = settings.thresholds

    per_scale = []
    for scale in scale_pyramid(height, width, settings):
        regression, scores = run_pnet_padded(pnet, area_resize(normalised, scale))
        rows = proposals(regression, scores, p_threshold)
        rows[:, 1:5] /= scale
        per_scale.append(suppress(rows, 0.5, sort=False))
    rows = to_square(suppress(np.concatenate(per_scale) if per_scale else np.zeros((0, 6)), 0.7))
    if not len(rows):
        return empty

    offsets, scores = run_bucketed(rnet, crop_and_resize(normalised, rows, 24))
    rows[:, 5] = np.asarray(scores)[:, 1]
    rows = shift_boxes(rows, np.asarray(offsets))
    rows = to_square(suppress(rows[rows[:, 5] > r_threshold], 0.7))
    if not len(rows):
        return empty

    offsets, points, scores = run_bucketed(onet, crop_and_resize(normalised, rows, 48))
    points = np.asarray(points, dtype=np.float32).copy()  # the package keeps key points in float32
    width_p1, height_p1 = rows[:, 3:4] - rows[:, 1:2] + 1, rows[:, 4:5] - rows[:, 2:3] + 1
    points[:, :5] = width_p1 * points[:, :5] + rows[:, 1:2] - 1
    points[:, 5:] = height_p1 * points[:, 5:] + rows[:, 2:3] - 1
    rows[:, 5] = np.asarray(scores)[:, 1]
    rows = np.concatenate([shift_boxes(rows, np.asarray(offsets)), points], axis=1)
    rows = suppress(rows[rows[:, 5] > o_threshold], 0.7, method="min")
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
    return rows
