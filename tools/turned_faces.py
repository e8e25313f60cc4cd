"""What was tried for turned faces with dlib's trees and the 3D face model (``plugins/align/turned.py``).

Prints, for every human-annotated face of ../shared/data (300-W style points: the hidden side on
the visible outline) and ../shared/turned (AFLW2000-3D: the hidden side where it projects), the
mean NME over the box by yaw bin for: the frontal passes alone; the trees started from the mean
head turned to the detector's five points; that followed by 1-3 passes of (model fit -> trees
from the model's projection), with two shape-prior weights; and the default passes applied from
different yaws. Record: docs/accuracy.md. Run: .venv/bin/python tools/turned_faces.py (a minute).
"""
import copy

import numpy as np
from common import annotated_faces, loaded_stages

from extractor.evaluate import nme_over_box
from extractor.plugins.align.turned import TurnedFaces
from extractor.stages import StageConfig

BINS = ((0, 30), (30, 60), (60, 91))
EVERY_FACE = (-1.0, 0.0)  # turn_from, turn_full: every face gets the turned passes


def table_row(label: str, rows: list[tuple[str, float, float]]) -> str:
    cells = []
    for chosen_set in ("data", "turned", None):
        for low, high in BINS:
            values = [nme for name, yaw, nme in rows
                      if (chosen_set is None or name == chosen_set) and low <= yaw < high]
            if chosen_set == "data" and low == 60:
                continue  # ../shared/data has no face turned 60 degrees or more
            cells.append(f"{100 * np.mean(values):.2f} %" if values else "-")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    config = StageConfig()
    detect, align = loaded_stages(config)
    plugin = align.plugin
    model = plugin.turned_faces.model
    variants = {
        "frontal passes alone": None,
        "turned start, every face": TurnedFaces(model, config.detector, 0, 0.1, *EVERY_FACE),
        "+ 1 fit pass, every face": TurnedFaces(model, config.detector, 1, 0.1, *EVERY_FACE),
        "+ 2 fit passes, every face": TurnedFaces(model, config.detector, 2, 0.1, *EVERY_FACE),
        "+ 3 fit passes, every face": TurnedFaces(model, config.detector, 3, 0.1, *EVERY_FACE),
        "+ 2 fit passes, weaker prior (0.01), every face": TurnedFaces(model, config.detector, 2, 0.01, *EVERY_FACE),
        "+ 2 fit passes, blended from 20 to 40 degrees": TurnedFaces(model, config.detector, 2, 0.1, 20, 40),
        "+ 2 fit passes, blended from 30 to 50 degrees": TurnedFaces(model, config.detector, 2, 0.1, 30, 50),
        "+ 2 fit passes, blended from 50 to 65 degrees (default)": TurnedFaces(model, config.detector),
    }
    rows = {label: [] for label in variants}
    plugin.turned_faces = None  # the frontal passes; each variant is applied to a copy of their result
    for set_name, yaw, image, detected, truth in annotated_faces(detect):
        frontal = copy.deepcopy(detected)
        align.run([image], [frontal])
        for label, variant in variants.items():
            face = copy.deepcopy(frontal)
            if variant is not None:
                variant.apply([image], [face], plugin._trees_from)
            rows[label].append((set_name, yaw, nme_over_box(face.landmarks, truth)))
    print("NME over the box by yaw bin (faces: data 6 / 2, turned 8 / 2 / 2, both 14 / 4 / 2)")
    print("| variant | data 0-30 | data 30-60 | turned 0-30 | turned 30-60 | turned 60-90 "
          "| both 0-30 | both 30-60 | both 60-90 |")
    print("| --- |" + " --- |" * 8)
    for label in variants:
        print(table_row(label, rows[label]))


if __name__ == "__main__":
    main()
