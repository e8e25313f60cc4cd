"""Keep only the faces of the people the user wants (faceswap's --filter / --nfilter).

Reference images go through the same detect -> align -> identity path as the run. A face is
kept when it is within ``threshold`` of any --filter reference (if any are given) and not
within it of any --nfilter reference. The default threshold, 0.6 (Euclidean, dlib ResNet), is
dlib's own same-person threshold (99.38 % on LFW); lower is stricter.
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
    keep: list[np.ndarray] = field(default_factory=list)
    drop: list[np.ndarray] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD

    @staticmethod
    def _nearest(vector: np.ndarray, references: list[np.ndarray]) -> float:
        return min(float(np.linalg.norm(vector - ref)) for ref in references)

    def accepts(self, face: DetectedFace) -> bool:
        vector = np.asarray(face.identity[self.model], dtype=np.float64)
        if self.keep and self._nearest(vector, self.keep) > self.threshold:
            return False
        return not (self.drop and self._nearest(vector, self.drop) <= self.threshold)


def reference_embeddings(paths: list[Path], config) -> list[np.ndarray]:
    """One embedding per reference image: its only face, or its largest face (said out loud)."""
    from extractor.sources import InputError, read_image
    from extractor.stages import AlignStage, DetectStage, IdentityStage

    if not paths:
        return []
    detect, align, identity = DetectStage(config), AlignStage(config), IdentityStage(config)
    for stage in (detect, align, identity):
        stage.load()
    vectors = []
    for path in paths:
        try:
            image, _ = read_image(path)
        except InputError as exc:
            raise ReferenceError(f"reference {exc}") from None
        faces = detect.run([image])[0]
        if not faces:
            raise ReferenceError(f"reference {path}: no face found; give a photo where the face is visible")
        face = max(faces, key=lambda f: f.width * f.height)
        if len(faces) > 1:
            logger.warning("reference %s has %d faces: using the largest (box %d,%d %dx%d)", path, len(faces),
                           face.left, face.top, face.width, face.height)
        align.run([image], [face])
        identity.run([image], [face])
        vectors.append(np.asarray(face.identity[identity.plugins[0].name], dtype=np.float64))
    return vectors
