"""Tried, not kept: a very dark or very flat face's aligner crop stretched over all 256 grey
levels before CLAHE (CLAHE's clip limit bounds how far it spreads a narrow histogram). Measured
on the annotated photos of ../shared/data and ../shared/turned made darker, flatter or noisier
(ground truth: their points, dlib's own on the original for dlib_faces), and on the sample
video's dim faces (no ground truth: how steady the points stay from frame to frame, and the
alignment quality score, for the faces whose points the stretch moves).

    python tools/dim_faces.py     # about 4 minutes
"""
import copy

import numpy as np

from common import loaded_stages, photo_errors, video_frames

import extractor.plugins.base as base
from extractor.evaluate import iou

CLAHE = base._clahe
NARROW = 48  # levels a face spans under which it is stretched (24 and 32 on the video: the same verdict)


def stretched_first(channel: np.ndarray) -> np.ndarray:
    """CLAHE of ``channel``, its face's levels first stretched over all 256 where they span
    fewer than ``NARROW``."""
    low, _, high = base._face_levels(channel)
    if high - low < NARROW:
        levels = np.clip((np.arange(256, dtype=np.float32) - low) * (255.0 / max(high - low, 1)), 0, 255)
        channel = levels.astype(np.uint8)[channel]
    return CLAHE(channel)


def conditions():
    rng = np.random.default_rng(0)
    return {
        "the photos": lambda im: im,
        "dark midtones (gamma 2.2)": lambda im: (255 * (im / 255.0) ** 2.2).astype(np.uint8),
        "flat (x0.3 + 90)": lambda im: (im * 0.3 + 90).astype(np.uint8),
        "very flat (x0.12 + 100)": lambda im: (im * 0.12 + 100).astype(np.uint8),
        "dark (x0.25)": lambda im: (im * 0.25).astype(np.uint8),
        "darker (x0.15)": lambda im: (im * 0.15).astype(np.uint8),
        "very dark (x0.08)": lambda im: (im * 0.08).astype(np.uint8),
        "night (x0.15, noise sigma 6)": lambda im: np.clip(im * 0.15 + rng.normal(0, 6, im.shape), 0, 255).astype(
            np.uint8),
        "night (x0.1, noise sigma 4)": lambda im: np.clip(im * 0.1 + rng.normal(0, 4, im.shape), 0, 255).astype(
            np.uint8),
    }


def video_steadiness(detect, align) -> None:
    """For the sample video's faces whose points the stretch moves: their alignment quality, and
    the non-rigid part of their points' motion from the frame before (over the face's size)."""
    frames = [image for _, image in video_frames()]
    found = [detect.run([image])[0] for image in frames]
    faces = {}
    for name, clahe in (("CLAHE alone", CLAHE), ("stretched first", stretched_first)):
        base._clahe = clahe
        faces[name] = [align.run([image] * len(boxes), copy.deepcopy(boxes)) if boxes else []
                       for image, boxes in zip(frames, found)]
    base._clahe = CLAHE
    moved = {(t, i) for t, (before, after) in enumerate(zip(*faces.values()))
             for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a.landmarks, b.landmarks)}
    print(f"\nthe sample video: {sum(map(len, found))} faces, the points of {len(moved)} moved by the stretch")
    print("| aligner | their quality, mean / median | their non-rigid motion from the frame before, mean / median |")
    print("| --- | --- | --- |")
    for name, frames_faces in faces.items():
        quality = [frames_faces[t][i].quality for t, i in moved]
        motion = []
        for t in range(1, len(frames_faces)):
            for i, face in enumerate(frames_faces[t]):
                overlaps = [(iou(face.box_ltrb, before.box_ltrb), j) for j, before in enumerate(frames_faces[t - 1])]
                best, j = max(overlaps, default=(0, -1))
                if best < 0.5 or ((t, i) not in moved and (t - 1, j) not in moved):
                    continue
                step = np.asarray(face.landmarks, float) - np.asarray(frames_faces[t - 1][j].landmarks, float)
                motion.append(np.linalg.norm(step - step.mean(0), axis=1).mean() / max(face.width, face.height))
        print(f"| {name} | {np.mean(quality):.3f} / {np.median(quality):.3f} | {np.mean(motion):.4f} / "
              f"{np.median(motion):.4f} ({len(motion)} pairs of frames) |")


def main() -> None:
    detect, align = loaded_stages()
    print("| photos | faces found | NME median / mean, CLAHE alone | stretched first |\n| --- | --- | --- | --- |")
    for name in conditions():
        figures = []
        for clahe in (CLAHE, stretched_first):
            base._clahe = clahe
            change = conditions()[name]  # the same noise both times
            found, total, errors = photo_errors(detect, align, lambda im, change=change: (change(im), np.ones(2)))
            figures.append(f"{np.median(errors):.4f} / {np.mean(errors):.4f}")
        base._clahe = CLAHE
        print(f"| {name} | {found}/{total} | {figures[0]} | {figures[1]} |", flush=True)
    video_steadiness(detect, align)


if __name__ == "__main__":
    main()
