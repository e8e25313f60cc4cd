"""A detected face: box, 68 landmarks, named masks, and the aligned crop made from them.

Everything here is plain data that converts to and from JSON-safe dicts, so that a face can
travel between processes as a small message and be written to the alignments file and into the
PNG of its aligned crop without pickle.
"""
from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from extractor.crops import MASK_CROP, CropSpec, five_points, head_pose
from extractor.geometry import transform_points, turn_to_stand

# Masks are stored as faceswap's maskers store theirs: 128 px, 'face' centering (crops.MASK_CROP).
MASK_STORED_SIZE = MASK_CROP.size


@dataclass
class Mask:
    """A face mask stored at ``stored_size`` in the aligned space of a faceswap centering.

    ``affine`` maps frame pixels to mask pixels, so the mask can be put back on the frame
    (``to_frame``) or onto any other aligned crop.
    """

    data: np.ndarray  # uint8 (stored_size, stored_size), 0..255; never changed once made
    affine: np.ndarray  # 2x3 float, frame -> mask pixels
    centering: str = MASK_CROP.centering  # faceswap's stored_centering of the mask's space
    _packed: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def stored_size(self) -> int:
        return int(self.data.shape[0])

    def packed(self) -> bytes:
        """``data`` zlib-compressed (level 6), made once: the queue message, the alignments record
        and faceswap's header all carry these same bytes."""
        if self._packed is None:
            self._packed = zlib.compress(np.ascontiguousarray(self.data).tobytes(), 6)
        return self._packed

    @classmethod
    def from_packed(cls, packed: bytes, size: int, affine: np.ndarray, centering: str = MASK_CROP.centering) -> "Mask":
        data = np.frombuffer(zlib.decompress(packed), dtype=np.uint8).reshape(size, size).copy()
        return cls(data, affine, centering, packed)

    @classmethod
    def from_aligned(cls, mask: np.ndarray, landmarks: np.ndarray) -> "Mask":
        """Store a mask computed on a ``MASK_CROP``-centred crop of any size (0-1 floats or uint8)."""
        if mask.dtype != np.uint8:
            mask = np.clip(mask * 255.0, 0, 255).astype(np.uint8)
        if mask.shape[0] != MASK_STORED_SIZE:
            interpolation = cv2.INTER_AREA if mask.shape[0] > MASK_STORED_SIZE else cv2.INTER_LINEAR
            mask = cv2.resize(mask, (MASK_STORED_SIZE, MASK_STORED_SIZE), interpolation=interpolation)
        return cls(mask, MASK_CROP.matrix(landmarks))

    def to_frame(self, frame_shape) -> np.ndarray:
        """The mask warped back onto a frame of ``frame_shape`` (uint8)."""
        height, width = frame_shape[:2]
        return cv2.warpAffine(self.data, self.affine, (width, height),
                              flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def to_dict(self) -> dict:
        return {"stored_size": self.stored_size, "centering": self.centering,
                "affine": np.round(self.affine, 6).tolist(),
                "data": base64.b64encode(self.packed()).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict) -> "Mask":
        return cls.from_packed(base64.b64decode(data["data"]), int(data["stored_size"]),
                               np.array(data["affine"], dtype=np.float64), data.get("centering", MASK_CROP.centering))


@dataclass
class DetectedFace:
    """One face of one frame. Box is ``left, top, width, height`` in frame pixels."""

    left: float
    top: float
    width: float
    height: float
    score: float = 1.0
    landmarks: np.ndarray | None = None  # (68, 2) float, frame pixels
    masks: dict[str, Mask] = field(default_factory=dict)
    identity: dict[str, np.ndarray] = field(default_factory=dict)  # model name -> embedding
    # Key points from the detector (e.g. MTCNN's 5) that help the aligner place its crop. A hint
    # between two stages, not an output: not written to the alignments file.
    detector_points: np.ndarray | None = None
    track_id: int | None = None  # in a video: the face's track (the same person from frame to frame)
    quality: float | None = None  # 0-1, how steady the aligner's points were (``CropAligner``); None: not measured

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def box_ltrb(self) -> list[float]:
        return [self.left, self.top, self.right, self.bottom]

    # insightface's names (its ``Face``), for programs written against ``FaceAnalysis.get``.
    @property
    def bbox(self) -> np.ndarray:
        """insightface's ``bbox``: left, top, right, bottom."""
        return np.array(self.box_ltrb, np.float32)

    @property
    def det_score(self) -> float:
        return self.score

    @property
    def kps(self) -> np.ndarray | None:
        """insightface's five key points (eye centres, image left first, nose tip, mouth corners),
        from the 68 landmarks (those its ``norm_crop`` takes); None before alignment."""
        return None if self.landmarks is None else five_points(self.landmarks).astype(np.float32)

    @property
    def pose(self) -> np.ndarray | None:
        """insightface's ``pose``: pitch, yaw and roll in degrees, from the 68 landmarks as
        faceswap's ``AlignedFace.pose`` reads them; None before alignment."""
        return None if self.landmarks is None else head_pose(self.landmarks).astype(np.float32)

    @property
    def embedding(self) -> np.ndarray | None:
        """The identity embedding (dlib's ResNet, 128-d, with ``identity=True``); None without."""
        return next(iter(self.identity.values()), None)

    @property
    def normed_embedding(self) -> np.ndarray | None:
        """The embedding at unit length: the dot product of two is their cosine similarity."""
        embedding = self.embedding
        return None if embedding is None else embedding / np.linalg.norm(embedding)

    def standing_turn(self) -> int | None:
        """Degrees clockwise (0, 90, 180, 270) that stand this face up, read from the detector's
        key points (``turn_to_stand``); None when the detector gave none."""
        points = self.detector_points
        return turn_to_stand(points) if points is not None and len(points) >= 4 else None

    def aligned_matrix(self, crop: CropSpec) -> np.ndarray:
        """2x3 matrix from frame pixels to this face's ``crop``."""
        if self.landmarks is None:
            raise ValueError("face has no landmarks yet: align it before asking for its crop")
        return crop.matrix(self.landmarks)

    def aligned_face(self, image: np.ndarray, crop: CropSpec) -> np.ndarray:
        """The face cut out of ``image`` as ``crop`` says (faceswap's or insightface's geometry)."""
        return crop.cut(image, self.aligned_matrix(crop))

    def aligned_landmarks(self, crop: CropSpec) -> np.ndarray:
        return transform_points(self.landmarks, self.aligned_matrix(crop))

    def all_finite(self) -> bool:
        """Whether every number the record holds is finite (JSON and faceswap refuse NaN)."""
        arrays = [[self.left, self.top, self.width, self.height, self.score]]
        arrays += [self.landmarks] if self.landmarks is not None else []
        arrays += [mask.affine for mask in self.masks.values()] + list(self.identity.values())
        return all(np.isfinite(np.asarray(values, dtype=np.float64)).all() for values in arrays)

    @property
    def recorded_box(self) -> list[float]:
        """[left, top, width, height] as the alignments file holds it (to a thousandth of a pixel)."""
        return [round(float(v), 3) for v in (self.left, self.top, self.width, self.height)]

    @property
    def recorded_score(self) -> float:
        """The detector's score as the alignments file holds it (five decimals)."""
        return round(float(self.score), 5)

    def to_dict(self) -> dict:
        """JSON-safe dict: what the alignments file and the PNG metadata hold."""
        out = {"box": self.recorded_box, "score": self.recorded_score}
        if self.track_id is not None:
            out["track"] = int(self.track_id)
        if self.quality is not None:
            out["quality"] = round(float(self.quality), 4)
        if self.landmarks is not None:
            rounded = np.round(np.asarray(self.landmarks, dtype=np.float64), 3)
            out["landmarks"] = rounded.tolist()
            if np.isfinite(self.landmarks).all():  # pitch, yaw, roll (degrees) of the points as written
                out["pose"] = [round(float(angle), 2) for angle in head_pose(rounded.astype(np.float32))]
        if self.masks:
            out["masks"] = {name: mask.to_dict() for name, mask in self.masks.items()}
        if self.identity:
            # float32 precision, written as shortest round-trip decimals: reads back equal.
            out["identity"] = {name: [float(v) for v in np.asarray(vector, dtype=np.float32)]
                               for name, vector in self.identity.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DetectedFace":
        left, top, width, height = data["box"]
        face = cls(left, top, width, height, data.get("score", 1.0))
        face.track_id = data.get("track")
        face.quality = data.get("quality")
        if data.get("landmarks") is not None:
            face.landmarks = np.array(data["landmarks"], dtype=np.float64)
        face.masks = {name: Mask.from_dict(mask) for name, mask in data.get("masks", {}).items()}
        face.identity = {name: np.array(vector, dtype=np.float32) for name, vector in data.get("identity", {}).items()}
        return face
