"""A 1080p video whose small faces come only late: is it given the close look, and what is found?

Builds a lossless 1920 x 1080 video: 40 frames of the sample video enlarged (faces of 30-200 px,
all found in the usual view), then 40 of a crowd: two 6 x 6 mosaics of the annotated photos of
../shared/data (faces of about 10-40 px), 20 frames each. Runs ``extractor run`` on it (single
process) and prints the faces found, the crowd's listed faces among them, the decision line and
the run's CPU seconds. ``--probe``: instead, the CPU the decision takes on the sample video
enlarged to 1080p (its six sampled frames looked at both ways, the two models loaded), three times.
``--long``: instead, a 10-minute 1080p video (a frame every 2 s) of the sample video enlarged,
with the crowd from 4:20 to 5:40 only, between where six evenly spaced samples fall, and the same
without it: the decision and its CPU, from six samples and from as many as a run takes for its length.

    python tools/late_crowd.py [--probe | --long]   (about a minute)
"""
import re
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from common import VIDEO

from benchmarks.big_frames import annotated_photos, mosaic, moved
from extractor.alignments import read_records
from extractor.geometry import iou

SIZE = (1920, 1080)


def build(path: Path) -> dict[int, list]:
    """The video at ``path``; the listed boxes (left, top, right, bottom) of each crowd frame by index."""
    capture = cv2.VideoCapture(str(VIDEO))
    frames = [cv2.resize(capture.read()[1], SIZE, interpolation=cv2.INTER_CUBIC) for _ in range(40)]
    truth, photos = {}, annotated_photos()
    for seed in (0, 1):  # a crowd shot: 6 x 6 photos side by side, faces of about 10-40 px, 20 frames each
        crowd, listed = mosaic(photos, 1440, 6, seed)
        frame = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
        frame[:, 240:240 + 1440] = crowd
        for _ in range(20):
            truth[len(frames)] = moved(listed, np.array([[1.0, 0, 240], [0, 1.0, 0]]))
            frames.append(frame)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())
    return truth


def probe_cost() -> None:
    from extractor.small_faces import needs_close_look
    from extractor.sources import InputSource
    from extractor.stages import StageConfig

    sampled = InputSource(VIDEO).sample_frames(6)
    enlarged = [cv2.resize(frame, SIZE, interpolation=cv2.INTER_CUBIC) for frame in sampled]
    for _ in range(3):
        start = time.process_time()
        decided = needs_close_look(enlarged, StageConfig())
        print(f"close look {'chosen' if decided else 'not chosen'}: {time.process_time() - start:.2f} CPU-s")


def build_long(path: Path, crowd_shown: bool = True) -> None:
    """Ten minutes at 0.5 frames/s, a key frame every 5 frames (10 s): the sample video enlarged,
    its crowd (``build``'s first mosaic) from 260 to 340 s (or not: ``crowd_shown``)."""
    capture = cv2.VideoCapture(str(VIDEO))
    scenes = [cv2.resize(capture.read()[1], SIZE, interpolation=cv2.INTER_AREA) for _ in range(60)]
    crowd = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    crowd[:, 240:240 + 1440] = mosaic(annotated_photos(), 1440, 6, 0)[0]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(1, 2), options={"crf": "18", "g": "5"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for index in range(300):
            frame = crowd if crowd_shown and 130 <= index < 170 else scenes[index % len(scenes)]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())


def long_video() -> None:
    from extractor.small_faces import close_look_samples, needs_close_look
    from extractor.sources import InputSource
    from extractor.stages import StageConfig

    for crowd_shown in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            video = Path(folder) / "long.mp4"
            build_long(video, crowd_shown)
            source = InputSource(video)
            for count in (6, close_look_samples(source)):
                start = time.process_time()
                frames = source.sample_frames(count)
                decided = needs_close_look(frames, StageConfig())
                print(f"{'with' if crowd_shown else 'without'} the crowd, {count} samples ({len(frames)} decoded): "
                      f"close look {'chosen' if decided else 'not chosen'}, {time.process_time() - start:.2f} CPU-s")


def main() -> None:
    if "--probe" in sys.argv[1:]:
        return probe_cost()
    if "--long" in sys.argv[1:]:
        return long_video()
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "late_crowd.mkv"
        truth = build(video)
        run = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(video), "-o", f"{folder}/out",
                              "--single-process", "--no-progress", "--size", "64"], capture_output=True, text=True)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        records = {int(re.search(r"_(\d+)\.mkv$", r["frame"]).group(1)) - 1: r
                   for r in read_records(Path(folder) / "out" / "alignments.jsonl")}
        found = sum(any(iou(box, (f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]))
                        >= 0.3 for f in records.get(index, {"faces": []})["faces"])
                    for index, boxes in truth.items() for box in boxes)
        decision = [line for line in run.stderr.splitlines() + run.stdout.splitlines() if "finer view" in line]
        faces = next(line for line in run.stdout.splitlines() if line.startswith("faces:"))
        print(f"{faces}; the crowd's listed faces found {found} of {sum(map(len, truth.values()))}; CPU {cpu:.1f} s")
        print(decision[0] if decision else "no close look decided")


if __name__ == "__main__":
    main()
