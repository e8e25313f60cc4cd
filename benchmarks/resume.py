"""``make bench`` (last): what resuming a long video costs, before its first new frame.

A resume reads the alignments file of the run it resumes: which frames are done, their face
files (checked whole), the last track id. A two-hour video at 30 frames/s writes a file of
about 200,000 records, 3.7 kB a face. This builds such a case at a smaller scale: a tiny video
of ``--frames`` frames (64 x 48, nothing to find) and an alignments file recording every one of
its frames with two real faces of the sample video (face files listed, none on disk: the
face folder curated away), then times ``extractor run --skip-existing`` on it (every frame
done: the run only reads the file) and reports its wall seconds and peak memory.

    python -m benchmarks.resume [--frames 40000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from extractor.alignments import _line, read_records

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "hamilton_clip_60frames.mp4"
EXTRACTOR = [sys.executable, "-m", "extractor"]


# The command given, in a process of its own: its peak memory (bytes), the last word printed.
MEASURED = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * (1 if sys.platform == 'darwin' else 1024))")


def tiny_video(path: Path, frames: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        blank = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(blank):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def run(*args: str) -> None:
    subprocess.run([*EXTRACTOR, "run", *args, "--engine", "single", "--no-progress"], check=True,
                   capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40000)
    frames = parser.parse_args().frames
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run("-i", str(SAMPLE), "-o", str(tmp / "sample"), "--no-faces")
        faces = next(r["faces"][:2] for r in read_records(tmp / "sample" / "alignments.jsonl") if len(r["faces"]) >= 2)
        video, out = tmp / "long.mp4", tmp / "out"
        tiny_video(video, frames)
        run("-i", str(video), "-o", str(out), "--extract-every-n", str(frames))  # the header a run writes
        alignments = out / "alignments.jsonl"
        with open(alignments, "rb") as handle:
            header = handle.readline()
        with open(alignments, "wb") as handle:
            handle.write(header)
            for index in range(frames):
                key = f"long_{index + 1:06d}"
                handle.write(_line({"face_files": [f"{key}_0.png", f"{key}_1.png"], "faces": faces,
                                    "frame": f"{key}.mp4", "image_shape": [48, 64, 3], "index": index,
                                    "source": str(video)}))
        size = alignments.stat().st_size
        start = time.perf_counter()
        peak = int(subprocess.run([sys.executable, "-c", MEASURED, *EXTRACTOR, "run", "-i", str(video), "-o", str(out),
                                   "--skip-existing", "--engine", "single", "--no-progress"],
                                  check=True, capture_output=True, text=True).stdout.split()[-1])
        seconds = time.perf_counter() - start
    print(f"\nresume of {frames} frames done ({2 * frames} faces, alignments file {size / 1e6:.0f} MB): "
          f"{seconds:.1f} s wall, peak memory {peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
