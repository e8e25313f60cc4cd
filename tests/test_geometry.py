from __future__ import annotations

import numpy as np

from extractor.geometry import invert_affine, rotate_image, transform_points, umeyama
from extractor.mean_face import MEAN_FACE_68


def test_umeyama_recovers_a_similarity():
    angle, scale, shift = 0.3, 2.5, np.array([10.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = MEAN_FACE_68 @ rot.T + shift
    matrix = umeyama(MEAN_FACE_68, moved)[:2]
    assert np.allclose(matrix[:, :2], rot) and np.allclose(matrix[:, 2], shift)
    assert np.allclose(transform_points(moved, invert_affine(matrix)), MEAN_FACE_68)


def test_rotation_back_mapping():
    image = np.zeros((30, 50, 3), np.uint8)
    image[5, 7] = 255
    for angle in (90, 180, 270):
        rotated, back = rotate_image(image, angle)
        y, x = np.argwhere(rotated[..., 0])[0]
        assert np.allclose(transform_points([[x, y]], back), [[7, 5]])
