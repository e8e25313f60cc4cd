"""The faces `--min-quality` leaves out of the sample video: 24 of those scored under the threshold,
evenly chosen, each cut square around its box with its points and score; prints how many there are.

Run: .venv/bin/python tools/min_quality_sheet.py [--min-quality 0.2] [--out docs/min_quality_removed.jpg]
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turned_sheet import VIDEO, tile  # noqa: E402

from extractor.media import ExtractMedia  # noqa: E402
from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig  # noqa: E402

SHOWN = 24
PER_ROW = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-quality", type=float, default=0.2)
    parser.add_argument("--out", default="docs/min_quality_removed.jpg")
    args = parser.parse_args()
    config = StageConfig()
    detect, align = DetectStage(config), AlignStage(config)
    detect.load()
    align.load()
    low, total = [], 0
    for media in InputSource(VIDEO).video_frames():
        if not isinstance(media, ExtractMedia):
            continue
        faces = detect.run([media.image])[0]
        align.run([media.image] * len(faces), faces)
        total += len(faces)
        for face in faces:
            if face.quality < args.min_quality:
                box = (face.left, face.top, face.width, face.height)
                low.append(tile(media.image, box, face.landmarks, f"{face.quality:.2f}", size=160, context=1.8))
    print(f"{len(low)} of the video's {total} faces under {args.min_quality}")
    chosen = [low[int(k)] for k in np.linspace(0, len(low) - 1, min(SHOWN, len(low)))]
    chosen += [np.zeros_like(chosen[0])] * (-len(chosen) % PER_ROW)
    sheet = np.vstack([np.hstack(chosen[start:start + PER_ROW]) for start in range(0, len(chosen), PER_ROW)])
    cv2.imwrite(args.out, sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
