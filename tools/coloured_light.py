"""Faces lit by coloured light: recall and landmark NME on the annotated photos of ../shared/data
and ../shared/turned, each photo relit, a dim face's crop given to CLAHE alone (``stretched``
replaced) and as the aligner gives it (its levels stretched over all 256 first where they span
fewer than 32). Two kinds of light: a camera's picture under a coloured lamp (the photo's linear
light multiplied by the lamp's colour: every channel keeps some of the picture), and pictures
of one colour channel (a tinted or duotone picture, the channels multiplied after the gamma:
the luminance keeps a tenth of a blue picture's levels, 0.114 B).

    python tools/coloured_light.py     # about a minute
"""
import numpy as np

from common import loaded_stages, photo_errors

import extractor.plugins.base as base

LAMPS = {  # BGR gains on linear light
    "white (the photos)": (1, 1, 1),
    "blue LED": (1.0, 0.12, 0.02),
    "blue LED, dim": (0.3, 0.036, 0.006),
    "red LED": (0.02, 0.08, 1.0),
    "purple LED": (0.8, 0.05, 0.6),
}
TINTS = {  # BGR gains on the stored picture
    "red-tinted (0.15, 0.25, 1)": (0.15, 0.25, 1.0),
    "blue-tinted (1, 0.35, 0.15)": (1.0, 0.35, 0.15),
    "red channel only": (0.0, 0.0, 1.0),
    "blue channel only": (1.0, 0.0, 0.0),
    "blue channel only, half": (0.5, 0.0, 0.0),
}


def under_lamp(gains):
    def picture(image):
        linear = (image.astype(np.float32) / 255) ** 2.2 * np.array(gains, np.float32)
        return np.clip(linear ** (1 / 2.2) * 255, 0, 255).round().astype(np.uint8), np.ones(2)
    return picture


def tinted(gains):
    def picture(image):
        return np.clip(image.astype(np.float32) * np.array(gains, np.float32), 0, 255).astype(np.uint8), np.ones(2)
    return picture


def main() -> None:
    detect, align = loaded_stages()
    reading = base.stretched
    print("| light | faces found | NME median / mean, CLAHE alone | stretched first (now) |")
    print("| --- | --- | --- | --- |")
    rows = [(name, under_lamp(gains)) for name, gains in LAMPS.items()]
    rows += [(name, tinted(gains)) for name, gains in TINTS.items()]
    for name, picture in rows:
        figures = []
        for chooser in (lambda grey: grey, reading):
            base.stretched = chooser
            found, total, errors = photo_errors(detect, align, picture)
            figures.append(f"{np.median(errors):.4f} / {np.mean(errors):.4f}")
        base.stretched = reading
        print(f"| {name} | {found}/{total} | {figures[0]} | {figures[1]} |", flush=True)


if __name__ == "__main__":
    main()
