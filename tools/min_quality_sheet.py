"""The faces `--min-quality` leaves out of the sample video: 24 of those scored under the threshold,
evenly chosen, each cut square around its box with its points and score; prints how many there are.

Run: .venv/bin/python tools/min_quality_sheet.py [--min-quality 0.2] [--out docs/min_quality_removed.jpg]
"""
import argparse

from common import evenly, loaded_stages, tile, video_frames, write_sheet

SHOWN = 24
PER_ROW = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-quality", type=float, default=0.2)
    parser.add_argument("--out", default="docs/min_quality_removed.jpg")
    args = parser.parse_args()
    detect, align = loaded_stages()
    low, total = [], 0
    for _, image in video_frames():
        faces = detect.run([image])[0]
        align.run([image] * len(faces), faces)
        total += len(faces)
        low += [tile(image, (face.left, face.top, face.width, face.height), face.landmarks, f"{face.quality:.2f}",
                     size=160, context=1.8) for face in faces if face.quality < args.min_quality]
    print(f"{len(low)} of the video's {total} faces under {args.min_quality}")
    write_sheet(args.out, evenly(low, SHOWN), PER_ROW)


if __name__ == "__main__":
    main()
