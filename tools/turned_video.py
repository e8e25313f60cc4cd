"""A video filmed upside down or on its side with nothing saying so: faces found by `--rotate`.

The sample video's first 80 frames turned 0, 180 and 90 degrees (no display rotation), detected
on every frame and tracked (`--track`, a full detection every 10 frames), with `--rotate auto`
(the default) and `--rotate on`; prints the faces found. Record: docs/accuracy.md.
Run: .venv/bin/python tools/turned_video.py (a few minutes).
"""
from common import VIDEO

from extractor.geometry import rotate_image
from extractor.sources import InputSource
from extractor.stages import DetectStage, StageConfig

FRAMES = 80
MODES = {"auto": (), "on": (90, 270, 180)}


def main() -> None:
    frames = [media.image for media, _ in zip(InputSource(VIDEO), range(FRAMES))]
    loaded = DetectStage(StageConfig())
    loaded.load()
    print("| turned | " + " | ".join(f"`--rotate {mode}`: every frame, tracked" for mode in MODES) + " |")
    print("| --- |" + " --- |" * len(MODES))
    for angle in (0, 180, 90):
        turned = [rotate_image(frame, angle)[0] for frame in frames]
        cells = []
        for rotations in MODES.values():
            every, tracked = DetectStage(StageConfig(rotations=rotations)), DetectStage(
                StageConfig(rotations=rotations, track_every=10))
            every.plugin = tracked.plugin = loaded.plugin
            found_every = sum(len(every.run([frame])[0]) for frame in turned)
            found_tracked = sum(len(faces) for faces in tracked.run_isolated(turned, list(range(FRAMES)))[0])
            cells.append(f"{found_every}, {found_tracked}")
        print(f"| {angle} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
