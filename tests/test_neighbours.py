"""A video's doubtful faces, kept where the frame before or after has a face there
(extractor/neighbours.py): the rule on its own, then real runs of the sample clip."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from extractor.alignments import read_records
from extractor.engines.pool import run_pool
from extractor.engines.single import run_single_process
from extractor.faces import DetectedFace
from extractor.geometry import iou
from extractor.media import ExtractMedia
from extractor.neighbours import NeighbourCheck
from extractor.output import OutputSettings
from extractor.run_settings import EngineOptions, RunSettings

SAMPLE = REPO / "samples" / "hamilton_clip_60frames.mp4"
SURE = 0.5


def _frame(index: int, *faces: tuple[float, float]) -> ExtractMedia:
    """Frame ``index`` with faces given as (left, score), each 40 px square at top 10."""
    return ExtractMedia(f"f{index}", None, [DetectedFace(left, 10, 40, 40, score) for left, score in faces], index)


def _scores(media: ExtractMedia) -> list[float]:
    return [face.score for face in media.detected_faces]


def test_a_doubtful_face_stays_only_where_a_neighbouring_frame_has_a_sure_face_there():
    check = NeighbourCheck(SURE)
    frames = [_frame(0, (100, 0.9)),
              _frame(1, (102, 0.45), (300, 0.42)),  # beside frame 0's face / alone
              _frame(2, (500, 0.41)),  # frame 3's face is there: confirmed by the frame after
              _frame(3, (503, 0.8))]
    out = []
    for frame in frames:
        out += check.push(frame, lambda: None)
    assert [media.frame_index for media, _ in out] == [0, 1, 2, 3]  # in order, none held at the end
    assert check.push(_frame(4, (900, 0.44)), None) == [] and check.held.media.frame_index == 4
    out += check.flush()
    assert [_scores(media) for media, _ in out] == [[0.9], [0.45], [0.41], [0.8], []]
    assert (check.kept, check.dropped) == (2, 2)


def test_frames_apart_are_no_neighbours_and_every_nth_frame_counts_as_one():
    check = NeighbourCheck(SURE)
    out = check.push(_frame(0, (100, 0.9)), None) + check.push(_frame(2, (100, 0.45)), None) + check.flush()
    assert _scores(out[1][0]) == []  # frame 1 was not seen: no neighbour
    every_other = NeighbourCheck(SURE, step=2)
    out = every_other.push(_frame(0, (100, 0.9)), None) + every_other.push(_frame(2, (100, 0.45)), None)
    assert _scores((out + every_other.flush())[1][0]) == [0.45]


def test_a_resumed_run_reads_its_frames_neighbours_from_the_earlier_run():
    earlier = {4: [[100, 10, 140, 50]], 7: [[300, 10, 340, 50]]}  # what the earlier run wrote, sure faces
    check = NeighbourCheck(SURE, earlier=earlier.get)
    out = check.push(_frame(5, (101, 0.44)), None) + check.push(_frame(6, (301, 0.43), (101, 0.42)), None)
    out += check.flush()
    assert [_scores(media) for media, _ in out] == [[0.44], [0.43]]  # 5 by 4 before it, 6 by 7 after it


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """The sample clip extracted in one process, with and without the check (records only)."""
    out = tmp_path_factory.mktemp("neighbours")
    runs = {}
    for name, confirm_from in (("on", 0.4), ("off", 0.0)):
        settings = _settings(out / name)
        settings.stages.plugin_options = {"detect.centerface": {"confirm_from": confirm_from}}
        run_single_process(settings)
        runs[name] = list(read_records(out / name / "alignments.jsonl"))
    return runs


def _settings(out, **output) -> RunSettings:
    return RunSettings(SAMPLE, OutputSettings(out, out / "alignments.jsonl", save_faces=False, **output))


def _boxes(record: dict, sure_only: bool = False) -> list:
    return [[left, top, left + width, top + height] for left, top, width, height in
            (f["box"] for f in record["faces"] if f["score"] >= SURE or not sure_only)]


def test_a_video_keeps_its_doubtful_faces_that_a_neighbouring_frame_confirms(sample_runs):
    on, off = sample_runs["on"], sample_runs["off"]
    assert [r["frame"] for r in on] == [r["frame"] for r in off]
    doubtful = 0
    for i, record in enumerate(on):
        assert _boxes(record, sure_only=True) == _boxes(off[i])  # the sure faces are the same
        near = [box for j in (i - 1, i + 1) if 0 <= j < len(on) for box in _boxes(on[j], sure_only=True)]
        for face in record["faces"]:
            if face["score"] < SURE:
                doubtful += 1
                assert face["score"] >= 0.4 and len(face["landmarks"]) == 68
                box = _boxes({"faces": [face]})[0]
                assert any(iou(box, other) >= 0.5 for other in near), record["frame"]
    assert doubtful >= 5  # 10 on this clip: audience faces in the dark, a profile
    assert not any(f["score"] < SURE for r in off for f in r["faces"])


def test_the_pool_keeps_the_same_doubtful_faces_as_one_process(sample_runs, tmp_path):
    run_pool(_settings(tmp_path), EngineOptions())
    pooled = list(read_records(tmp_path / "alignments.jsonl"))
    assert [_boxes(r) for r in pooled] == [_boxes(r) for r in sample_runs["on"]]


def test_a_resumed_video_keeps_the_faces_of_an_uninterrupted_run(sample_runs, tmp_path):
    """Stopped with 37 frames written: the frame held back (the 38th) has a doubtful face that
    only the frame before it confirms; the resumed run reads that frame from the earlier run's
    records and keeps it, as a run never stopped does."""
    whole = sample_runs["on"]
    stop = 37
    assert any(f["score"] < SURE for f in whole[stop]["faces"])

    def stop_after(frames):
        if frames == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_single_process(_settings(tmp_path), EngineOptions(on_frame_written=stop_after))
    assert len(list(read_records(tmp_path / "alignments.jsonl"))) == stop  # the frame held back: not written
    run_single_process(_settings(tmp_path, skip_existing=True))
    resumed = list(read_records(tmp_path / "alignments.jsonl"))
    assert [r["frame"] for r in resumed] == [r["frame"] for r in whole]
    assert [_boxes(r) for r in resumed] == [_boxes(r) for r in whole]
    assert np.allclose([f["score"] for r in resumed for f in r["faces"]], [f["score"] for r in whole
                                                                           for f in r["faces"]])


def test_doubtful_faces_come_back_for_a_videos_frames_only_never_for_a_reference_photo():
    """A --filter reference photo goes through the run's own detect stage, but has no neighbouring
    frame: its doubtful spots must not become faces (the largest face found is the person)."""
    from extractor.sources import InputSource
    from extractor.stages import DetectStage, StageConfig

    frame = next(item.image for item in InputSource(SAMPLE) if item.frame_index == 37)  # a face of 0.41 there
    stage = DetectStage(StageConfig(neighbours=True))
    stage.load()
    as_frame, _ = stage.run_isolated([frame], [37])
    assert any(face.score < SURE for face in as_frame[0])
    for indices in ([-1], None):
        as_reference, _ = stage.run_isolated([frame], indices)
        assert as_reference[0] and all(face.score >= SURE for face in as_reference[0])
        assert len(as_reference[0]) == sum(face.score >= SURE for face in as_frame[0])
