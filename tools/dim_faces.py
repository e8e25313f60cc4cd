"""Very dark and very flat faces: the aligner's crop stretched over all 256 grey levels before
CLAHE (``base.stretched``, CLAHE's clip limit bounding how far it spreads a narrow histogram),
against CLAHE alone and no normalisation, on the annotated photos of ../shared/data and
../shared/turned made darker, flatter or noisier, some then through H.264 as a dim video is
(ground truth: their points, dlib's own on the original for dlib_faces). Then the sample
video's dim faces, which have no ground truth: how steady their points stay from frame to
frame and their alignment quality, measures that favour points left near the model's mean
shape (no normalisation scores steadier than CLAHE there, which the ground truth contradicts).

    python tools/dim_faces.py              # about 6 minutes
    python tools/dim_faces.py --detector   # the detector on dim frames, brightened or not: 1 minute
"""
import sys

import copy

import cv2
import numpy as np

from common import faces_found_by_look, loaded_stages, photo_errors, video_frames
from interlaced_frames import h264

import extractor.plugins.base as base
from extractor.evaluate import iou

STRETCHED = base.stretched
VARIANTS = {"none": ("none", lambda grey: grey), "CLAHE alone": ("auto", lambda grey: grey),
            "stretched first (now)": ("auto", STRETCHED)}


def darkened(gain: float, sigma: float = 0.0, crf: int | None = None):
    def change(image):
        rng = np.random.default_rng(0)  # the same noise for every variant
        dark = np.clip(image * gain + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
        return h264([dark], crf)[0] if crf else dark
    return change


CONDITIONS = {
    "the photos": lambda im: im,
    "dark midtones (gamma 2.2)": lambda im: (255 * (im / 255.0) ** 2.2).astype(np.uint8),
    "flat (x0.3 + 90)": lambda im: (im * 0.3 + 90).astype(np.uint8),
    "very flat (x0.12 + 100)": lambda im: (im * 0.12 + 100).astype(np.uint8),
    "dark (x0.25)": darkened(0.25),
    "darker (x0.15)": darkened(0.15),
    "very dark (x0.08)": darkened(0.08),
    "x0.15, sensor noise sigma 6": darkened(0.15, 6),
    "x0.1, noise 4": darkened(0.1, 4),
    "x0.25, noise 2, H.264 CRF 23": darkened(0.25, 2, 23),
    "x0.25, noise 2, CRF 28": darkened(0.25, 2, 28),
    "x0.15, noise 3, CRF 23": darkened(0.15, 3, 23),
    "x0.15, noise 3, CRF 28": darkened(0.15, 3, 28),
    "x0.1, noise 2, CRF 28": darkened(0.1, 2, 28),
}


def use(align, variant: str) -> None:
    normalization, stretch = VARIANTS[variant]
    align.plugin.normalization, base.stretched = normalization, stretch


def video_steadiness(detect, align) -> None:
    """For the sample video's faces whose points the variants place differently: their
    alignment quality, and the non-rigid part of their points' motion from the frame before
    (over the face's size)."""
    frames = [image for _, image in video_frames()]
    found = [detect.run([image])[0] for image in frames]
    faces = {}
    for variant in VARIANTS:
        use(align, variant)
        faces[variant] = [align.run([image] * len(boxes), copy.deepcopy(boxes)) if boxes else []
                          for image, boxes in zip(frames, found)]
    use(align, "stretched first (now)")
    moved = {(t, i) for t, per_variant in enumerate(zip(*faces.values()))
             for i, versions in enumerate(zip(*per_variant))
             if any(not np.array_equal(versions[0].landmarks, other.landmarks) for other in versions[1:])}
    print(f"\nthe sample video: {sum(map(len, found))} faces, {len(moved)} placed differently by the variants")
    print("| aligner | their quality, mean / median | their non-rigid motion from the frame before, mean / median |")
    print("| --- | --- | --- |")
    for variant, frames_faces in faces.items():
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
        print(f"| {variant} | {np.mean(quality):.3f} / {np.median(quality):.3f} | {np.mean(motion):.4f} / "
              f"{np.median(motion):.4f} ({len(motion)} pairs of frames) |")


def brightened(image: np.ndarray, how: str) -> np.ndarray:
    """A dim frame (median grey under 40) made brighter for the detector: its levels stretched
    (1st to 99.5th percentile over all 256), or a gamma that puts its median at 35 % grey."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    median = float(np.median(grey))
    if median >= 40:
        return image
    if how == "stretched":
        low, high = np.percentile(grey, [1, 99.5])
        return np.clip((image.astype(np.float32) - low) * (255.0 / max(high - low, 1)), 0, 255).astype(np.uint8)
    return (255 * (image / 255.0) ** (np.log(0.35) / np.log(max(median, 1) / 255.0))).astype(np.uint8)


def detector_on_dim_frames(detect) -> None:
    """The dim rows, each frame given to the detector as it is, stretched or brightened by a gamma."""
    faces_found_by_look(detect, {name: change for name, change in CONDITIONS.items()
                                 if name.startswith(("dark", "darker", "very dark", "x0."))},
                        {"as they are": lambda frame: frame, "stretched": lambda frame: brightened(frame, "stretched"),
                         "gamma": lambda frame: brightened(frame, "gamma")})


def main() -> None:
    detect, align = loaded_stages()
    if "--detector" in sys.argv:
        detector_on_dim_frames(detect)
        return
    print("| photos | faces found | " + " | ".join(f"NME median / mean, {v}" for v in VARIANTS) + " |")
    print("| --- | --- |" + " --- |" * len(VARIANTS))
    for name, change in CONDITIONS.items():
        figures = []
        for variant in VARIANTS:
            use(align, variant)
            found, total, errors = photo_errors(detect, align, lambda im, change=change: (change(im), np.ones(2)))
            figures.append(f"{np.median(errors):.4f} / {np.mean(errors):.4f}")
        print(f"| {name} | {found}/{total} | " + " | ".join(figures) + " |", flush=True)
    use(align, "stretched first (now)")
    video_steadiness(detect, align)


if __name__ == "__main__":
    main()
