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
import json

import cv2
import numpy as np
from common import SHARED, loaded_stages

from extractor.stages import StageConfig

from extractor.evaluate import find_annotation_files, match, nme
from extractor.images import read_image

STORED_WIDTHS = {"square pixels": 1.0, "DVD 16:9 (32:27)": 27 / 32, "HDV 1440 (4:3)": 0.75, "NTSC DV 4:3 (8:9)": 9 / 8}


def measure(factor: float, detect, align) -> tuple[int, int, list[float]]:
    """Faces found, faces annotated, and the NME of each found face, its photo stored ``factor`` as wide."""
    found, total, errors = 0, 0, []
    for path in find_annotation_files(SHARED / "data") + find_annotation_files(SHARED / "turned"):
        annotations = json.loads(path.read_text())
        for entry in annotations["images"]:
            faces = [face for face in entry.get("faces") or [] if face.get("landmarks68")]
            if not faces:
                continue
            image, _ = read_image(path.parent / entry["file"])
            height, width = image.shape[:2]
            stored = cv2.resize(image, (round(width * factor), height),
                                interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
            scale = np.array([stored.shape[1] / width, 1.0])
            detected = detect.run([stored])[0]
            aligned = align.run([stored] * len(detected), detected) if detected else []
            boxes = [[face["box"][0] * scale[0], face["box"][1], face["box"][2] * scale[0], face["box"][3]]
                     for face in faces]
            total += len(faces)
            for mine, truth in match(aligned, boxes):
                found += 1
                errors.append(nme(np.asarray(aligned[mine].landmarks) / scale,
                                  np.asarray(faces[truth]["landmarks68"], float)))
    return found, total, errors


def main() -> None:
    as_stored = loaded_stages()
    print("| frames stored | looked at | faces found | NME mean / median |\n| --- | --- | --- | --- |")
    for name, factor in STORED_WIDTHS.items():
        looks = {"as stored": as_stored}
        if factor != 1:
            looks["as shown (pixel_aspect)"] = loaded_stages(StageConfig(pixel_aspect=1 / factor))
        for look, (detect, align) in looks.items():
            found, total, errors = measure(factor, detect, align)
            print(f"| {name}, {factor:.3f} as wide | {look} | {found} of {total} | "
                  f"{np.mean(errors):.4f} / {np.median(errors):.4f} |")


if __name__ == "__main__":
    main()
