"""Track ids and the One Euro filter (pure computation) on the sample video's real boxes and
on landmarks with known motion."""
from __future__ import annotations

import numpy as np

from extractor.tracking import OneEuroFilter, TrackAssigner, box_iou


def test_box_iou():
    assert np.allclose(box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]]),
                       [[1.0, 50 / 150, 0.0]])


def test_faces_keep_their_track_through_motion_a_gap_and_a_newcomer():
    tracks = TrackAssigner(max_gap=2)
    left, right = np.array([10, 10, 50, 50.0]), np.array([200, 10, 50, 50.0])
    assert tracks.assign(0, [left, right]) == [0, 1]
    assert tracks.assign(1, [right + [4, 0, 0, 0], left + [3, 2, 0, 0]]) == [1, 0]  # order does not matter
    assert tracks.assign(2, [left + [6, 4, 0, 0]]) == [0]  # right missed once
    newcomer = np.array([400, 10, 50, 50.0])
    assert tracks.assign(3, [right + [8, 0, 0, 0], newcomer, left + [9, 6, 0, 0]]) == [1, 2, 0]
    assert tracks.assign(7, [right]) == [3]  # unseen for more than max_gap frames: a new track


def test_one_euro_steadies_a_still_face_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 200, (68, 2))
    still = OneEuroFilter(rate=30)
    noisy = [truth + rng.normal(0, 1.0, truth.shape) for _ in range(60)]
    smoothed = [still(p) for p in noisy]
    jitter_in = np.mean([np.abs(b - a).mean() for a, b in zip(noisy[30:], noisy[31:])])
    jitter_out = np.mean([np.abs(b - a).mean() for a, b in zip(smoothed[30:], smoothed[31:])])
    assert jitter_out < 0.5 * jitter_in
    moving = OneEuroFilter(rate=30)
    path = [truth + [5.0 * i, 0] for i in range(60)]  # 150 px/s
    followed = [moving(p) for p in path]
    assert np.abs(followed[-1] - path[-1]).max() < 5.0  # lag under one frame's motion
