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


# --- following faces in the detect stage, and tracked runs of every engine ----------------------

import cv2  # noqa: E402
import pytest  # noqa: E402

from conftest import DATA, REPO  # noqa: E402
from extractor.alignments import read_records  # noqa: E402
from extractor.engines.pool import run_pool  # noqa: E402
from extractor.engines.single import run_single_process  # noqa: E402
from extractor.output import OutputSettings, read_face_metadata  # noqa: E402
from extractor.run_settings import EngineOptions, RunSettings  # noqa: E402
from extractor.stages import DetectStage, StageConfig  # noqa: E402

SAMPLE = REPO / "samples" / "hamilton_clip_60frames.mp4"  # 60 frames, a scene cut at frame 20


def _tracked_settings(input_path, out, track_every=10, **output) -> RunSettings:
    return RunSettings(input_path, OutputSettings(out, out / "alignments.jsonl", size=64, **output),
                       track_every=track_every)


@pytest.fixture(scope="module")
def tracked_stage():
    stage = DetectStage(StageConfig(track_every=10))
    stage.load()
    return stage


@pytest.fixture(scope="module")
def tracked_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked")
    summary = run_single_process(_tracked_settings(SAMPLE, out))
    return out, summary, list(read_records(out / "alignments.jsonl"))


def _shifted(image, dx, dy):
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1],
                          borderMode=cv2.BORDER_REFLECT)


def _box(face):
    return [face.left, face.top, face.width, face.height]


def test_a_moving_face_is_followed_in_crops_after_one_full_detection(tracked_stage):
    photo = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    tracked_stage.follower.reset()
    for index in range(9):
        frame = _shifted(photo, 3 * index, 2 * index)
        found = tracked_stage.follower.step(frame, index, tracked_stage._full, tracked_stage._crops)
        expected = tracked_stage.run([frame])[0]
        assert len(found) == len(expected) == 1
        assert box_iou([_box(found[0])], [_box(expected[0])])[0, 0] > 0.7
    assert tracked_stage.follower.full_detections == 1


@pytest.mark.parametrize("angle", [90, 180])
def test_a_face_lying_turned_is_followed_standing_up(tracked_stage, angle):
    """A video filmed upside down or on its side with nothing saying so (--rotate on finds its
    faces in the full detections): each follow crop is looked at turned as its face lay."""
    from extractor.geometry import rotate_image

    photo = rotate_image(cv2.imread(str(DATA / "dlib_faces" / "2008_002506.jpg")), angle)[0]  # 3 faces
    stage = DetectStage(StageConfig(track_every=10, rotations=(90, 270, 180)))
    stage.plugin = tracked_stage.plugin
    for index in range(6):
        found = stage.follower.step(_shifted(photo, 3 * index, 2 * index), index, stage._full, stage._crops)
        assert len(found) == 3, index
    assert stage.follower.full_detections == 1


def test_an_interlaced_videos_faces_are_followed_in_crops_of_one_field(tracked_stage, monkeypatch):
    """An interlaced video's frames are looked at one field at a time (docs/accuracy.md); its
    follow crops too, cut from the lines around each face (the woven sample video tracked every
    10 frames: 608 -> 612 of the 678 faces one field finds on every frame). Each crop is the one
    cut from the whole frame's field, whether the square starts on an even line or an odd one,
    inside the frame or across its edge."""
    from extractor.fields import one_field
    from extractor.tracking import follow_crop

    capture = cv2.VideoCapture(str(SAMPLE))
    first, second = capture.read()[1], capture.read()[1]
    woven = first.copy()
    woven[1::2] = second[1::2]  # a frame of two fields 1/25 s apart: combed where faces move
    inside = [(520, top, size, size) for top in (50, 51) for size in (40, 41)]  # each start and end line parity
    for box in inside + [(-30, -17, 60, 60), (600, 330, 61, 64), (0, 355, 9, 9)]:
        assert np.array_equal(follow_crop(woven, box, top_field=True)[0], follow_crop(one_field(woven), box)[0]), box
    stage = DetectStage(StageConfig(track_every=10, one_field=True))
    stage.plugin = tracked_stage.plugin
    looked_at = []
    monkeypatch.setattr(stage.plugin, "detect_crops", lambda crops: looked_at.extend(crops) or [[] for _ in crops])
    stage.run_isolated([woven, woven], [0, 1])
    faces = stage.run([woven])[0]
    assert len(faces) >= 2 and len(looked_at) == len(faces)
    for crop, face in zip(looked_at, faces):
        assert np.array_equal(crop, follow_crop(one_field(woven), _box(face))[0])


