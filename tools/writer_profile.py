"""The writer's CPU a face (crop, thumbnail, PNG with its headers, at 512 px) on the sample
video's first 120 frames, detected, aligned and masked once, with cProfile's top entries.

    python tools/writer_profile.py [--top 18]
"""
import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
from common import VIDEO  # noqa: E402

from extractor.media import ExtractMedia  # noqa: E402
from extractor.output import FramePreparer, OutputSettings  # noqa: E402
from extractor.output_folder import FaceNames  # noqa: E402
from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, MaskStage, StageConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in the pool's coordinator
    config = StageConfig(maskers=("components",))
    frames = list(InputSource(VIDEO))[:120]
    stages = [DetectStage(config), AlignStage(config), MaskStage(config)]
    for stage in stages:
        stage.load()
    found = []
    for start in range(0, len(frames), 4):
        batch = [frame.image for frame in frames[start:start + 4]]
        for image, faces in zip(batch, stages[0].run(batch)):
            for stage in stages[1:]:
                faces = stage.run([image] * len(faces), faces)
            found.append(faces)
    count = sum(map(len, found))
    with tempfile.TemporaryDirectory() as folder:
        preparer = FramePreparer(OutputSettings(Path(folder), Path(folder) / "a.jsonl", size=512), FaceNames(None))
        profile, start = cProfile.Profile(), time.process_time()
        profile.enable()
        for frame, faces in zip(frames, found):
            preparer.prepare(ExtractMedia(frame.filename, frame.image, faces))
        profile.disable()
    print(f"writer: {1000 * (time.process_time() - start) / count:.2f} CPU ms a face, {count} faces")
    if args.top:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
