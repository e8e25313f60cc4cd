"""Faces in frames stored with non-square pixels (anamorphic video): aligned as well as square ones?

A DVD's 16:9 picture is stored 720 px wide and shown 853 (sample aspect ratio 32:27: faces
stored 0.84 as wide as they are), HDV's 1920 stored 1440 (0.75), NTSC DV's 4:3 picture 720 for
640 (1.125). faceswap reads the stored frames; so does extractor. Each annotated photo of
../shared/data and ../shared/turned is squeezed (or stretched) sideways by each factor, its faces
detected and aligned by the default stages as stored and as a run looks at such a video (the
stages' ``pixel_aspect``: widened as players show it), and the points judged against the ground
truth in the picture as shown (NME over the eye-corner distance). Record: docs/accuracy.md.
Run: .venv/bin/python tools/anamorphic_frames.py (about three minutes).
"""
import cv2
import numpy as np
from common import loaded_stages, photo_errors

from extractor.stages import StageConfig


STORED_WIDTHS = {"square pixels": 1.0, "DVD 16:9 (32:27)": 27 / 32, "HDV 1440 (4:3)": 0.75, "NTSC DV 4:3 (8:9)": 9 / 8}


def stored(factor: float):
    """The photo stored ``factor`` as wide, and its scale: ``common.photo_errors``'s ``picture``."""
    def picture(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        frame = cv2.resize(image, (round(width * factor), height),
                           interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        return frame, np.array([frame.shape[1] / width, 1.0])
    return picture


def main() -> None:
    as_stored = loaded_stages()
    print("| frames stored | looked at | faces found | NME mean / median |\n| --- | --- | --- | --- |")
    for name, factor in STORED_WIDTHS.items():
        looks = {"as stored": as_stored}
        if factor != 1:
            looks["as shown (pixel_aspect)"] = loaded_stages(StageConfig(pixel_aspect=1 / factor))
        for look, (detect, align) in looks.items():
            found, total, errors = photo_errors(detect, align, stored(factor))
            print(f"| {name}, {factor:.3f} as wide | {look} | {found} of {total} | "
                  f"{np.mean(errors):.4f} / {np.median(errors):.4f} |")


if __name__ == "__main__":
    main()
