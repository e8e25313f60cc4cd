"""Faces blurred by motion (a head turning fast, a panning camera at 1/30 s): recall and landmark
NME on the annotated photos of ../shared/data and ../shared/turned, each blurred along a line as
long as a share of its faces' median width (the ground truth: their points, dlib's own on the
original for dlib_faces).

    python tools/motion_blur.py                   # about a minute
    python tools/motion_blur.py --sharpen 0.7,1   # the aligner's crop unsharp-masked (amount, sigma): tried
"""
import sys

import cv2
import numpy as np

from common import boxed_photos, loaded_stages, match, nme

import extractor.plugins.base as base


def blurred(image: np.ndarray, length: int, angle: float) -> np.ndarray:
    """``image`` smeared along a line of ``length`` px at ``angle`` degrees (0: across)."""
    if length < 2:
        return image
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    if angle:
        centre = ((length - 1) / 2, (length - 1) / 2)
        kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle, 1.0), (length, length))
    return cv2.filter2D(image, -1, kernel / kernel.sum())


def sharpen_crops(amount: float, sigma: float) -> None:
    """Every aligner crop unsharp-masked after its normalisation (tried, not kept)."""
    normalize = base.Aligner.normalize

    def sharpened(self, crop):
        crop = normalize(self, crop)
        return cv2.addWeighted(crop, 1 + amount, cv2.GaussianBlur(crop, (0, 0), sigma), -amount, 0)

    base.Aligner.normalize = sharpened


def main() -> None:
    if "--sharpen" in sys.argv:
        sharpen_crops(*map(float, sys.argv[sys.argv.index("--sharpen") + 1].split(",")))
    detect, align = loaded_stages()
    photos = [(image, faces) for image, faces, _ in boxed_photos()]
    print("| blur (of the faces' width) | direction | faces found | NME median / mean | quality median |\n"
          "| --- | --- | --- | --- | --- |")
    for share in (0.0, 0.05, 0.1, 0.2, 0.3):
        for angle in ((0,) if share == 0 else (0, 90)):
            found = total = 0
            errors, quality = [], []
            for image, faces in photos:
                width = float(np.median([face["box"][2] - face["box"][0] for face in faces]))
                frame = blurred(image, int(round(share * width)), angle)
                detected = detect.run([frame])[0]
                aligned = align.run([frame] * len(detected), detected) if detected else []
                total += len(faces)
                for mine, truth in match(aligned, [face["box"] for face in faces]):
                    found += 1
                    quality.append(aligned[mine].quality)
                    if faces[truth].get("landmarks68"):
                        errors.append(nme(aligned[mine].landmarks, faces[truth]["landmarks68"]))
            direction = "-" if share == 0 else ("across" if angle == 0 else "up and down")
            print(f"| {share:.0%} | {direction} | {found}/{total} | {np.median(errors):.4f} / {np.mean(errors):.4f} | "
                  f"{np.median(quality):.2f} |", flush=True)


if __name__ == "__main__":
    main()
