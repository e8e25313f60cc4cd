"""Before/after contact sheet of the sample video's profiles: dlib68's frontal passes alone (left
of each pair) and with the turned passes (right), for faces the turned passes changed: six of the
profile close-up (frames 21-50 of short_hamilton_clip.mp4, numbered as the output files are) and
six of the rest of the video (the audience), evenly chosen. Each tile is the frame cut square
around the face's box, points in green. Also prints how many of the video's faces the turned
passes changed.

Run: .venv/bin/python tools/turned_sheet.py [--out docs/turned_before_after.jpg]  (about a minute).
"""
import argparse
import copy

import numpy as np
from common import evenly, loaded_stages, tile, video_frames, write_sheet

TILE = 240
CONTEXT = 2.2  # tile side / the box side
PAIRS_PER_ROW = 3
CLOSE_UP = range(21, 51)  # the profile close-up's frames (the output files' 1-based numbers)
EACH = 6  # pairs drawn from the close-up, and from the rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/turned_before_after.jpg")
    args = parser.parse_args()
    detect, align = loaded_stages()
    turned = align.plugin.turned_faces
    close_up, rest, faces_seen = [], [], 0
    for index, image in video_frames():
        for face in detect.run([image])[0]:
            before, after = copy.deepcopy(face), copy.deepcopy(face)
            align.plugin.turned_faces = None
            align.run([image], [before])
            align.plugin.turned_faces = turned
            align.run([image], [after])
            faces_seen += 1
            if np.array_equal(before.landmarks, after.landmarks):
                continue
            box = (face.left, face.top, face.width, face.height)
            pair = np.hstack([tile(image, box, before.landmarks, f"frame {index}: frontal passes", TILE, CONTEXT),
                              tile(image, box, after.landmarks, "turned passes", TILE, CONTEXT)])
            (close_up if index in CLOSE_UP else rest).append(pair)
    print(f"{len(close_up) + len(rest)} of the video's {faces_seen} faces changed by the turned passes "
          f"({len(close_up)} in frames {CLOSE_UP.start}-{CLOSE_UP.stop - 1})")
    write_sheet(args.out, evenly(close_up, EACH) + evenly(rest, EACH), PAIRS_PER_ROW)


if __name__ == "__main__":
    main()
