"""The Ray Data engine on a local Ray instance (num_cpus=2), real plugins on ../shared/data:
the same frames, faces and boxes as the other engines, a video read in ranges by several tasks
and put back in order, a killed actor that loses nothing, and Ctrl-C then resume."""
from __future__ import annotations

import os
import signal

import numpy as np
import psutil
import pytest

from conftest import DATA, REPO, VIDEO, joined_clips, uneven_video
from extractor.alignments import read_records
from extractor.engines.ray_data import VIDEO_RANGE, run_ray
from extractor.output import OutputSettings
from extractor.run_settings import EngineOptions, RunSettings
from extractor.sources import InputSource
from extractor.stages import StageConfig

ray = pytest.importorskip("ray", reason="Ray is part of the test environment (make install)")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _settings(input_path, out, every_n=1, **output) -> RunSettings:
    return RunSettings(input_path=input_path, every_n=every_n,
                       output=OutputSettings(output_dir=out, alignments_path=out / "alignments.jsonl", size=128,
                                             **output),
                       stages=StageConfig(maskers=("components", "extended")))


def _same_faces(ours: dict, reference: dict, sure_only: bool = False) -> None:
    """The faces of two records alike; ``sure_only``: those scored over the detector's threshold
    alone (a video's doubtful faces are judged by their neighbouring frames, which differ when
    one run takes every frame and the other every nth)."""
    ours, reference = ({"frame": r["frame"], "faces": [f for f in r["faces"] if f["score"] >= 0.5 or not sure_only]}
                       for r in (ours, reference))
    assert len(ours["faces"]) == len(reference["faces"]), ours["frame"]
    for a, b in zip(ours["faces"], reference["faces"]):
        assert np.abs(np.subtract(a["box"], b["box"])).max() < 0.5, ours["frame"]
        assert np.abs(np.subtract(a["landmarks"], b["landmarks"])).max() < 0.5, ours["frame"]


def test_ray_gives_the_pool_s_frames_faces_and_files(local_ray, tmp_path):
    from extractor.engines.pool import run_pool

    pool = run_pool(_settings(DATA / "dlib_faces", tmp_path / "pool"), EngineOptions())
    summary = run_ray(_settings(DATA / "dlib_faces", tmp_path / "ray"), EngineOptions())
    assert (summary.frames, summary.faces) == (pool.frames, pool.faces) == (6, 28)
    theirs = list(read_records(tmp_path / "pool" / "alignments.jsonl"))
    ours = list(read_records(tmp_path / "ray" / "alignments.jsonl"))
    assert [r["frame"] for r in ours] == [r["frame"] for r in theirs]  # input order
    for a, b in zip(ours, theirs):
        _same_faces(a, b)
        assert a["face_files"] == b["face_files"]
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.png")) == \
        sorted(p.name for p in (tmp_path / "pool").glob("*.png"))


def test_a_video_is_read_in_ranges_and_comes_back_whole_in_order(local_ray, tmp_path, video_run):
    reference_settings, _ = video_run
    reference = {r["frame"]: r for r in read_records(reference_settings.output.alignments_path)}
    summary = run_ray(_settings(VIDEO, tmp_path / "ray", every_n=3), EngineOptions())
    records = list(read_records(tmp_path / "ray" / "alignments.jsonl"))
    expected = [frame.filename for frame in InputSource(VIDEO, every_n=3)]
    assert 275 // VIDEO_RANGE >= 8  # read by nine tasks
    assert [r["frame"] for r in records] == expected and summary.frames == len(expected) == 92
    for record in records:
        _same_faces(record, reference[record["frame"]], sure_only=True)


def _map_workers() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "MapBatches(StageActor)" in " ".join(p.info["cmdline"] or []) and "read_units" not in
            " ".join(p.info["cmdline"] or [])]


def test_joined_clips_are_read_through_whole_not_lost(local_ray, tmp_path):
    """Clips joined end to end restart their time stamps: ranges found by seeking would miss
    frames (a silent empty run, before): the video is read by one task, and every frame comes."""
    from extractor.engines.single import run_single_process

    video = tmp_path / "joined.ts"
    joined_clips(video, [(320, 180), (640, 360)])
    single = run_single_process(_settings(video, tmp_path / "single"))
    summary = run_ray(_settings(video, tmp_path / "ray"), EngineOptions())
    assert summary.frames == single.frames > 3 and summary.faces == single.faces > 0
    ours, theirs = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("ray", "single"))
    assert [r["frame"] for r in ours] == [r["frame"] for r in theirs]
    for a, b in zip(ours, theirs):
        _same_faces(a, b)


