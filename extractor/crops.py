"""The face crops extractor writes: faceswap's centerings ('head', 'face', 'legacy') and
insightface's ArcFace template ('arcface').

faceswap's training assumes every face PNG is the crop its own extract writes, so these follow
faceswap's geometry (alignments format 2.x, facts read from its ``lib/align``; the code is ours):

1. **legacy space**: the similarity transform (Umeyama, no reflection) that maps the 51 inner
   landmarks (17-67) onto faceswap's 2-D mean face, which spans the unit square.
2. **pose**: the head's rotation and translation from PnP (OpenCV's iterative solver) of 26 of
   the legacy-space landmarks against faceswap's 3-D mean head, seen by a camera of focal length
   4 centred on (0.5, 0.5).
3. **centering**: 'face' and 'head' move the unit square so that its centre becomes the projection
   of a 3-D point of that head ('face': between the eyes; 'head': the middle of the skull).
4. **size**: the square is padded on each side by ``round(size * (ratio + coverage - 1) /
   (2 * coverage))`` pixels, ``ratio`` being 0.375, 0.5 and 0.625 for legacy, face and head,
   and the frame is warped with bicubic interpolation when enlarging, area when shrinking.

'arcface' is insightface's ``norm_crop``: the similarity that maps five points (eye centres,
nose tip, mouth corners) onto its 112 px template (scaled for 112k px; 128k px crops shift it
by 8k px), bilinear.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from extractor.geometry import transform_points, umeyama

CENTERINGS = ("head", "face", "legacy", "arcface")
FACESWAP_CENTERINGS = ("head", "face", "legacy")
DEFAULT_CENTERING = "head"  # what faceswap's extract writes and its training expects
DEFAULT_SIZE = 512  # faceswap's default extract size
ARCFACE_SIZE = 112

# Share of a crop (per side, doubled) that pads faceswap's unit square, by centering.
EXTRACT_RATIOS = {"legacy": 0.375, "face": 0.5, "head": 0.625}

# faceswap's 2-D mean face of the 51 inner landmarks (iBUG 17-67), in its unit square.
MEAN_FACE_51 = np.array([
    [0.010086, 0.106454], [0.085135, 0.038915], [0.191003, 0.018748], [0.300643, 0.034489],
    [0.403270, 0.077391], [0.596729, 0.077391], [0.699356, 0.034489], [0.808997, 0.018748],
    [0.914864, 0.038915], [0.989913, 0.106454], [0.500000, 0.203352], [0.500000, 0.307009],
    [0.500000, 0.409805], [0.500000, 0.515625], [0.376753, 0.587326], [0.435909, 0.609345],
    [0.500000, 0.628106], [0.564090, 0.609345], [0.623246, 0.587326], [0.131610, 0.216423],
    [0.196995, 0.178758], [0.275698, 0.179852], [0.344479, 0.231733], [0.270791, 0.245099],
    [0.192616, 0.244077], [0.655520, 0.231733], [0.724301, 0.179852], [0.803005, 0.178758],
    [0.868389, 0.216423], [0.807383, 0.244077], [0.729208, 0.245099], [0.264022, 0.780233],
    [0.350858, 0.745405], [0.438731, 0.727388], [0.500000, 0.742578], [0.561268, 0.727388],
    [0.649141, 0.745405], [0.735977, 0.780233], [0.652032, 0.864805], [0.566594, 0.902192],
    [0.500000, 0.909281], [0.433405, 0.902192], [0.347967, 0.864805], [0.300252, 0.784792],
    [0.437969, 0.778746], [0.500000, 0.785343], [0.562030, 0.778746], [0.699747, 0.784792],
    [0.563237, 0.824182], [0.500000, 0.831803], [0.436763, 0.824182]])

# faceswap's 3-D mean head: 26 points, and the 68-point landmarks they stand for.
MEAN_HEAD_3D = np.array([
    [4.056931, -11.432347, 1.636229], [1.833492, -12.542305, 4.061275], [0.0, -12.901019, 4.070434],
    [-1.833492, -12.542305, 4.061275], [-4.056931, -11.432347, 1.636229], [6.825897, 1.275284, 4.402142],
    [1.330353, 1.636816, 6.903745], [-1.330353, 1.636816, 6.903745], [-6.825897, 1.275284, 4.402142],
    [1.930245, -5.060977, 5.914376], [0.746313, -5.136947, 6.263227], [0.0, -5.485328, 6.76343],
    [-0.746313, -5.136947, 6.263227], [-1.930245, -5.060977, 5.914376], [5.311432, 0.0, 3.987654],
    [1.78993, -0.091703, 4.413414], [-1.78993, -0.091703, 4.413414], [-5.311432, 0.0, 3.987654],
    [2.774015, -7.566103, 5.048531], [0.509714, -7.056507, 6.566167], [0.0, -7.131772, 6.704956],
    [-0.509714, -7.056507, 6.566167], [-2.774015, -7.566103, 5.048531], [-0.589441, -8.443925, 6.109526],
    [0.0, -8.601736, 6.097667], [0.589441, -8.443925, 6.109526]])
HEAD_POINTS = np.array([6, 7, 8, 9, 10, 17, 21, 22, 26, 31, 32, 33, 34, 35, 36, 39, 42, 45, 48, 50, 51, 52,
                        54, 56, 57, 58])
# The 3-D point each centering puts in the middle of the crop (legacy: none, the square itself).
CENTRE_3D = {"face": np.array([0.0, -1.5, 4.2], np.float32), "head": np.array([0.0, 0.0, -2.3], np.float32)}
CAMERA = np.array([[4.0, 0.0, 0.5], [0.0, 4.0, 0.5], [0.0, 0.0, 1.0]])
NO_DISTORTION = np.zeros((4, 1), np.float32)

# insightface's ArcFace template for a 112 px crop: eye centres, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def legacy_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2x3 matrix from frame pixels to faceswap's unit square ('legacy' space)."""
    return umeyama(np.asarray(landmarks)[17:], MEAN_FACE_51)[:2]