def test_min_size_is_judged_in_frame_pixels_on_followed_frames(tracked_stage):
    """A followed face is found in a small crop, where it looks smaller than in the frame:
    --min-size must judge it once it is back in frame pixels, as on a full detection."""
    photo = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    (face,) = tracked_stage.run([photo])[0]
    minimum = int(0.8 * max(face.width, face.height))
    stage = DetectStage(StageConfig(track_every=10, min_size=minimum))
    stage.plugin = tracked_stage.plugin
    frames = [_shifted(photo, 3 * index, 2 * index) for index in range(5)]
    found, failures = stage.run_isolated(frames, list(range(5)))
    assert not failures and [len(faces) for faces in found] == [1] * 5
    assert stage.follower.full_detections == 1


def test_a_scene_cut_gets_a_full_detection(tracked_stage):
    """Faces are not looked for where the other scene had them: the new scene is detected whole."""
    first = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    second = cv2.imread(str(DATA / "dlib_faces" / "2008_002506.jpg"))
    tracked_stage.follower.reset()
    for index in range(3):
        tracked_stage.follower.step(first, index, tracked_stage._full, tracked_stage._crops)
    found = tracked_stage.follower.step(second, 3, tracked_stage._full, tracked_stage._crops)
    assert tracked_stage.follower.full_detections == 2
    assert len(found) == len(tracked_stage.run([second])[0]) >= 3


def test_tracked_video_saves_detection_and_labels_tracks(tracked_sample):
    out, summary, records = tracked_sample
    assert summary.frames == 60 and summary.faces >= 90  # every-frame detection finds 101
    ids = [face["track"] for record in records for face in record["faces"]]
    assert len(ids) == summary.faces and summary.tracks == len(set(ids)) >= 3
    first = next(record for record in records if record["faces"])
    meta = read_face_metadata(out / first["face_files"][0])
    assert meta["face"]["track"] == first["faces"][0]["track"]
    # A face seen in consecutive frames keeps its id.
    assert records[1]["faces"][0]["track"] == records[0]["faces"][0]["track"]


def test_the_pool_with_two_detect_workers_gives_the_single_engine_s_tracked_faces(tracked_sample, tmp_path):
    """Ranges of frames go to one detect worker each, in order: the faces are the same to the bit."""
    _, _, single = tracked_sample
    run_pool(_tracked_settings(SAMPLE, tmp_path), EngineOptions(workers={"detect": 2}))
    pooled = list(read_records(tmp_path / "alignments.jsonl"))
    assert [r["frame"] for r in pooled] == [r["frame"] for r in single]
    for a, b in zip(pooled, single):
        assert [(f["box"], f["landmarks"], f["track"]) for f in a["faces"]] == \
            [(f["box"], f["landmarks"], f["track"]) for f in b["faces"]], a["frame"]


def test_photo_folders_are_unchanged_by_tracking(tmp_path):
    run_single_process(_tracked_settings(DATA / "dlib_faces", tmp_path / "on"))
    run_single_process(_tracked_settings(DATA / "dlib_faces", tmp_path / "off", track_every=0))
    on, off = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("on", "off"))
    assert on == off and sum(len(r["faces"]) for r in on) == 28
    assert not any("track" in face for record in on for face in record["faces"])


def test_tracking_every_frame_keeps_every_face_and_steadies_its_landmarks(tmp_path):
    """--track --track-every 1 (README): every frame a full detection, so the very faces of an
    untracked run, each with a track id, its landmarks steadied (moved from the raw ones)."""
    raw = run_single_process(_tracked_settings(SAMPLE, tmp_path / "raw", track_every=0, save_faces=False))
    each = run_single_process(_tracked_settings(SAMPLE, tmp_path / "each", track_every=1, save_faces=False))
    assert raw.faces == each.faces > 0 and each.tracks > 0
    raw_records, each_records = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("raw", "each"))
    assert [[f["box"] for f in r["faces"]] for r in raw_records] == [[f["box"] for f in r["faces"]]
                                                                    for r in each_records]
    assert all("track" in f for r in each_records for f in r["faces"])
    moved = [np.abs(np.subtract(a["landmarks"], b["landmarks"])).max()
             for r, e in zip(raw_records, each_records) for a, b in zip(r["faces"], e["faces"])]
    assert max(moved) > 0.5  # steadied along the track: not the raw points


