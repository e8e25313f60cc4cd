"""Whether a video's frames need the close look photos get, decided before the run.

A photo of 1280 to 2560 px whose usual 640 px view shows no big face is also seen at about
960 px (CenterFace's finer look from ``fine_if_from_close``); a video's frames only from
``fine_if_from`` (2560), since thousands of frames would each pay for it, most for nothing: the
sample video enlarged to 1080p, 45 -> 61 ms a frame of detection and not one face more. But a
1080p video of a crowd, a stand or a wide shot has faces of 16-20 px, 2-6 px in the usual view,
no blob to start from. So a few frames spread over such a video are looked at both ways; where
the finer view finds faces the usual one misses on at least two of them (on the one, in a video
of one frame), every frame gets the close look: each sampled frame is looked at, since a crowd
may fill only part of a video (about 0.1 CPU-s a 1080p frame), and a video longer than three
minutes is judged on two frames a minute (``close_look_samples``): a crowd of a minute between six
evenly spaced samples was missed. Decided once, from frames chosen by the video's length alone,
so every engine and a resumed run look at the video the same way.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from extractor.geometry import iou
from extractor.stages import DetectStage, StageConfig

EVIDENCE = 2  # sampled frames with faces only the close look finds
MATCH_IOU = 0.3
SAMPLES_PER_MINUTE = 2  # a longer video is judged on more frames: a crowd scene of a minute shows in two
MAX_SAMPLES = 120  # an hour's worth: about 15 CPU-s for 1080p frames, against hours of extraction


def close_look_samples(source) -> int:
    """How many frames spread over the video decide (``InputSource.sample_frames``): the six
    that judge its orientation, or two a minute of a video longer than three minutes."""
    from extractor.upright import PROBE_FRAMES

    return int(min(MAX_SAMPLES, max(PROBE_FRAMES, round(SAMPLES_PER_MINUTE * source.video_seconds() / 60))))


def close_look_changes(stages: StageConfig, height: int, width: int) -> bool:
    """Whether the close look would give a frame of this size a finer look that the usual one
    does not (with the run's options: 1281-2560 px by default), read from the detector's own
    rule for a frame whose view found no face; False for a detector with no finer look."""
    if stages.detector != "centerface":
        return False
    blank = np.broadcast_to(np.uint8(0), (height, width, 3))  # only its shape is read
    no_face, seen = np.zeros((0, 5), np.float32), (1.0,)
    usual = stages.create("detect", "centerface")  # the run's options; nothing is loaded
    closer = stages.create("detect", "centerface", close_look=True)
    return bool(closer.finer_view_shrink(blank, no_face, seen)) and not usual.finer_view_shrink(blank, no_face, seen)


def probe_stages(stages: StageConfig) -> tuple[DetectStage, DetectStage]:
    """The run's detector as it looks at a video's frames and as it looks at photos, on this
    process's CPU through OpenCV's DNN module (as ``upright.PROBE``: no GPU memory outside the
    plan's budgets), loaded for the probe only."""
    options = {key: dict(value) for key, value in stages.plugin_options.items()}
    options.setdefault("detect.centerface", {})["runtime"] = "opencv"
    probe = replace(stages, plugin_options=options, upright_look=False, rotations=(), track_every=0, upright=0)
    pair = DetectStage(probe), DetectStage(replace(probe, close_look=True))
    for detect in pair:
        detect.load()
    return pair


def faces_only_seen_closely(usual: DetectStage, closely: DetectStage, frame: np.ndarray) -> int:
    """Faces found in ``frame`` looked at as a photo that are not found looked at as a video's frame."""
    seen = [face.box_ltrb for face in usual.run([frame])[0]]
    return sum(not any(iou(face.box_ltrb, box) >= MATCH_IOU for box in seen) for face in closely.run([frame])[0])


def needs_close_look(frames: list[np.ndarray], stages: StageConfig) -> bool:
    """Whether the video these frames were sampled from (turned as it is looked at) has faces
    only the close look finds on ``EVIDENCE`` of them (on all, where fewer were sampled)."""
    if not frames or not close_look_changes(stages, *frames[0].shape[:2]):
        return False
    usual, closely = probe_stages(stages)
    wanted, seen = min(EVIDENCE, len(frames)), 0
    for looked, frame in enumerate(frames, 1):
        seen += faces_only_seen_closely(usual, closely, frame) > 0
        if seen >= wanted:
            return True
        if seen + len(frames) - looked < wanted:  # the frames left could not show enough
            return False
    return False
