"""Shared fixtures: the real data of ../shared/data and each real model loaded once per session."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from extractor.output import OutputSettings  # noqa: E402
from extractor.engines.single import run_single_process
from extractor.run_settings import RunSettings  # noqa: E402
from extractor.stages import AlignStage, DetectStage, MaskStage, StageConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EXTRACTOR_TEST_DATA", REPO.parent / "shared" / "data"))
VIDEO = DATA / "video" / "short_hamilton_clip.mp4"


# The Keras backend of the shell the tests run in (normally none).
SHELL_KERAS_BACKEND = os.environ.get("KERAS_BACKEND")


@pytest.fixture(autouse=True)
def _runs_started_later_see_the_users_environment():
    """A test that loads a Keras model in this process sets KERAS_BACKEND (Keras reads it as it
    is first imported); every ``extractor run`` a later test starts would inherit it and load
    Keras where a user's run (no KERAS_BACKEND) loads ONNX Runtime, seconds slower to start."""
    yield
    if SHELL_KERAS_BACKEND is None:
        os.environ.pop("KERAS_BACKEND", None)
    else:
        os.environ["KERAS_BACKEND"] = SHELL_KERAS_BACKEND


def extractor_within(seconds: float, *args) -> tuple[int, str]:
    """The ``extractor`` command in a process of its own, which must end within ``seconds`` (a
    hang fails the test, not the suite): its exit status and its output."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "extractor", *map(str, args)], capture_output=True, text=True,
                          timeout=seconds, cwd=REPO)
    return done.returncode, done.stdout + done.stderr


def annotations(set_name: str) -> dict:
    return json.loads((DATA / set_name / "annotations.json").read_text())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"test data not found at {DATA} (set EXTRACTOR_TEST_DATA)")
    return DATA


@pytest.fixture(scope="session")
def default_config() -> StageConfig:
    return StageConfig(maskers=("components", "extended", "mesh-hull"))


def _loaded(stage):
    stage.load()
    return stage


@pytest.fixture(scope="session")
def detect_stage(default_config) -> DetectStage:
    return _loaded(DetectStage(default_config))


@pytest.fixture(scope="session")
def align_stage(default_config) -> AlignStage:
    return _loaded(AlignStage(default_config))


@pytest.fixture(scope="session")
def mask_stage(default_config) -> MaskStage:
    return _loaded(MaskStage(default_config))


@pytest.fixture(scope="session")
def video_run(tmp_path_factory, data_dir):
    """The whole sample video through the single-process engine, default plugins, once."""
    out = tmp_path_factory.mktemp("video_run")
    settings = RunSettings(
        input_path=VIDEO,
        output=OutputSettings(output_dir=out / "faces", alignments_path=out / "alignments.jsonl", size=128),
        stages=StageConfig(maskers=("components", "extended")))
    summary = run_single_process(settings)
    return settings, summary


def write_exr(path, channels: dict[str, np.ndarray]) -> None:
    """An OpenEXR file of the given channels (name: 2-D array), as a compositing tool writes it."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def joined_clips(path, sizes: list[tuple[int, int]], frames_each: int = 3) -> None:
    """An MPEG-TS file of clips joined end to end, each at its own frame size (as a stream that
    changes resolution, or clips cut together with `cat`): the sample video's frames, resized."""
    import av
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    with open(path, "wb") as joined:
        for number, (width, height) in enumerate(sizes):
            part = path.with_name(f"part{number}.ts")
            with av.open(str(part), "w", format="mpegts") as out:
                stream = out.add_stream("mpeg2video", rate=25)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                for _ in range(frames_each):
                    frame = cv2.resize(capture.read()[1], (width, height))
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
                out.mux(stream.encode())
            joined.write(part.read_bytes())


def uneven_video(path, steps: list[int], ticks: int = 60) -> None:
    """The sample video's first ``len(steps) + 1`` frames at uneven times, as a phone that drops
    its frame rate in dim light or a screen capture writes them: frame ``i + 1`` comes
    ``steps[i] / ticks`` seconds after frame ``i`` (exact time stamps, lossless FFV1 in Matroska)."""
    from fractions import Fraction

    import av
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=ticks)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, ticks)
        for pts in np.concatenate([[0], np.cumsum(steps)]):
            frame = av.VideoFrame.from_ndarray(cv2.resize(capture.read()[1], (640, 360)), format="bgr24")
            frame.pts, frame.time_base = int(pts), Fraction(1, ticks)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def turned_video(path, rotation: int, frames: int = 6, say_so: bool = True, mirrored: bool = False) -> None:
    """The sample video's first ``frames`` frames stored turned as a phone stores a portrait
    video: the pixels turned by ``rotation`` degrees counter-clockwise (0, 90, -90, 180) and the
    display rotation that turns them back (``say_so``; without it, as a camera mounted upside
    down or a tool that dropped the rotation leaves them), losslessly (PNG frames in a QuickTime
    file). ``mirrored``: the pixels mirrored before they are turned, and the display matrix
    mirrors them back after turning them (a front camera's)."""
    import av
    import cv2

    turn = {0: None, 90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180}[rotation]
    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=25)
        stream.pix_fmt = "rgb24"
        for number in range(frames):
            frame = cv2.flip(capture.read()[1], 1) if mirrored else capture.read()[1]
            frame = frame if turn is None else cv2.rotate(frame, turn)
            if number == 0:
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                if (rotation or mirrored) and say_so:  # counter-clockwise: players turn it back clockwise
                    stream.set_display_rotation(-rotation, hflip=mirrored)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