def test_a_resumed_tracked_video_continues_its_frames_and_track_ids(tracked_sample, tmp_path):
    _, _, whole = tracked_sample

    def stop_after(frames):
        if frames == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_single_process(_tracked_settings(SAMPLE, tmp_path), EngineOptions(on_frame_written=stop_after))
    earlier = list(read_records(tmp_path / "alignments.jsonl"))
    assert len(earlier) == 25
    from extractor.alignments import OutputError

    with pytest.raises(OutputError, match="made with other settings: track"):  # the rest untracked: refused
        run_single_process(_tracked_settings(SAMPLE, tmp_path, track_every=0, skip_existing=True))
    summary = run_single_process(_tracked_settings(SAMPLE, tmp_path, skip_existing=True))
    resumed = list(read_records(tmp_path / "alignments.jsonl"))
    assert summary.already_done == 25 and [r["frame"] for r in resumed] == [r["frame"] for r in whole]
    earlier_ids = {f["track"] for r in earlier for f in r["faces"]}
    later_ids = {f["track"] for r in resumed[25:] for f in r["faces"]}
    assert min(later_ids) > max(earlier_ids)  # new tracks, numbered after the earlier run's
    for a, b in zip(resumed[30:], whole[30:]):  # from the next range on, the very same detections
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]], a["frame"]


def test_every_nth_frame_is_followed_too(tracked_sample, tmp_path):
    """--extract-every-n 2: the run's frames are two apart; faces are still followed between full
    detections and keep their track, and the detections are those of the other engines' runs."""
    settings = _tracked_settings(SAMPLE, tmp_path / "single")
    settings.every_n = 2
    summary = run_single_process(settings)
    records = list(read_records(tmp_path / "single" / "alignments.jsonl"))
    assert summary.frames == 30 and summary.tracks < summary.faces / 3  # tracks go on across the gaps
    pool_settings = _tracked_settings(SAMPLE, tmp_path / "pool")
    pool_settings.every_n = 2
    run_pool(pool_settings, EngineOptions(workers={"detect": 2}))
    pooled = list(read_records(tmp_path / "pool" / "alignments.jsonl"))
    assert [[f["box"] for f in r["faces"]] for r in pooled] == [[f["box"] for f in r["faces"]] for r in records]


def test_frames_two_apart_are_followed_not_detected_again():
    stage = DetectStage(StageConfig(track_every=10, track_step=2))
    stage.load()
    photo = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    for index in range(0, 18, 2):
        assert len(stage.follower.step(_shifted(photo, 2 * index, index), index, stage._full, stage._crops)) == 1
    assert stage.follower.full_detections == 2  # frames 0 and 10 start ranges; the others are followed


def test_a_change_of_frame_size_gets_a_full_detection(tracked_stage):
    """Joined clips: the same picture at another size has the same colours (no scene cut), but
    last frame's boxes say nothing of where its faces are now."""
    photo = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    bigger = cv2.resize(photo, None, fx=1.5, fy=1.5)
    tracked_stage.follower.reset()
    for index in range(3):
        tracked_stage.follower.step(photo, index, tracked_stage._full, tracked_stage._crops)
    found = tracked_stage.follower.step(bigger, 3, tracked_stage._full, tracked_stage._crops)
    assert tracked_stage.follower.full_detections == 2
    expected = tracked_stage.run([bigger])[0]
    assert len(found) == len(expected) == 1 and box_iou([_box(found[0])], [_box(expected[0])])[0, 0] > 0.99


def test_a_change_of_frame_size_ends_every_track():
    """A face at the same box in a frame of another size (joined clips) is not the same face:
    continuing its track would also smooth its points with the other clip's."""
    from extractor.faces import DetectedFace
    from extractor.tracking import TrackLabeller

    photo = cv2.imread(str(DATA / "ibug_300w" / "indoor_020.png"))
    labeller = TrackLabeller(rate=25)
    ids = []
    for index, image in enumerate([photo, photo, cv2.resize(photo, None, fx=1.5, fy=1.5)]):
        face = DetectedFace(100, 100, 80, 80)
        labeller.label(index, [face], image)
        ids.append(face.track_id)
    assert ids[0] == ids[1] != ids[2]


