"""Keep only the faces of the people the user wants (faceswap's --filter / --nfilter).

Reference images go through the run's own pipeline (detect -> align -> identity), on the devices
the engine planned, before any frame is written: each engine feeds the faces it found on a
reference to ``take_reference``. A face is kept when it is within ``threshold`` of any --filter
reference (if any are given) and not within it of any --nfilter reference. The default threshold,
0.6 (Euclidean, dlib ResNet), is dlib's own same-person threshold (99.38 % on LFW); lower is
stricter.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extractor.faces import DetectedFace

logger = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 0.6


class ReferenceError(Exception):
    """A reference image has no usable face; the message names it."""


@dataclass
class FaceFilter:
    model: str
    keep_paths: list[Path] = field(default_factory=list)
    drop_paths: list[Path] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # reference position -> embedding

    @property
    def references(self) -> list[Path]:
        """Every reference image, --filter ones first."""
        return list(self.keep_paths) + list(self.drop_paths)

    def recorded(self) -> dict:
        """What decides the faces kept, as the alignments header records it (reference file names:
        a resume may name them from another folder)."""
        return {"keep": sorted(path.name for path in self.keep_paths),
                "drop": sorted(path.name for path in self.drop_paths), "threshold": self.threshold}

    @property
    def needs_embedding(self) -> bool:
        return len(self.vectors) < len(self.references)

    def read_reference(self, position: int) -> np.ndarray:
        """A reference image's pixels; an unreadable one is a ReferenceError naming it."""
        from extractor.images import InputError, read_image

        try:
            return read_image(self.references[position])[0]
        except InputError as exc:
            raise ReferenceError(f"reference {exc}") from None

    def check_references(self) -> None:
        """Read every reference now, so a bad one stops the run before any model loads."""
        for position in range(len(self.references)):
            self.read_reference(position)

    def take_reference(self, position: int, faces: list[DetectedFace]) -> None:
        """The embedding of a reference image from the faces the run found on it: its only face,
        or its largest (said out loud); none is an error naming the image."""
        path = self.references[position]
        faces = [face for face in faces if face is not None and self.model in face.identity]
        if not faces:
            raise ReferenceError(f"reference {path}: no face found; give a photo where the face is visible")
        face = max(faces, key=lambda f: f.width * f.height)
        if len(faces) > 1:
            logger.warning("reference %s has %d faces: using the largest (box %d,%d %dx%d)", path, len(faces),
                           face.left, face.top, face.width, face.height)
        self.vectors[position] = np.asarray(face.identity[self.model], dtype=np.float64)

    @property
    def keep(self) -> list[np.ndarray]:
        return [self.vectors[i] for i in range(len(self.keep_paths)) if i in self.vectors]

    @property
    def drop(self) -> list[np.ndarray]:
        first = len(self.keep_paths)
        return [self.vectors[i] for i in range(first, first + len(self.drop_paths)) if i in self.vectors]

    @staticmethod
    def _nearest(vector: np.ndarray, references: list[np.ndarray]) -> float:
        return min(float(np.linalg.norm(vector - ref)) for ref in references)

    def accepts(self, face: DetectedFace) -> bool:
        if self.needs_embedding:
            raise RuntimeError("the identity filter was used before its reference faces were embedded")
        vector = np.asarray(face.identity[self.model], dtype=np.float64)
        if self.keep_paths and self._nearest(vector, self.keep) > self.threshold:
            return False
        return not (self.drop_paths and self._nearest(vector, self.drop) <= self.threshold)