@pytest.mark.parametrize("name, container, codec", [("clip.h264", "h264", "libx264"),
                                                    ("clip.y4m", "yuv4mpegpipe", "rawvideo"),
                                                    ("clip.mxf", "mxf", "mpeg2video")])
def test_raw_streams_and_broadcast_files_are_videos_on_every_engine(local_ray, tmp_path, name, container, codec):
    """A raw H.264 stream (no container, no time stamp: Ray found "no video frame in it" and
    ranges could not seek), a .y4m and an .mxf: videos that FFmpeg reads, read whole and in order
    by Ray as by the single engine."""
    import av

    from extractor.engines.single import run_single_process

    video = tmp_path / name
    with av.open(str(VIDEO)) as source, av.open(str(video), "w", format=container) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for frame, _ in zip(source.decode(video=0), range(12)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24")))
        out.mux(stream.encode())
    assert InputSource(video).is_video
    single = run_single_process(_settings(video, tmp_path / "single"))
    summary = run_ray(_settings(video, tmp_path / "ray"), EngineOptions())
    assert summary.frames == single.frames == 12 and summary.faces == single.faces > 0 and not summary.skipped
    ours, theirs = (list(read_records(tmp_path / engine / "alignments.jsonl")) for engine in ("ray", "single"))
    assert [r["frame"] for r in ours] == [r["frame"] for r in theirs]
    for a, b in zip(ours, theirs):
        _same_faces(a, b)


def test_a_killed_actor_loses_no_frame_and_writes_none_twice(local_ray, tmp_path, video_run):
    reference_settings, _ = video_run
    reference = {r["frame"]: r for r in read_records(reference_settings.output.alignments_path)}
    killed = []

    def kill_one(frames_written: int) -> None:
        if frames_written == 3 and not killed:
            victim = _map_workers()[0]
            killed.append(victim.pid)
            os.kill(victim.pid, signal.SIGKILL)

    run_ray(_settings(VIDEO, tmp_path / "ray", every_n=5), EngineOptions(on_frame_written=kill_one))
    assert killed
    frames = [r["frame"] for r in read_records(tmp_path / "ray" / "alignments.jsonl")]
    assert frames == [frame.filename for frame in InputSource(VIDEO, every_n=5)]  # all, once, in order
    for record in read_records(tmp_path / "ray" / "alignments.jsonl"):
        _same_faces(record, reference[record["frame"]], sure_only=True)


def test_a_frozen_actor_stops_the_run_after_the_stall_timeout(local_ray, tmp_path):
    """An actor frozen (SIGSTOP here; a hung GPU driver on a real cluster) left the run waiting
    for ever: --stall-timeout now stops it, as it stops the pool, with the frames written kept."""
    from extractor.engines.ray_cluster import RayEngineError

    frozen: list[psutil.Process] = []

    def freeze(frames_written: int) -> None:
        if frames_written == 3 and not frozen:
            frozen.extend(p for p in psutil.process_iter(["cmdline"])
                          if " ".join(p.info["cmdline"] or []).startswith("ray::MapWorker"))
            for process in frozen:
                process.suspend()

    photos = tmp_path / "photos"  # more frames than Ray Data computes ahead of the writer
    photos.mkdir()
    for index in range(150):
        (photos / f"{index:03d}.jpg").write_bytes((DATA / "dlib_faces" / "2008_001009.jpg").read_bytes())
    try:
        with pytest.raises(RayEngineError, match="no frame came back for 10 s: a Ray worker is stuck"):
            run_ray(_settings(photos, tmp_path / "ray"), EngineOptions(stall_seconds=10, on_frame_written=freeze))
    finally:
        for process in frozen:  # Ray Data's clean-up ends them; any left go on (and end with the instance)
            try:
                process.resume()
            except psutil.Error:
                pass
    assert frozen
    assert 3 <= len(list(read_records(tmp_path / "ray" / "alignments.jsonl"))) < 150


def test_ctrl_c_leaves_a_valid_file_that_resumes_to_the_whole(local_ray, tmp_path):
    out = tmp_path / "ray"

    def interrupt(frames_written: int) -> None:
        if frames_written == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ray(_settings(VIDEO, out, every_n=5), EngineOptions(on_frame_written=interrupt))
    torn: list = []
    first = list(read_records(out / "alignments.jsonl", torn))
    assert len(first) == 10 and not torn
    summary = run_ray(_settings(VIDEO, out, every_n=5, skip_existing=True), EngineOptions())
    assert summary.already_done == 10
    frames = [r["frame"] for r in read_records(out / "alignments.jsonl")]
    assert sorted(frames) == sorted(frame.filename for frame in InputSource(VIDEO, every_n=5))
    assert len(frames) == len(set(frames))


def _fsa_of(alignments, path):
    from extractor.faceswap_format import write_fsa

    write_fsa(read_records(alignments), path)
    return path


def test_ray_imports_and_realigns_as_the_pool_does(local_ray, tmp_path):
    """--import-alignments (the boxes and points of a faceswap file, no detection) and --realign
    (the aligner on the imported boxes) give the pool's faces, frame for frame."""
    from extractor.engines.pool import run_pool

    photos = DATA / "dlib_faces"
    run_pool(_settings(photos, tmp_path / "first"), EngineOptions())
    fsa = _fsa_of(tmp_path / "first" / "alignments.jsonl", tmp_path / "photos.fsa")
    for realign in (False, True):
        runs = {}
        for name, engine in (("pool", run_pool), ("ray", run_ray)):
            settings = _settings(photos, tmp_path / f"{name}-{realign}")
            settings.import_alignments, settings.realign = fsa, realign
            summary = engine(settings, EngineOptions())
            runs[name] = list(read_records(settings.output.alignments_path))
            assert summary.faces == 28
        assert [r["frame"] for r in runs["ray"]] == [r["frame"] for r in runs["pool"]]
        for a, b in zip(runs["ray"], runs["pool"]):
            _same_faces(a, b)


def test_ray_filters_with_references_embedded_by_its_own_actors(local_ray, tmp_path):
    """--filter: the reference goes through Ray's detect, align and identity actors; the faces
    kept are the pool's."""
    from extractor.engines.pool import run_pool
    from extractor.identity_filter import FaceFilter

    photos = DATA / "dlib_faces"
    reference = photos / "2008_002506.jpg"  # one of the inputs: its face is kept
    kept = {}
    for name, engine in (("pool", run_pool), ("ray", run_ray)):
        settings = _settings(photos, tmp_path / name)
        settings.stages.identity = "dlib-resnet"
        settings.face_filter = FaceFilter("dlib-resnet", [reference])
        summary = engine(settings, EngineOptions())
        assert not settings.face_filter.needs_embedding
        files = sorted(p.name for p in settings.output.output_dir.glob("*.png"))
        kept[name] = (summary.faces, summary.filtered_out, files)
    assert kept["ray"] == kept["pool"] and kept["pool"][0] >= 1 and kept["pool"][1] >= 1


def test_ray_tracks_a_video_as_the_single_engine_does(local_ray, tmp_path):
    """A tracking range is one actor batch, and track ids and steady landmarks are given where the
    driver writes: the same faces, ids and points as the single-process engine."""
    from extractor.engines.single import run_single_process

    sample = REPO / "samples" / "hamilton_clip_60frames.mp4"
    settings = {name: RunSettings(sample, OutputSettings(tmp_path / name, tmp_path / name / "alignments.jsonl",
                                                         size=64), track_every=10) for name in ("single", "ray")}
    run_single_process(settings["single"])
    summary = run_ray(settings["ray"], EngineOptions())
    single, ours = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("single", "ray"))
    assert summary.tracks is not None and [r["frame"] for r in ours] == [r["frame"] for r in single]
    for a, b in zip(ours, single):
        assert [(f["box"], f["landmarks"], f["track"]) for f in a["faces"]] == \
            [(f["box"], f["landmarks"], f["track"]) for f in b["faces"]], a["frame"]