# --- a variable frame rate: each frame steadied by the time that passed ------------------------

UNEVEN_STEPS = [1, 3, 2, 4, 1, 1, 2, 3, 1, 4, 2, 1, 1, 3, 2, 4, 1, 2, 1]  # sixtieths of a second between frames


def _steadied(rate: float, times: list) -> np.ndarray:
    """One face moving at 240 px/s with noise, labelled frame by frame with ``times`` (None: not
    known), by a labeller whose stream rate is ``rate``: its steadied points, frame by frame."""
    from extractor.faces import DetectedFace
    from extractor.tracking import TrackLabeller

    rng = np.random.default_rng(0)
    base = rng.uniform(100, 180, (68, 2))
    seconds = np.concatenate([[0], np.cumsum(UNEVEN_STEPS)]) / 60
    labeller, steadied = TrackLabeller(rate=rate), []
    for index, (second, time) in enumerate(zip(seconds, times)):
        points = base + [240 * second, 0] + rng.normal(0, 1, (68, 2))
        face = DetectedFace(100 + 240 * second, 100, 80, 80, landmarks=points)
        labeller.label(index, [face], None, time)
        steadied.append(face.landmarks)
    return np.array(steadied)


def test_each_frame_is_steadied_by_the_time_since_the_frame_before():
    """A phone dropping its frame rate in dim light, a screen capture: frames come at uneven
    times, and a face moves by the time that passed, not by the frame. With the frames' times the
    stream's announced rate (the average, or whatever the container says) changes nothing."""
    times = list(np.concatenate([[0], np.cumsum(UNEVEN_STEPS)]) / 60)
    assert np.allclose(_steadied(24, times), _steadied(60, times))
    assert np.abs(_steadied(24, times) - _steadied(24, [None] * len(times))).max() > 0.5
    # Frames without a time (a raw stream), or whose time does not go forward: the stream's rate.
    stuck = [times[0]] * len(times)
    assert np.array_equal(_steadied(24, stuck), _steadied(24, [None] * len(times)))


def test_a_variable_frame_rate_video_is_steadied_by_its_time_stamps_in_every_engine(tmp_path):
    """The frames' time stamps reach the writer's filter: the points of a smoothed run are the
    unsmoothed run's steadied with the frames' times (not the container's 60 frames/s), and the
    pool (the times stay with the coordinator, the frames go through shared memory) gives the
    single engine's points to the bit."""
    from conftest import uneven_video
    from extractor.faces import DetectedFace
    from extractor.tracking import TrackLabeller

    clip = tmp_path / "uneven.mkv"
    uneven_video(clip, UNEVEN_STEPS)
    runs = {}
    for name, smooth, engine in (("raw", False, run_single_process), ("single", True, run_single_process),
                                 ("pool", True, run_pool)):
        settings = _tracked_settings(clip, tmp_path / name, track_every=1, save_faces=False)
        settings.smooth = smooth
        engine(settings) if engine is run_single_process else engine(settings, EngineOptions())
        runs[name] = list(read_records(tmp_path / name / "alignments.jsonl"))
    assert sum(len(r["faces"]) for r in runs["raw"]) >= 2 * len(runs["raw"]) == 40

    def replayed(times: list) -> list:
        labeller, points = TrackLabeller(rate=60), []
        for index, (record, time) in enumerate(zip(runs["raw"], times)):
            faces = [DetectedFace(*f["box"], landmarks=np.array(f["landmarks"])) for f in record["faces"]]
            labeller.label(index, faces, None, time)
            points += [face.landmarks for face in faces]
        return points

    smoothed = [np.array(f["landmarks"]) for r in runs["single"] for f in r["faces"]]
    from extractor.sources import InputSource

    by_times = replayed([frame.time for frame in InputSource(clip)])  # as stored: Matroska keeps milliseconds
    by_rate = replayed([None] * len(runs["raw"]))
    assert max(np.abs(a - b).max() for a, b in zip(smoothed, by_times)) < 0.01
    assert max(np.abs(a - b).max() for a, b in zip(smoothed, by_rate)) > 0.2
    assert [[f["landmarks"] for f in r["faces"]] for r in runs["pool"]] == \
        [[f["landmarks"] for f in r["faces"]] for r in runs["single"]]
