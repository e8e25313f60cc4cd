"""How fast a video's frames are read as the run's reader reads them (FFmpeg's decode through
PyAV, packet by packet, and the conversion to BGR), with FFmpeg's default threading (the slices
of a frame: one thread for the one-slice frames of most encoders) and with frame threads
(several frames at once, one thread a core), alternating rounds. The clips are the sample
video's first frames enlarged to 1080p (H.264) and 4K UHD (HEVC, as a phone records it).

    python tools/video_decoding.py [--frames 120] [--rounds 3]
"""
import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2
from common import VIDEO

from extractor.workers.limits import usable_cores

CLIPS = (("1080p H.264", "libx264", 1920, 1080), ("4K UHD HEVC", "libx265", 3840, 2160))


def write_clip(path: Path, codec: str, width: int, height: int, frames: int) -> None:
    """The sample's first ``frames`` frames enlarged to ``width`` x ``height``, encoded fast."""
    capture = cv2.VideoCapture(str(VIDEO))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", **({"x265-params": "log-level=error"} if codec == "libx265" else {})}
        for _ in range(frames):
            image = cv2.resize(capture.read()[1], (width, height), interpolation=cv2.INTER_CUBIC)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())


def ms_a_frame(path: Path, frame_threads: bool) -> tuple[float, float]:
    """Wall and CPU ms a frame, reading the whole clip."""
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if frame_threads:
            stream.thread_type, stream.thread_count = "AUTO", usable_cores()
        for packet in container.demux(stream):
            for frame in packet.decode():
                frame.to_ndarray(format="bgr24")
                count += 1
    return (time.perf_counter() - wall) * 1000 / count, (time.process_time() - cpu) * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name, codec, width, height in CLIPS:
            clip = Path(folder) / f"{codec}.mkv"
            write_clip(clip, codec, width, height, args.frames)
            for round_number in range(1, args.rounds + 1):
                (default, default_cpu), (parallel, parallel_cpu) = ms_a_frame(clip, False), ms_a_frame(clip, True)
                print(f"{name}, round {round_number}: wall ms a frame {default:.1f} with FFmpeg's default threads, "
                      f"{parallel:.1f} with {usable_cores()} frame threads ({default / parallel:.2f}x); CPU ms "
                      f"{default_cpu:.1f} against {parallel_cpu:.1f}")


if __name__ == "__main__":
    main()