def _head_in_3d(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation (a Rodrigues vector) and translation of the mean 3-D head that best project
    onto the landmarks in the unit square (PnP, OpenCV's iterative solver). Kept for the last
    faces asked about: the writer needs it twice a face (its crop's centre, its record's pose)."""
    points = np.ascontiguousarray(landmarks)
    return _head_of(points.tobytes(), points.dtype.str)


@lru_cache(maxsize=64)
def _head_of(landmark_bytes: bytes, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    landmarks = np.frombuffer(landmark_bytes, dtype).reshape(-1, 2)
    # faceswap keeps landmarks as float32, so its normalised points (and pose) are float32 too.
    points = cv2.transform(landmarks.astype(np.float32)[:, None, :], legacy_matrix(landmarks)).reshape(-1, 2)
    points = np.nan_to_num(points)[HEAD_POINTS]
    _, rotation, translation = cv2.solvePnP(MEAN_HEAD_3D, points, CAMERA, NO_DISTORTION,
                                            flags=cv2.SOLVEPNP_ITERATIVE)
    return rotation, translation


def centering_offset(landmarks: np.ndarray, centering: str) -> np.ndarray:
    """How far (in unit-square units) ``centering`` moves the crop's centre from legacy's:
    the projection of its 3-D centre point for the head pose that the landmarks show."""
    if centering == "legacy":
        return np.zeros(2, np.float32)
    rotation, translation = _head_in_3d(landmarks)
    centre = cv2.projectPoints(CENTRE_3D[centering][None], rotation, translation, CAMERA, NO_DISTORTION)[0]
    return centre.reshape(2).astype(np.float32) - np.float32(0.5)


def head_pose(landmarks: np.ndarray) -> np.ndarray:
    """The head's pitch, yaw and roll in degrees (insightface's ``Face.pose`` order), the Euler
    angles of the rotation that also centres the 'head' and 'face' crops: what faceswap's
    ``AlignedFace.pose`` gives for the same points (its sort tool's yaw and pitch)."""
    rotation, _ = _head_in_3d(landmarks)
    projection = np.hstack([cv2.Rodrigues(rotation)[0], np.zeros((3, 1))])
    return cv2.decomposeProjectionMatrix(projection)[-1].reshape(3)


def padding(size: int, centering: str, coverage: float = 1.0) -> int:
    """Pixels of padding around the unit square on each side of a crop (faceswap's rounding)."""
    return round(size * (EXTRACT_RATIOS[centering] + coverage - 1) / (2 * coverage))


def arcface_template(size: int) -> np.ndarray:
    """insightface's five template points for a crop of ``size`` px (a multiple of 112 or 128)."""
    if size % ARCFACE_SIZE == 0:
        return ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)
    if size % 128 == 0:
        ratio = size / 128
        return ARCFACE_TEMPLATE * ratio + np.array([8.0 * ratio, 0.0])
    raise ValueError(f"an arcface crop is a multiple of 112 or 128 px, not {size}")


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """insightface's five key points from the 68: eye centres (image left first), nose tip,
    mouth corners."""
    points = np.asarray(landmarks, np.float64)
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


@dataclass(frozen=True)
class CropSpec:
    """One way to cut a face: centering, side in pixels and faceswap's coverage ratio (the share
    of the padded crop that is kept; 1.0 keeps it whole, as faceswap's extract does)."""

    centering: str = DEFAULT_CENTERING
    size: int = DEFAULT_SIZE
    coverage: float = 1.0

    def __post_init__(self):
        if self.centering not in CENTERINGS:
            raise ValueError(f"unknown centering {self.centering!r}: use one of {', '.join(CENTERINGS)}")
        if self.centering == "arcface":
            arcface_template(self.size)  # refuses sizes insightface has no template for

    def matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """2x3 matrix from frame pixels to this crop's pixels."""
        if self.centering == "arcface":
            return umeyama(five_points(landmarks), arcface_template(self.size))[:2]
        legacy = legacy_matrix(landmarks)
        moved = legacy.copy()
        moved[:, 2] -= centering_offset(landmarks, self.centering)
        pad = padding(self.size, self.centering, self.coverage)
        out = moved * (self.size - 2 * pad)
        out[:, 2] += pad
        return out

    def interpolation(self, matrix: np.ndarray) -> int:
        """faceswap's choice: bicubic when the crop enlarges the frame, area when it shrinks it
        (mean of the x scale and the y scale); insightface's warp is bilinear."""
        if self.centering == "arcface":
            return cv2.INTER_LINEAR
        x_scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
        y_scale = float(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]) / x_scale if x_scale else 0.0
        return cv2.INTER_CUBIC if (x_scale + y_scale) / 2 >= 1.0 else cv2.INTER_AREA

    def cut(self, image: np.ndarray, matrix: np.ndarray, interpolation: int | None = None) -> np.ndarray:
        """The crop of ``image`` through ``matrix``, black outside the frame. ``interpolation``:
        when ``matrix`` is ``matrix()`` composed with a change of frame (a mirror flips the sign
        of its determinant), the one chosen for ``matrix()`` itself."""
        flags = self.interpolation(matrix) if interpolation is None else interpolation
        return cv2.warpAffine(image, matrix, (self.size, self.size), flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """The landmarks in this crop's pixels."""
        return transform_points(landmarks, self.matrix(landmarks))


# Masks are stored as faceswap's maskers store theirs: 128 px, 'face' centering.
MASK_CROP = CropSpec("face", 128)


def faceswap_mask_interpolator(affine: np.ndarray) -> int:
    """The interpolator faceswap records with a stored mask to put it back on the frame: bilinear
    where the mask is smaller than the face in the frame (enlarging back), area otherwise."""
    scale = float(np.hypot(affine[0, 0], affine[1, 0]))
    return cv2.INTER_LINEAR if scale < 1.0 else cv2.INTER_AREA
