"""Thumbnails a face fills: found with the look at ``face_view_side`` (CenterFace), and at what cost.

A face set's small crops (a face cut square at 1.2 times its box, as expression and recognition
sets store them: 48 px in FER-2013, about 25 px in scikit-image's LFW subset) are too small for
the network at their own size and, enlarged to ``min_side`` (480) with nothing around the face,
larger than the faces it was trained on. Measured on the same loaded model, the look off and at
96, 128 (the default) and 160 px (each for frames under half as long):
- faces found (IoU >= 0.3 with the listed box) in such crops of every listed face of
  ../shared/data and ../shared/turned of 20 px or more, brought to 24-128 px, and dlib68's NME
  over the eye corners for those with 68 listed points;
- faces found in tiles of the same sizes that hold no face: squares cut from ../shared/data's
  exhaustively boxed photos away from every listed face, some brought down from larger cuts;
- with ``--lfw PATH`` (scikit-image's ``skimage/data/lfw_subset.npy``: 100 LFW faces and 100
  non-faces of 25 x 25 grey pixels), the same at 20-128 px.
Record: docs/accuracy.md ("Thumbnails a face fills"). Run: .venv/bin/python tools/tiny_frames.py (3 min).
"""
import argparse
import functools
import json

import cv2
import numpy as np
from common import SHARED, loaded_stages

from benchmarks.bench import face_crop
from extractor.evaluate import find_annotation_files
from extractor.geometry import iou, transform_points
from extractor.images import read_image
from extractor.stages import run_on_frames

SIDES = (24, 32, 48, 64, 96, 128)
LOOKS = (0, 96, 128, 160)


def face_thumbnails(side: int):
    """(thumbnail, box there, 68 points there or None) of each listed face of 20 px or more."""
    for root in (SHARED / "data", SHARED / "turned"):
        for path in find_annotation_files(root):
            for entry in json.loads(path.read_text())["images"]:
                faces = [face for face in entry.get("faces") or [] if face.get("box")]
                image = read_image(path.parent / entry["file"])[0] if faces else None
                for face in faces:
                    left, top, right, bottom = face["box"]
                    if max(right - left, bottom - top) * 1.2 < 24:
                        continue
                    thumb, matrix = face_crop(image, face["box"], side, around=1.2)
                    box = transform_points(np.reshape(face["box"], (2, 2)), matrix).ravel()
                    points = face.get("landmarks68")
                    yield thumb, box, None if points is None else transform_points(np.array(points), matrix)


@functools.lru_cache(maxsize=1)
def exhaustive_photos() -> list:
    """(image, its listed boxes) of every photo of ../shared/data's exhaustively boxed sets."""
    photos = []
    for path in find_annotation_files(SHARED / "data"):
        listing = json.loads(path.read_text())
        if listing.get("exhaustive"):
            for entry in listing["images"]:
                boxes = [np.array(face["box"], float) for face in entry.get("faces") or []]
                photos.append((read_image(path.parent / entry["file"])[0], boxes))
    return photos


def faceless_tiles(side: int, count: int = 120):
    """``count`` square tiles of ``side`` px holding no face: cut from the exhaustively boxed photos
    of ../shared/data at 1-4 times the side and brought to it, each clear of every listed face (its
    box grown by half)."""
    rng = np.random.default_rng(side)
    photos = exhaustive_photos()
    tiles, tries = [], 0
    while len(tiles) < count and tries < 100 * count:
        tries += 1
        image, boxes = photos[rng.integers(len(photos))]
        cut = int(side * rng.uniform(1, 4))
        height, width = image.shape[:2]
        if cut >= min(height, width):
            continue
        x, y = int(rng.integers(width - cut)), int(rng.integers(height - cut))
        grown = [box + np.array([-1, -1, 1, 1]) * 0.5 * (box[2] - box[0]) for box in boxes]
        if any(iou([x, y, x + cut, y + cut], box) > 0 for box in grown):
            continue
        tiles.append(cv2.resize(image[y:y + cut, x:x + cut], (side, side), interpolation=cv2.INTER_AREA))
    return tiles


def nme(points, truth) -> float:
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]))


def measure(detect, align, thumbs, tiles) -> dict:
    images = [thumb for thumb, _, _ in thumbs]
    found = run_on_frames(detect, images).faces
    hits, errors = 0, []
    for (thumb, box, truth), faces in zip(thumbs, found):
        best = max(faces.values(), key=lambda face: iou(face.box_ltrb, box), default=None)
        if best is None or iou(best.box_ltrb, box) < 0.3:
            continue
        hits += 1
        if truth is not None:
            errors.append(nme(align.run([thumb], [best])[0].landmarks, truth))
    false = sum(len(faces) for faces in run_on_frames(detect, tiles).faces)
    return {"found": hits, "false": false, "nme": np.median(errors) if errors else float("nan"),
            "with_points": len(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", help="scikit-image's lfw_subset.npy: also measure its faces and non-faces")
    args = parser.parse_args()
    detect, align = loaded_stages()
    plugin = detect.plugin
    default = plugin.face_view_side
    for side in SIDES:
        thumbs, tiles = list(face_thumbnails(side)), faceless_tiles(side)
        row = [f"{side:3d} px: {len(thumbs)} face thumbnails, {len(tiles)} faceless tiles"]
        for look in LOOKS:
            plugin.face_view_side = look
            got = measure(detect, align, thumbs, tiles)
            row.append(f"look {look or 'off'}: found {got['found']}, NME median {got['nme']:.4f} "
                       f"({got['with_points']}), on faceless tiles {got['false']}")
        print("\n    ".join(row), flush=True)
    if args.lfw:
        subset = [cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR) for image in np.load(args.lfw)]
        for side in (20, 25, 32, 48, 64, 96, 128):
            images = [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if side < 25 else cv2.INTER_CUBIC)
                      for image in subset]
            row = [f"LFW subset at {side:3d} px:"]
            for look in LOOKS:
                plugin.face_view_side = look
                found = run_on_frames(detect, images).faces
                row.append(f"look {look or 'off'} {sum(bool(f) for f in found[:100])} of 100 faces, "
                           f"{sum(len(f) for f in found[100:])} on the 100 non-faces")
            print("  ".join(row), flush=True)
    plugin.face_view_side = default


if __name__ == "__main__":
    main()