def test_ray_steadies_a_variable_frame_rate_video_by_its_time_stamps(local_ray, tmp_path):
    """Each frame's time travels with its row to the driver, whose filter steps by it: the single
    engine's points (which differ from a filter stepping by the container's rate:
    tests/test_tracking.py)."""
    from extractor.engines.single import run_single_process

    clip = tmp_path / "uneven.mkv"
    uneven_video(clip, [1, 3, 2, 4, 1, 1, 2, 3, 1, 4, 2])
    settings = {name: RunSettings(clip, OutputSettings(tmp_path / name, tmp_path / name / "alignments.jsonl",
                                                       save_faces=False), track_every=1) for name in ("single", "ray")}
    run_single_process(settings["single"])
    run_ray(settings["ray"], EngineOptions())
    single, ours = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("single", "ray"))
    assert len(ours) == 12 and sum(len(r["faces"]) for r in ours) >= 24
    assert [[f["landmarks"] for f in r["faces"]] for r in ours] == \
        [[f["landmarks"] for f in r["faces"]] for r in single]


def test_ray_keeps_a_videos_doubtful_faces_as_the_single_engine_does(local_ray, tmp_path):
    """A video's doubtful faces are confirmed by their neighbouring frames where the driver
    writes, frame after frame (extractor/neighbours.py): the same faces as one process."""
    from extractor.engines.single import run_single_process

    sample = REPO / "samples" / "hamilton_clip_60frames.mp4"
    settings = {name: RunSettings(sample, OutputSettings(tmp_path / name, tmp_path / name / "alignments.jsonl",
                                                         save_faces=False)) for name in ("single", "ray")}
    run_single_process(settings["single"])
    run_ray(settings["ray"], EngineOptions())
    single, ours = (list(read_records(tmp_path / name / "alignments.jsonl")) for name in ("single", "ray"))
    assert [r["frame"] for r in ours] == [r["frame"] for r in single]
    assert [[f["box"] for f in r["faces"]] for r in ours] == [[f["box"] for f in r["faces"]] for r in single]
    assert sum(f["score"] < 0.5 for r in ours for f in r["faces"]) >= 5


