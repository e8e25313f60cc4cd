"""Which way up a video's frames stand when nothing in the file says so.

A camera mounted upside down, or a phone's portrait video re-encoded by a tool that dropped its
display rotation, gives frames whose faces the detector (trained on upright faces) barely finds:
the sample video turned 180 degrees gave 2 faces in 80 frames against 199 upright. Before the
run, a few frames spread over the video are looked at as stored and, only where few standing
faces show, turned each other way; a turn that shows at least twice the standing faces, on at
least half of the frames, is the way the whole video is looked at (as a display rotation would
say). The decision is made once, from the same frames, so every engine and a resumed run
looks at the video the same way.
"""
from __future__ import annotations

import numpy as np

from extractor.geometry import rotate_image
from extractor.sources import InputSource
from extractor.stages import DetectStage, StageConfig

PROBE_FRAMES = 6  # frames spread over the video that decide
# The light default detector, whatever the run uses, through OpenCV's DNN module: on the CPU by
# construction (the main process takes no GPU memory outside the plan's budgets), as fast as
# ONNX Runtime for six frames, and quicker to load. One look at each frame: no tiles of a big
# frame's small spots, no second look at a close-up (the faces that decide are the plain ones).
PROBE = StageConfig(detector="centerface", upright_look=False,
                    plugin_options={"detect.centerface": {"runtime": "opencv", "zoom_tiles": 0, "wider": False,
                                                           "fine_from": 0}})


def standing_faces(detect: DetectStage, frame: np.ndarray, turn: int) -> int:
    """Faces found upright in ``frame`` turned ``turn`` degrees clockwise (a face the detector
    finds lying on its side does not count)."""
    faces = detect.run([rotate_image(frame, turn)[0]])[0]
    return sum(face.standing_turn() in (0, None) for face in faces)


def turn_that_stands(frames: list[np.ndarray], detect: DetectStage) -> int:
    """Degrees clockwise (0, 90, 180, 270) that stand the frames' faces up; 0 unless another
    turn clearly does better (twice the standing faces, on half of the frames or more)."""
    if not frames:
        return 0
    enough = (len(frames) + 1) // 2
    upright = []
    for frame in frames:
        upright.append(standing_faces(detect, frame, 0))
        if sum(count > 0 for count in upright) >= enough:
            return 0  # faces stand in the frames as stored: the usual case, settled early
    best, best_counts = 0, upright
    for turn in (90, 270, 180):
        counts = [standing_faces(detect, frame, turn) for frame in frames]
        if sum(counts) > sum(best_counts):
            best, best_counts = turn, counts
    if best and sum(count > 0 for count in best_counts) >= enough and sum(best_counts) >= 2 * max(sum(upright), 1):
        return best
    return 0


def probe_video_turn(source: InputSource) -> int:
    """``turn_that_stands`` of ``PROBE_FRAMES`` frames of the video, with CenterFace on this
    process's CPU, loaded for the probe only."""
    frames = source.sample_frames(PROBE_FRAMES)
    if not frames:
        return 0
    detect = DetectStage(PROBE)
    detect.load()
    return turn_that_stands(frames, detect)
