"""Before/after contact sheet of the sample video's profiles: dlib68's frontal passes alone (left
of each pair) and with the turned passes (right), for faces the turned passes changed: six of the
profile close-up (frames 21-50 of short_hamilton_clip.mp4, numbered as the output files are) and
six of the rest of the video (the audience), evenly chosen. Each tile is the frame cut square
around the face's box, points in green. Also prints how many of the video's faces the turned passes changed.

Run: .venv/bin/python tools/turned_sheet.py [--out docs/turned_before_after.jpg]  (about a minute).
"""
import argparse
import copy
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractor.media import ExtractMedia  # noqa: E402
from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig  # noqa: E402

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "short_hamilton_clip.mp4"
TILE = 240
CONTEXT = 2.2  # tile side / the box side
PAIRS_PER_ROW = 3
CLOSE_UP = range(21, 51)  # the profile close-up's frames (the output files' 1-based numbers)
EACH = 6  # pairs drawn from the close-up, and from the rest


def tile(image: np.ndarray, box: tuple[float, float, float, float], points: np.ndarray, label: str,
         size: int = TILE, context: float = CONTEXT) -> np.ndarray:
    """The frame cut square around ``box`` (``context`` times its side), points and a label drawn on it."""
    left, top, width, height = box
    side = context * max(width, height)
    scale = size / side
    matrix = np.array([[scale, 0, -(left + width / 2 - side / 2) * scale],
                       [0, scale, -(top + height / 2 - side / 2) * scale]])
    out = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_CONSTANT)
    for x, y in points @ matrix[:, :2].T + matrix[:, 2]:
        cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1, cv2.LINE_AA)
    cv2.putText(out, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/turned_before_after.jpg")
    args = parser.parse_args()
    config = StageConfig()
    detect, align = DetectStage(config), AlignStage(config)
    detect.load()
    align.load()
    turned = align.plugin.turned_faces
    close_up, rest, faces_seen = [], [], 0
    for media in InputSource(VIDEO).video_frames():
        if not isinstance(media, ExtractMedia):
            continue
        index = int(Path(media.filename).stem.rsplit("_", 1)[-1])
        found = detect.run([media.image])[0]
        for face in found:
            before, after = copy.deepcopy(face), copy.deepcopy(face)
            align.plugin.turned_faces = None
            align.run([media.image], [before])
            align.plugin.turned_faces = turned
            align.run([media.image], [after])
            faces_seen += 1
            if np.array_equal(before.landmarks, after.landmarks):
                continue
            box = (face.left, face.top, face.width, face.height)
            pair = np.hstack([tile(media.image, box, before.landmarks, f"frame {index}: frontal passes"),
                              tile(media.image, box, after.landmarks, "turned passes")])
            (close_up if index in CLOSE_UP else rest).append(pair)
    print(f"{len(close_up) + len(rest)} of the video's {faces_seen} faces changed by the turned passes "
          f"({len(close_up)} in frames {CLOSE_UP.start}-{CLOSE_UP.stop - 1})")
    pairs = [group[int(k)] for group in (close_up, rest) if group
             for k in np.linspace(0, len(group) - 1, min(EACH, len(group)))]
    rows = [pairs[start:start + PAIRS_PER_ROW] for start in range(0, len(pairs), PAIRS_PER_ROW)]
    blank = np.zeros_like(pairs[0])
    sheet = np.vstack([np.hstack(row + [blank] * (PAIRS_PER_ROW - len(row))) for row in rows])
    cv2.imwrite(args.out, sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