def test_face_stages_on_the_cpu_share_one_actor_and_detection_keeps_its_own(tmp_path):
    """align, mask and identity on the CPU: one actor pool, so a batch crosses Ray's object store
    once for them all; detection (on the CPU or a GPU) in an actor pool of its own, sized by its
    worker count, and the face stages' pool by the most workers any of them has. On a GPU the
    identity network (ONNX Runtime's CUDA provider) has an actor pool of its own, under its budget."""
    from extractor.engines.ray_data import actor_groups
    from extractor.pipeline import build_pipeline
    from extractor.workers.devices import GpuInfo

    settings = _settings(DATA / "dlib_faces", tmp_path / "cpu")
    settings.stages = StageConfig(maskers=("components",), identity="dlib-resnet")
    gpu = [GpuInfo(0, "sim", 24000, 23000)]
    for gpus, capable, stages in (([], set(), [["detect"], ["align", "mask", "identity"]]),
                                  (gpu, {"onnxruntime"}, [["detect"], ["align", "mask"], ["identity"]])):
        pipeline = build_pipeline(settings, EngineOptions(workers={"align": 2}), gpus, capable)
        groups = actor_groups(pipeline, pipeline.names)
        assert [[spec.stage for spec in group] for group in groups] == stages
        assert groups[0][0].on_gpu == groups[-1][-1].on_gpu == bool(gpus)
        assert max(spec.workers for spec in groups[1]) == 2


def test_an_input_missing_on_another_node_than_the_drivers_stops_the_run_naming_it(local_ray, tmp_path):
    """A cluster whose nodes lack the input (no shared file system) would list most of it as
    unreadable; a file gone from the driver's own node is an unreadable input, as in the pool."""
    from extractor.engines.ray_cluster import RayEngineError, problem_of
    from extractor.engines.ray_data import read_units
    from extractor.sources import SkippedInput

    gone = str(tmp_path / "gone.jpg")
    unit = {"kind": ["image"], "path": [gone], "key": ["gone.jpg"], "start": [0], "stop": [1], "first_pts": [-1],
            "end_pts": [-1]}

    def row(driver_node: str) -> dict:
        [columns] = read_units(unit, 10 ** 8, 1, frozenset(), driver_node=driver_node)
        return {column: values[0] for column, values in columns.items()}

    on_the_drivers = row(ray.get_runtime_context().get_node_id())
    assert isinstance(problem_of(on_the_drivers), SkippedInput) and gone in on_the_drivers["problem"]
    with pytest.raises(RayEngineError, match=f"{gone}: not on the Ray node that read it .*must be there on every"):
        problem_of(row("f" * 56))  # read on another node than the driver's
