"""The aligner's CPU on the sample video (its faces detected once), with cProfile's top entries.

    python tools/align_profile.py [--video PATH] [--top 30]
"""
import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from common import VIDEO  # noqa: E402

from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig, run_on_frames  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--top", type=int, default=30, help="profile entries to print (0: none)")
    parser.add_argument("--sort", default="tottime", help="cProfile order: tottime or cumulative")
    args = parser.parse_args()
    frames = [media.image for media in InputSource(args.video).video_frames()]
    detect = DetectStage(StageConfig())
    detect.load()
    found = run_on_frames(detect, frames).faces
    align = AlignStage(StageConfig())
    align.load()
    profile = cProfile.Profile()
    start = time.process_time()
    profile.enable()
    run_on_frames(align, frames, found)
    profile.disable()
    print(f"aligner: {1000 * (time.process_time() - start) / len(frames):.1f} CPU ms a frame, "
          f"{sum(map(len, found))} faces in {len(frames)} frames")
    if args.top:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
