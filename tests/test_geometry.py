from __future__ import annotations

import numpy as np

from extractor.geometry import fit_to_sides, invert_affine, rotate_image, shrink_by, transform_points, umeyama
from extractor.mean_face import MEAN_FACE_68


def test_umeyama_recovers_a_similarity():
    angle, scale, shift = 0.3, 2.5, np.array([10.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = MEAN_FACE_68 @ rot.T + shift
    matrix = umeyama(MEAN_FACE_68, moved)[:2]
    assert np.allclose(matrix[:, :2], rot) and np.allclose(matrix[:, 2], shift)
    assert np.allclose(transform_points(moved, invert_affine(matrix)), MEAN_FACE_68)


def test_umeyama_never_reflects_and_refuses_collapsed_points():
    """A mirrored face gets the best proper similarity (det > 0), as the SVD form with Umeyama's
    sign correction gives: its least-squares error is no worse than any rotation's."""
    mirrored = MEAN_FACE_68 * [-1.0, 1.0] + np.random.default_rng(1).normal(0, 0.01, MEAN_FACE_68.shape)
    matrix = umeyama(MEAN_FACE_68, mirrored)[:2]
    assert np.linalg.det(matrix[:, :2]) > 0
    error = np.square(transform_points(MEAN_FACE_68, matrix) - mirrored).sum()
    for angle in np.linspace(-np.pi, np.pi, 73):  # no scaled rotation about the centroids fits better
        for scale in (0.2, 0.5, 1.0):
            rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            centred = (MEAN_FACE_68 - MEAN_FACE_68.mean(0)) @ rot.T + mirrored.mean(0)
            assert error <= np.square(centred - mirrored).sum() + 1e-9
    assert np.isnan(umeyama(np.ones((5, 2)), MEAN_FACE_68[:5])).all()
    assert np.isnan(umeyama(MEAN_FACE_68[:5], np.ones((5, 2)))).all()


def test_rotation_back_mapping():
    image = np.zeros((30, 50, 3), np.uint8)
    image[5, 7] = 255
    for angle in (90, 180, 270):
        rotated, back = rotate_image(image, angle)
        y, x = np.argwhere(rotated[..., 0])[0]
        assert np.allclose(transform_points([[x, y]], back), [[7, 5]])


def test_fit_to_sides_enlarges_small_frames_and_shrinks_big_ones():
    small, middle, big = (np.zeros((h, w, 3), np.uint8) for h, w in ((120, 240), (500, 600), (1080, 1920)))
    enlarged, scale = fit_to_sides(small, 480, 640)
    assert enlarged.shape[:2] == (240, 480) and scale == 2.0
    assert fit_to_sides(middle, 480, 640)[0] is middle
    shrunk, scale = fit_to_sides(big, 480, 640)
    assert shrunk.shape[:2] == (360, 640) and scale == 640 / 1920
    assert fit_to_sides(small, 0, 640)[0] is small and fit_to_sides(big, 480, 0)[0] is big
    assert fit_to_sides(small, 480, 320)[0].shape[:2] == (160, 320)  # never past max_side


def test_shrink_by_averages_blocks_and_keeps_a_pixel_of_a_side_shorter_than_the_factor():
    image = np.arange(8 * 12, dtype=np.uint8).reshape(8, 12, 1).repeat(3, axis=2)
    shrunk, scale = shrink_by(image, 4)
    assert shrunk.shape == (2, 3, 3) and scale == 0.25
    assert shrunk[0, 0, 0] == round(image[:4, :4, 0].mean())
    assert shrink_by(np.zeros((1, 4000, 3), np.uint8), 4)[0].shape == (1, 1000, 3)
    assert shrink_by(np.zeros((3, 2, 3), np.uint8), 4)[0].shape == (1, 1, 3)


def test_composed_affines_apply_the_last_first():
    from extractor.geometry import compose_affine

    rng = np.random.default_rng(3)
    a, b, points = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(5, 2))
    assert np.allclose(transform_points(points, compose_affine(a, b)), transform_points(transform_points(points, b), a))
    assert np.allclose(compose_affine(a, invert_affine(a)), [[1, 0, 0], [0, 1, 0]])
