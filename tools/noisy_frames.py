"""Noisy frames: faces found when the detector also looks at a noisy frame smoothed
(``extractor/noise.py``, ``seen_through_noise``; the faces of both looks merged) against the
frame as it is alone.

Each annotated photo of ../shared/data and ../shared/turned changed as grainy pictures are: sharp
with sensor noise, a little soft with film grain (an old print, a scan), through JPEG, dim with
noise; recall (IoU >= 0.3), detections on no listed face of the sets whose every face is listed,
and landmark NME (median; dlib_faces' reference: dlib's own points on the original photo), by
``extractor eval``'s measure. Then each condition's noise as ``noise_level`` reads it, and its
cost.

    python tools/noisy_frames.py           # about 1 minute
    python tools/noisy_frames.py --tried   # other ways tried, on the grainy rows: 5 minutes
    python tools/noisy_frames.py --threshold 5
    python tools/noisy_frames.py --video   # also the sample video made grainy: 3 minutes
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import SHARED, annotated_photos, loaded_stages, match, video_frames
from motion_blur import blurred

import extractor.stages as stages
from benchmarks.robustness import SAME, changed_copy, grain, jpeg, soft, soft_faded_grainy
from extractor.evaluate import evaluate
import extractor.noise as noise
from extractor.noise import noise_level, seen_through_noise

AS_IT_IS = lambda image: None  # noqa: E731  (no second look)


def _shrunk(image: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(image, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)


def old_print(image: np.ndarray, contrast: float = 0.6, grain_sigma: float = 12, blur: float = 1.2) -> np.ndarray:
    """An old photo's scan: grey, soft, faded, toned sepia, grainy, six scratches."""
    grey = soft(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), blur) * contrast + 50
    grey += np.random.default_rng(0).normal(0, grain_sigma, grey.shape)
    toned = grey[..., None] * np.array([0.72, 0.88, 1.0], np.float32) + np.array([0, 8, 20])  # BGR: sepia
    out = np.clip(toned, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(6):
        x = int(rng.uniform(0, out.shape[1]))
        cv2.line(out, (x, 0), (x + int(rng.uniform(-20, 20)), out.shape[0]), (235, 235, 235), 1)
    return out


CONDITIONS = {
    "the photos": lambda image: image,
    "halved (small faces)": lambda image: _shrunk(image, 2),
    "sharp, noise 8 (each channel)": lambda image: grain(image, 8, mono=False),
    "sharp, noise 20 (each channel)": lambda image: grain(image, 20, mono=False),
    "soft (sigma 1.2), grain 12": lambda image: grain(soft(image), 12),
    "soft, noise 12 (each channel)": lambda image: grain(soft(image), 12, mono=False),
    "soft (1.0), noise 10, JPEG 75": lambda image: jpeg(grain(soft(image, 1.0), 10, mono=False), 75),
    "soft, faded (x0.6 + 50), grain 12": soft_faded_grainy,
    "old print": old_print,
    "old print, grain 22, blur 1.5": lambda image: old_print(image, 0.6, 22, 1.5),
    "dim (x0.3), noise 6": lambda image: grain(np.clip(image * 0.3, 0, 255), 6, mono=False),
    "halved, noise 8 (each channel)": lambda image: grain(_shrunk(image, 2), 8, mono=False),
    "a third (faces of 8-20 px), noise 10": lambda image: grain(_shrunk(image, 3), 10, mono=False),
    "motion blur (9 px across), noise 8 (each channel)": lambda image: grain(blurred(image, 9, 0), 8, mono=False),
    "dark (x0.4), soft, grain 8": lambda image: grain(np.clip(soft(image) * 0.4, 0, 255), 8),
}


def measured(change, detect, align, config) -> tuple[int, int, int, list[float]]:
    """Faces found, faces listed, other detections and each human-annotated (or dlib-referenced)
    face's NME over both sets, each image changed."""
    def moved(image):  # the change, and the matrix from the photo's pixels to its (halved: 0.5)
        changed = change(image)
        return changed, SAME * (changed.shape[1] / image.shape[1])

    found = listed = other = 0
    errors: list[float] = []
    for root in (SHARED / "data", SHARED / "turned"):
        with tempfile.TemporaryDirectory() as tmp:
            changed_copy(moved, Path(tmp), proxy=True, root=root)
            report = evaluate(Path(tmp), config, detect, align)
        summary = report.summary()
        found, listed = found + summary["matched"], listed + summary["ground_truth"]
        other += summary["false_positives"]
        errors += list(report.nme_values())
    return found, listed, other, errors


def smoothed_or_itself(image: np.ndarray) -> np.ndarray:
    """The detector's second look at ``image`` where it reads noisy, else ``image``."""
    view = seen_through_noise(image)
    return image if view is None else view


def alone(change, detect, align, config) -> tuple[int, int, int, list[float]]:
    """``measured`` with the detector given the smoothed frame in place of a noisy one (one look)."""
    run = detect.run
    detect.run = lambda images, *args, **kwargs: run(list(map(smoothed_or_itself, images)), *args, **kwargs)
    stages.seen_through_noise = AS_IT_IS
    try:
        return measured(change, detect, align, config)
    finally:
        detect.run, stages.seen_through_noise = run, seen_through_noise


def where_noisy(look):
    """``look`` on a frame that reads noisy (the second look), else None (none)."""
    return lambda image: look(image) if noise_level(image) >= noise.NOISY else None


def growing(per_level: float, least: float, most: float):
    """A Gaussian whose sigma grows with the noise read: ``per_level`` a grey level, from ``least``
    to ``most``."""
    def sigma(image):
        return min(most, max(least, per_level * noise_level(image)))

    return where_noisy(lambda image: cv2.GaussianBlur(image, (0, 0), sigma(image)))


TRIED = {
    "and sigma 0.1 a level (1-2)": growing(0.1, 1.0, 2.0),
    "and sigma 0.2 a level (1.5-3)": growing(0.2, 1.5, 3.0),
    "and sigma 1": where_noisy(lambda image: cv2.GaussianBlur(image, (0, 0), 1.0)),
    "and sigma 1.5": where_noisy(lambda image: cv2.GaussianBlur(image, (0, 0), 1.5)),
    "and median 5": where_noisy(lambda image: cv2.medianBlur(image, 5)),
    "and bilateral": where_noisy(lambda image: cv2.bilateralFilter(image, 7, 40, 5)),
    "the aligner on it too": "align",
    "the smoothed look alone": "alone",
}


def aligning_smoothed(run):
    """The aligner's ``run`` reading a noisy frame smoothed, as the detector's second look does."""
    return lambda images, faces, *args, **kwargs: run(list(map(smoothed_or_itself, images)), faces, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tried", action="store_true", help="the other ways tried, on the grainy rows")
    parser.add_argument("--video", action="store_true", help="also the sample video's frames made grainy")
    parser.add_argument("--threshold", type=float, default=noise.NOISY, help="grey levels of noise from which "
                        "a frame is looked at smoothed too")
    args = parser.parse_args()
    noise.NOISY = args.threshold
    detect, align = loaded_stages()
    config = detect.config
    variants = {"as it is": AS_IT_IS, "and smoothed where noisy (now)": seen_through_noise,
                **(TRIED if args.tried else {})}
    conditions = {name: change for name, change in CONDITIONS.items()
                  if not args.tried or "grain" in name or "print" in name or "noise" in name}
    print("| frames | noise read (median of the photos) | "
          + " | ".join(f"{name}: found, other, NME median / mean" for name in variants) + " |")
    print("| --- | --- |" + " --- |" * len(variants))
    photos = list(annotated_photos())
    aligning = align.run
    for name, change in conditions.items():
        levels = [noise_level(change(image)) for image in photos]
        cells = []
        for look in variants.values():
            stages.seen_through_noise = seen_through_noise if look in ("align", "alone") else look
            align.run = aligning_smoothed(aligning) if look == "align" else aligning
            measure = alone if look == "alone" else measured
            found, listed, other, errors = measure(change, detect, align, config)
            cells.append(f"{found}/{listed}, {other}, {np.median(errors):.4f} / {np.mean(errors):.4f}")
        align.run = aligning
        print(f"| {name} | {np.median(levels):.1f} ({sum(level >= noise.NOISY for level in levels)} of {len(levels)} "
              f"smoothed) | " + " | ".join(cells) + " |", flush=True)
    stages.seen_through_noise = seen_through_noise
    if args.video:
        video_rows(detect, {name: look for name, look in variants.items() if look not in ("align", "alone")})
    frame = cv2.resize(photos[0], (1920, 1080))
    for label, image in (("1080p frame", frame), ("4000 x 3000 frame", cv2.resize(frame, (4000, 3000)))):
        print(f"{label}: noise read in {_cpu_ms(lambda image=image: noise_level(image), 100):.2f} CPU ms, "
              f"smoothed in {_cpu_ms(lambda image=image: cv2.GaussianBlur(image, (0, 0), 1.0), 20):.1f}")
    grainy = grain(soft(frame), 12)
    for label, image in (("clean", frame), ("grainy (two looks)", grainy)):
        print(f"detect stage, {label} 1080p frame: {_cpu_ms(lambda image=image: detect.run([image]), 10):.1f} CPU ms")


VIDEO_CHANGES = {"soft (sigma 1), grain 10": lambda image: grain(soft(image, 1.0), 10),
                 "grain 8": lambda image: grain(image, 8), "old print": old_print}


def video_rows(detect, variants: dict) -> None:
    """The sample video's every third frame made grainy: of the faces found on the clean frames,
    those found again (IoU >= 0.3), and other detections, for each way of looking."""
    frames = [image for _, image in video_frames()][::3]
    stages.seen_through_noise = AS_IT_IS
    clean = [[face.box_ltrb for face in detect.run([image])[0]] for image in frames]
    print(f"\nthe sample video, every third frame ({sum(map(len, clean))} faces found on the clean frames): found "
          "again, other detections\n| frames | " + " | ".join(variants) + " |\n| --- |" + " --- |" * len(variants))
    for name, change in VIDEO_CHANGES.items():
        cells = []
        for look in variants.values():
            stages.seen_through_noise = look
            found = [detect.run([change(image)])[0] for image in frames]
            kept = sum(len(match(faces, boxes)) for faces, boxes in zip(found, clean))
            cells.append(f"{kept}, {sum(map(len, found)) - kept}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    stages.seen_through_noise = seen_through_noise


def _cpu_ms(work, times: int) -> float:
    work()
    start = time.process_time()
    for _ in range(times):
        work()
    return (time.process_time() - start) * 1000 / times

if __name__ == "__main__":
    sys.exit(main())
