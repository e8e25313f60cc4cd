"""Panoramas: the windows a long frame is also looked at in (geometry), and faces found in real ones."""
from __future__ import annotations

import numpy as np
import pytest

from extractor import panorama
from extractor.faces import DetectedFace
from extractor.geometry import iou


@pytest.mark.parametrize("height, width", [(2000, 16000), (1080, 3240), (6000, 1500), (3000, 18001)])
def test_windows_cover_the_frame_and_share_it_out_without_a_gap(height, width):
    found = panorama.windows(height, width, 640)
    long, short = max(height, width), min(height, width)
    along = [(w.left, w.width) if w.along_x else (w.top, w.height) for w in found]
    assert along[0][0] == 0 and along[-1][0] + along[-1][1] == long
    for (start, side), (following, _) in zip(along, along[1:]):
        assert start + side - following >= short * panorama.OVERLAP - 1  # neighbours overlap
    assert [w.owns_from for w in found[1:]] == [w.owns_to for w in found[:-1]]
    assert found[0].owns_from == 0 and found[-1].owns_to == long
    for window in found:
        assert window.along_x == (width > height)
        assert (window.height if window.along_x else window.width) == short  # the whole short side
        assert window.left + window.width <= width and window.top + window.height <= height


def test_a_face_up_to_half_the_short_side_lies_wholly_in_the_window_it_belongs_to():
    found = panorama.windows(2000, 16000, 640)
    side = 1000
    for centre in range(side // 2, 16000 - side // 2, 37):
        face = DetectedFace(centre - side / 2, 500, side, side, 0.9)
        (owner,) = [w for w in found if w.owns(face)]
        assert owner.left <= face.left and face.right <= owner.left + owner.width


def test_a_hostile_strip_gets_few_windows_or_none():
    """A 4 x 20000 strip would need 6666 windows of 5 px: too thin to hold a face, it gets none; a
    panorama longer than 32 windows cover gets 32 longer ones, still covering it all."""
    assert panorama.windows(4, 20000, 640) == []
    found = panorama.windows(100, 100000, 640)
    assert len(found) == panorama.MAX_WINDOWS
    assert found[0].left == 0 and found[-1].left + found[-1].width == 100000
    assert all(a.left + a.width - b.left >= 50 for a, b in zip(found, found[1:]))


def test_frames_of_ordinary_shape_or_seen_at_full_size_get_no_window():
    assert panorama.windows(1080, 1920, 640) == []  # 16:9
    assert panorama.windows(800, 2200, 640) == []  # a film's widest frame (2.75:1)
    assert panorama.windows(200, 600, 640) == []  # not shrunk: seen as it is
    assert panorama.windows(2000, 16000, 0) == []  # a detector that sees every pixel


def test_faces_map_back_to_the_frame_and_only_the_windows_own_are_kept():
    window = panorama.windows(2000, 16000, 640)[1]
    inside = DetectedFace(window.owns_from - window.left + 10, 100, 50, 60, 0.9)
    inside.detector_points = np.full((5, 2), 20.0)
    edge = DetectedFace(5, 100, 50, 60, 0.9)  # centred in the part the window before owns
    (kept,) = panorama.to_frame(window, [inside, edge])
    assert kept.left == window.owns_from + 10 and kept.top == 100
    assert np.allclose(kept.detector_points, [window.left + 20, 20])


@pytest.mark.parametrize("height, width", [(1, 4000), (6000, 2), (1, 2600), (3, 9000), (1, 1)])
def test_a_strip_too_thin_for_a_face_is_a_frame_without_faces(detect_stage, height, width):
    """A frame a pixel or two high and as long as a 4K one was a frame failure ("the detector
    could not process this frame", retried on every resumed run): its finer view shrank the
    short side to nothing. It holds no face: it is looked at and found empty."""
    strip = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    assert detect_stage.run([strip]) == [[]]
    no_face = np.zeros((0, 5), np.float32)
    assert detect_stage.plugin.finer_view_shrink(strip, no_face, (1.0,)) == 0  # no pass on a view of nothing
    assert detect_stage.plugin.finer_view_shrink(np.zeros((100, 4000, 3), np.uint8), no_face, (1.0,)) > 0


def test_the_faces_of_a_panorama_are_found(detect_stage):
    """An 8:1 panorama of the annotated photos side by side at their own size (faces of 12-500 px):
    seen whole at 640 px, its faces are 1-30 px and 8 % of them are found (``make panoramas``)."""
    from benchmarks.big_frames import annotated_photos
    from benchmarks.panoramas import strip

    frame, truth = strip(annotated_photos(), 2000, 8, seed=0)
    found = detect_stage.run([frame])[0]
    matched = sum(any(iou(box, face.box_ltrb) >= 0.3 for face in found) for box in truth)
    assert matched >= 0.9 * len(truth), (matched, len(truth))
    assert all(iou(a.box_ltrb, b.box_ltrb) < 0.3 for i, a in enumerate(found) for b in found[i + 1:])
