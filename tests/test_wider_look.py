"""Which first-pass spots ask for CenterFace's wider look, and which of its faces are kept."""
from __future__ import annotations

import numpy as np

from extractor.plugins.detect import wider_look


def test_big_doubtful_spots_on_no_found_face_ask_for_a_wider_look():
    boxes = np.array([[10, 10, 330, 350, 0.3],  # big (340 of a 480 px short side), doubtful: asks
                      [0, 0, 100, 100, 0.3],  # small: the first pass saw it well enough
                      [300, 20, 620, 360, 0.9],  # a face found
                      [310, 30, 610, 350, 0.2]],  # big and doubtful but on that face
                     np.float32)
    spots = wider_look.big_spots(boxes, threshold=0.5, height=480, width=640)
    assert spots.tolist() == boxes[:1].tolist()
    assert wider_look.big_spots(boxes[1:], 0.5, 480, 640).shape == (0, 5)
    assert wider_look.side_for(480, 640) == 213


def test_only_faces_that_confirm_a_spot_are_kept():
    spots = np.array([[100, 100, 500, 500, 0.3]], np.float32)
    found = np.array([[120, 90, 520, 480, 0.8],  # the spot, seen clearly
                      [600, 100, 700, 200, 0.7]], np.float32)  # elsewhere: not what was asked
    assert wider_look.confirming(found, spots).tolist() == [True, False]
    assert wider_look.confirming(found[:0], spots).shape == (0,)
