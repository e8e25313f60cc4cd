"""faceswap's landmark masks, ``components`` and ``extended``: hulls of landmark groups.

No model: pure geometry on the aligned 68 points, so they are instant and always available.
"""
from __future__ import annotations

import cv2
import numpy as np

from extractor.crops import CropSpec
from extractor.faces import Mask
from extractor.plugins.base import Batch, DeviceNeed, Masker
from extractor.plugins.registry import register


def _components_parts(points: np.ndarray) -> list[np.ndarray]:
    """faceswap's 'components' groups: jaw halves with brows and nose, and the nose bridge."""
    r_jaw = np.concatenate([points[0:9], points[17:18]])
    l_jaw = np.concatenate([points[8:17], points[26:27]])
    r_cheek = np.concatenate([points[17:20], points[8:9]])
    l_cheek = np.concatenate([points[24:27], points[8:9]])
    nose_ridge = np.concatenate([points[19:25], points[8:9]])
    r_eye = np.concatenate([points[17:22], points[27:28], points[31:36], points[8:9]])
    l_eye = np.concatenate([points[22:27], points[27:28], points[31:36], points[8:9]])
    nose = np.concatenate([points[27:31], points[31:36]])
    return [r_jaw, l_jaw, r_cheek, l_cheek, nose_ridge, r_eye, l_eye, nose]


def _extended_points(points: np.ndarray) -> np.ndarray:
    """faceswap's 'extended': the brows pushed up by half the eye-to-brow distance (forehead)."""
    points = points.copy()
    ml_pnt = (points[36] + points[0]) // 2
    mr_pnt = (points[16] + points[45]) // 2
    ql_pnt = (points[36] + ml_pnt) // 2
    qr_pnt = (points[45] + mr_pnt) // 2
    bot_l = np.array((ql_pnt, points[36], points[37], points[38], points[39]))
    bot_r = np.array((points[42], points[43], points[44], points[45], qr_pnt))
    top_l = points[17:22]
    top_r = points[22:27]
    points[17:22] = top_l + ((top_l - bot_l) // 2)
    points[22:27] = top_r + ((top_r - bot_r) // 2)
    return points


class LandmarkMasker(Masker):
    """Base for masks drawn from the aligned landmarks, in faceswap's 'face'-centred space at the
    stored size (128 px). Binary, without faceswap's anti-aliased edges: faceswap draws these two
    again from the landmarks when it loads a file, and a hard edge compresses to a quarter of the
    bytes in every message and record (227 against 813 for one mask)."""

    input_size = 128
    batch_size = 64
    device_need = DeviceNeed(gpu=False)

    def parts(self, points: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def pre_process(self, batch: Batch) -> None:
        crop = CropSpec(self.centering, self.input_size)
        batch.feed = [face.aligned_landmarks(crop) for face in batch.faces]

    def predict(self, batch: Batch) -> None:
        masks = []
        for points in batch.feed:
            mask = np.zeros((self.input_size, self.input_size), np.uint8)
            for part in self.parts(points):  # rounded after the geometry, as faceswap rounds them
                cv2.fillConvexPoly(mask, cv2.convexHull(np.rint(part).astype(np.int32)), 255)
            masks.append(mask)
        batch.prediction = masks

    def post_process(self, batch: Batch) -> None:
        for face, mask in zip(batch.faces, batch.prediction):
            face.masks[self.name] = Mask.from_aligned(mask, face.landmarks)


@register
class ComponentsMasker(LandmarkMasker):
    name = "components"
    description = "faceswap 'components': hulls of jaw, cheeks, eyes and nose (no model)"

    def parts(self, points):
        return _components_parts(points)


@register
class ExtendedMasker(LandmarkMasker):
    name = "extended"
    description = "faceswap 'extended': components with the forehead raised above the brows (no model)"

    def parts(self, points):
        return _components_parts(_extended_points(points))
