"""--re-feed measured: landmark NME and jitter on clips of known motion, and the aligner's CPU.

The clips are `make tracking`'s steadiness clips (each annotated photo moved by a slow pan, zoom and
turn, with noise and JPEG on every frame, the ground truth moved with it), made from
../shared/data and from ../shared/turned; every frame detected, then aligned with each re-feed
count. NME and jitter as `make tracking` reports them (over the outer-eye-corner distance).
With ``--tracked``, also the ../shared/data clips run through the pool with ``--track`` and its
smoothing, without and with re-feed.

    python tools/re_feed.py [--counts 0,2,4,8] [--frames 40] [--tracked]
"""
import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED

from benchmarks.tracking import build_clips, steadiness
from extractor.alignments import read_records
from extractor.engines.pool import run_pool
from extractor.output import OutputSettings
from extractor.run_settings import EngineOptions, RunSettings
from extractor.sources import InputSource
from extractor.stages import AlignStage, DetectStage, StageConfig


def row(name: str, count: int, errors: list, jitters: list, seconds: str) -> str:
    return (f"| {name} | {count} | {len(errors)} | {np.mean(errors):.4f} / {np.median(errors):.4f} | "
            f"{np.mean(jitters):.4f} / {np.median(jitters):.4f} | {seconds} |")


def tracked(clips: list, count: int, folder: Path) -> tuple[list, list]:
    """NME and jitter of the clips run through the pool, tracked every 10 frames and smoothed."""
    errors, jitters = [], []
    for number, (path, truth, _) in enumerate(clips):
        out = folder / f"{count}_{number}"
        settings = RunSettings(path, OutputSettings(out, out / "alignments.jsonl", size=64), track_every=10,
                               show_progress=False, stages=StageConfig(re_feed=count))
        run_pool(settings, EngineOptions())
        faces = {int(record["index"]): record["faces"] for record in read_records(out / "alignments.jsonl")}
        clip_errors, clip_jitters = steadiness(faces, truth)
        errors += clip_errors
        jitters += clip_jitters
    return errors, jitters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,2,4,8", help="re-feed counts to compare")
    parser.add_argument("--frames", type=int, default=40, help="frames a clip")
    parser.add_argument("--tracked", action="store_true", help="also tracked and smoothed runs (the pool)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    detect = DetectStage(StageConfig())
    detect.load()
    print("| clips | re-feed | faces x frames | NME mean / median | jitter mean / median | align CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (("../shared/data", SHARED / "data"), ("../shared/turned", SHARED / "turned")):
            clips, built = [], build_clips(Path(tmp) / data.name, args.frames, data)
            for path, truth, _ in built:
                frames = [media.image for media in InputSource(path).video_frames()]
                clips.append((frames, [detect.run([frame])[0] for frame in frames], truth))
            for count in counts:
                align = AlignStage(StageConfig(re_feed=count))
                align.load()
                errors, jitters = [], []
                start = time.process_time()
                for frames, detections, truth in clips:
                    faces = {}
                    for index, (frame, found) in enumerate(zip(frames, detections)):
                        found = copy.deepcopy(found)
                        align.run([frame] * len(found), found)
                        faces[index] = [{"landmarks": face.landmarks.tolist()} for face in found]
                    clip_errors, clip_jitters = steadiness(faces, truth)
                    errors += clip_errors
                    jitters += clip_jitters
                print(row(name, count, errors, jitters, f"{time.process_time() - start:.1f}"), flush=True)
            if args.tracked and data.name == "data":
                for count in (counts[0], counts[-1]):
                    print(row(f"{name}, `--track`", count, *tracked(built, count, Path(tmp) / "runs"), "(pool)"),
                          flush=True)


if __name__ == "__main__":
    main()
