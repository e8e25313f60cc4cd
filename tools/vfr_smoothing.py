"""Steady landmarks on a variable-frame-rate video: does the One Euro filter need each frame's time?

The writer's filter (`TrackLabeller`) takes one frame rate, the stream's average. Phones drop
from 30 to 15 frames/s in dim light, and screen captures write frames at irregular times. This
builds clips with known motion from the annotated photos of ../shared/data as `make tracking`
does (its motion, noise and JPEG), their frames at such irregular times (PyAV, exact time
stamps), extracts them once without smoothing (`--track --track-every 1 --no-smooth`), then
steadies the points with the writer's `TrackLabeller` (4 Hz, speed response 40, in face sizes),
the frames' times given to it (as runs do) or not (each frame one average frame's time on).
Record: docs/tracking.md. Run: .venv/bin/python tools/vfr_smoothing.py (about 3 minutes).
"""
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from common import SHARED

from benchmarks.tracking import CLIP_FPS, annotated_photos, extract, moved_frame, moved_points, steadiness
from extractor.faces import DetectedFace
from extractor.tracking import TrackLabeller

FRAMES = 60
TICKS = 600  # time stamps in 1/600 s: exact for 15, 20, 24, 30 and 60 frames/s


def frame_steps(rng) -> dict[str, tuple[list[float], str]]:
    """Seconds between frames: a phone dropping to 15 frames/s for half a second a second and a
    half, and a capture writing a frame every 1 to 4 sixtieths of a second; and the container
    (an MP4's average rate is its frames over its duration; a Matroska file's, the rate its
    writer announced: 30 here)."""
    phone = ([1 / 30] * 30 + [1 / 15] * 15) * 2
    irregular = list(rng.choice([1 / 60, 2 / 60, 3 / 60, 4 / 60], FRAMES))
    return {"phone, 30 and 15 frames/s, MP4": (phone[:FRAMES], ".mp4"), "irregular, 1-4/60 s, MP4": (irregular, ".mp4"),
            "irregular, 1-4/60 s, Matroska": (irregular, ".mkv")}


def build_clips(folder: Path, steps: list[float], suffix: str) -> list[tuple[Path, list]]:
    """A clip per annotated photo (``suffix``: the container), its frames at the times ``steps``
    make; each frame's true points."""
    rng = np.random.default_rng(0)
    times = np.concatenate([[0.0], np.cumsum(steps[:FRAMES - 1])])
    clips = []
    for name, image, _, faces, _ in annotated_photos(SHARED / "data"):
        height, width = image.shape[:2]
        path = folder / f"{name}{suffix}"
        truth = []
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = 8_000_000
            stream.time_base = stream.codec_context.time_base = Fraction(1, TICKS)
            for time in times:
                frame, matrix = moved_frame(image, time * CLIP_FPS, len(clips), rng)  # the benchmark's motion
                video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
                video_frame.pts, video_frame.time_base = round(time * TICKS), Fraction(1, TICKS)
                container.mux(stream.encode(video_frame))
                truth.append(moved_points(faces, matrix))
            container.mux(stream.encode())
        clips.append((path, truth))
    return clips


def read_times(path: Path) -> tuple[float, list[float]]:
    """The stream's average rate and each frame's time (seconds), as decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate), [float(frame.pts * stream.time_base) for frame in container.decode(stream)]


def steadied(faces: dict, times: list[float], rate: float, own_steps: bool) -> dict:
    """The faces with their points steadied by the writer's ``TrackLabeller``, the frames' times
    given to it (``own_steps``) or not (each frame one average frame's time on)."""
    labeller, out = TrackLabeller(rate), {}
    for index in sorted(faces):
        found = [DetectedFace(*face["box"], landmarks=np.array(face["landmarks"])) for face in faces[index]]
        labeller.label(index, found, None, times[index] if own_steps else None)
        out[index] = [{**face, "landmarks": steady.landmarks.tolist()} for face, steady in zip(faces[index], found)]
    return out


def main() -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="extractor-vfr-") as tmp:
        tmp = Path(tmp)
        for name, (steps, suffix) in frame_steps(rng).items():
            folder = tmp / str(len(list(tmp.iterdir())))
            folder.mkdir()
            measured = {run: ([], []) for run in ("not smoothed", "the average rate", "each frame's time step")}
            for path, truth in build_clips(folder, steps, suffix):
                rate, times = read_times(path)
                faces, _ = extract(path, tmp / "run", 1, smooth=False)
                for run, found in (("not smoothed", faces), ("the average rate", steadied(faces, times, rate, False)),
                                   ("each frame's time step", steadied(faces, times, rate, True))):
                    errors, jitters = steadiness(found, truth)
                    measured[run][0].extend(errors)
                    measured[run][1].extend(jitters)
            print(f"\n## {name} (average rate {rate:.2f} frames/s)\n| filter | faces x frames | NME mean / median | "
                  "jitter mean / median |\n| --- | --- | --- | --- |")
            for run, (errors, jitters) in measured.items():
                print(f"| {run} | {len(errors)} | {np.mean(errors):.4f} / {np.median(errors):.4f} | "
                      f"{np.mean(jitters):.4f} / {np.median(jitters):.4f} |")


if __name__ == "__main__":
    main()
