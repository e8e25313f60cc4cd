"""--re-feed measured: landmark NME and jitter on clips of known motion, and the aligner's CPU.

The clips are `make tracking`'s steadiness clips (each annotated photo moved by a slow pan, zoom and
turn, with noise and JPEG on every frame, the ground truth moved with it), made from
../shared/data and from ../shared/turned; every frame detected, then aligned with each re-feed
count. NME and jitter as `make tracking` reports them (over the outer-eye-corner distance).

    python tools/re_feed.py [--counts 0,2,4,8] [--frames 40]
"""
import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED

from benchmarks.tracking import build_clips, steadiness
from extractor.sources import InputSource
from extractor.stages import AlignStage, DetectStage, StageConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="0,2,4,8", help="re-feed counts to compare")
    parser.add_argument("--frames", type=int, default=40, help="frames a clip")
    args = parser.parse_args()
    detect = DetectStage(StageConfig())
    detect.load()
    print("| clips | re-feed | faces x frames | NME mean / median | jitter mean / median | align CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (("../shared/data", SHARED / "data"), ("../shared/turned", SHARED / "turned")):
            clips = []
            for path, truth, _ in build_clips(Path(tmp) / data.name, args.frames, data):
                frames = [media.image for media in InputSource(path).video_frames()]
                clips.append((frames, [detect.run([frame])[0] for frame in frames], truth))
            for count in (int(c) for c in args.counts.split(",")):
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
                seconds = time.process_time() - start
                print(f"| {name} | {count} | {len(errors)} | {np.mean(errors):.4f} / {np.median(errors):.4f} | "
                      f"{np.mean(jitters):.4f} / {np.median(jitters):.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
