"""``make robustness``: recall and landmark error on the annotated photos under hard conditions.

The held-out photos users bring are darker, flatter, blurrier, smaller or more compressed than
../shared/data. This builds copies of every annotated set with one change each (darkened,
flattened, shadowed, overexposed, grey, noisy, soft and grainy, blurred, JPEG at quality 8, halved, pasted small into a
3000 px canvas, enlarged, tilted 30 and 60 degrees), with the ground truth moved to match, and runs ``extractor eval``'s
measure on each, for each normalisation asked for (``--normalization none,auto``).

dlib_faces' 68 points are dlib's own output on the original photos, not a person's; they are
counted as a reference too (36 faces instead of the 8 human-annotated ones; ``--human-only`` for
the 8): on the copies they measure how far a condition moves the landmarks from what the
original photo gives.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench import DATA  # noqa: E402
from extractor.evaluate import evaluate, find_annotation_files  # noqa: E402
from extractor.geometry import transform_points  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig  # noqa: E402

# A change: image -> (changed image, 2x3 affine matrix taking old coordinates to new ones).
Change = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
SAME = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _resized(image: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation), SAME * factor


def _scaled(image: np.ndarray, factor: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor + offset, 0, 255).astype(np.uint8)


def _shadow(image: np.ndarray) -> np.ndarray:
    """Light falling from the left: full brightness on the left edge, 15 % on the right."""
    ramp = np.linspace(1.0, 0.15, image.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(image * ramp, 0, 255).astype(np.uint8)


def exposed(image: np.ndarray, stops: float) -> np.ndarray:
    """``image`` ``stops`` brighter, as a camera overexposes: its light (sRGB read as a gamma of
    2.2) times 2^stops, clipped at white."""
    linear = (image / 255.0) ** 2.2 * 2.0 ** stops
    return (255 * np.clip(linear, 0, 1) ** (1 / 2.2) + 0.5).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def grain(image: np.ndarray, sigma: float, mono: bool = True) -> np.ndarray:
    """``image`` with Gaussian noise: the same on every channel (film grain, a sensor's luminance
    noise) or each channel's own (``mono=False``)."""
    shape = image.shape[:2] + ((1,) if mono else (3,))
    return np.clip(image + np.random.default_rng(0).normal(0, sigma, shape), 0, 255).astype(np.uint8)


def soft(image: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def soft_faded_grainy(image: np.ndarray) -> np.ndarray:
    """An old print's scan: a little soft, faded, with film grain of 12 grey levels."""
    return grain(np.clip(soft(image) * 0.6 + 50, 0, 255), 12)


def jpeg(image: np.ndarray, quality: int = 8) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _in_canvas(image: np.ndarray, side: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """The photo pasted in the middle of a grey 3000 x 2250 frame: its faces become small."""
    height, width = image.shape[:2]
    canvas = np.full((max(height, side * 3 // 4), max(width, side), 3), 128, np.uint8)
    top, left = (canvas.shape[0] - height) // 2, (canvas.shape[1] - width) // 2
    canvas[top:top + height, left:left + width] = image
    return canvas, SAME + [[0, 0, left], [0, 0, top]]


def _tilted(image: np.ndarray, degrees: float = 30) -> tuple[np.ndarray, np.ndarray]:
    """The whole photo turned by ``degrees`` (heads tilted), on a canvas that holds all of it."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos)))
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), matrix


def face_turned_in_place(image: np.ndarray, box, degrees: float) -> np.ndarray:
    """The photo with the face of ``box`` alone turned ``degrees`` (counter-clockwise) about its
    centre, in a soft-edged disc: someone lying down among people standing
    (``tools/lying_faces.py``)."""
    left, top, right, bottom = box
    centre, radius = ((left + right) / 2, (top + bottom) / 2), int(0.9 * (right - left))
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, degrees, 1.0), image.shape[1::-1],
                            borderMode=cv2.BORDER_REFLECT)
    disc = np.zeros(image.shape[:2], np.uint8)
    cv2.circle(disc, tuple(int(c) for c in centre), radius, 255, -1)
    disc = cv2.GaussianBlur(disc, (0, 0), radius / 10)[..., None] / 255.0
    return (turned * disc + image * (1 - disc)).astype(np.uint8)


CHANGES: dict[str, Change] = {
    "original": lambda image: (image, SAME),
    "dark (x0.25)": lambda image: (_scaled(image, 0.25), SAME),
    "dark midtones (gamma 2.2)": lambda image: ((255 * (image / 255.0) ** 2.2).astype(np.uint8), SAME),
    "flat (x0.3 + 90)": lambda image: (_scaled(image, 0.3, 90), SAME),
    "shadowed (left to right)": lambda image: (_shadow(image), SAME),
    "overexposed (+2 stops)": lambda image: (exposed(image, 2), SAME),
    "grey": lambda image: (_grey(image), SAME),
    "noisy (sigma 20)": lambda image: (grain(image, 20, mono=False), SAME),
    "soft and grainy (blur 1.2, grain 12)": lambda image: (grain(soft(image), 12), SAME),
    "blurred (sigma 2)": lambda image: (cv2.GaussianBlur(image, (0, 0), 2.0), SAME),
    "JPEG quality 8": lambda image: (jpeg(image), SAME),
    "halved": lambda image: _resized(image, 0.5),
    "in a 3000 px frame": _in_canvas,
    "enlarged x2.5": lambda image: _resized(image, 2.5),
    "tilted 30 degrees": _tilted,
    "tilted 60 degrees": lambda image: _tilted(image, 60),
}


def changed_copy(change: Change, folder: Path, proxy: bool, root: Path = DATA) -> None:
    """Every annotated set of ``root``, each image changed, its boxes and points moved to match."""
    for listing in find_annotation_files(root):
        annotations = json.loads(listing.read_text())
        if proxy and listing.parent.name == "dlib_faces":
            annotations["landmarks_kind"] = "human (here: dlib's points on the original photo as reference)"
        kept = []
        for number, entry in enumerate(annotations["images"]):
            if not entry.get("faces"):
                continue  # the no-face and broken edge cases are make faults' business
            image = cv2.imread(str(listing.parent / entry["file"]), cv2.IMREAD_COLOR)
            if image is None:
                continue
            changed, matrix = change(image)
            name = f"{number}.png"
            (folder / listing.parent.name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / listing.parent.name / name), changed)
            for face in entry["faces"]:
                left, top, right, bottom = face["box"]
                corners = transform_points([[left, top], [right, top], [left, bottom], [right, bottom]], matrix)
                face["box"] = [*corners.min(0).tolist(), *corners.max(0).tolist()]  # upright box around it
                if face.get("landmarks68"):
                    face["landmarks68"] = transform_points(face["landmarks68"], matrix).tolist()
            kept.append({**entry, "file": name})
        if kept:
            (folder / listing.parent.name / "annotations.json").write_text(json.dumps({**annotations,
                                                                                       "images": kept}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default=StageConfig.detector)
    parser.add_argument("--aligner", default=StageConfig.aligner)
    parser.add_argument("--normalization", default="none,auto", help="comma-separated, one column each")
    parser.add_argument("--human-only", action="store_true",
                        help="NME over the 8 human-annotated faces only (no dlib_faces reference)")
    args = parser.parse_args()
    normalizations = args.normalization.split(",")
    config = StageConfig(detector=args.detector, aligner=args.aligner, close_look=True)  # looked at as a photo run does
    detect, align = DetectStage(config), AlignStage(config)
    detect.load()
    align.load()

    def evaluate_each_normalization(folder: Path) -> list:
        reports = []
        for normalization in normalizations:
            align.plugin.normalization = normalization  # one loaded model, its option switched
            reports.append(evaluate(folder, config, detect, align))
        return reports

    faces = "8 human-annotated faces" if args.human_only else "36 faces, dlib_faces' reference: dlib on the original"
    print(f"detector {args.detector}, aligner {args.aligner}; NME median ({faces})")
    print("| condition | recall | " + " | ".join(f"NME median, {n}" for n in normalizations) + " |")
    print("| --- | --- |" + " --- |" * len(normalizations))
    for name, change in CHANGES.items():
        with tempfile.TemporaryDirectory() as tmp:
            changed_copy(change, Path(tmp), proxy=not args.human_only)
            reports = evaluate_each_normalization(Path(tmp))
        summary = reports[0].summary()
        false = f", {summary['false_positives']} false pos." if summary["false_positives"] else ""
        cells = [_median(report) for report in reports]
        print(f"| {name} | {summary['recall']:.3f} ({summary['matched']}/{summary['ground_truth']}{false}) | "
              + " | ".join(cells) + " |", flush=True)


def _median(report) -> str:
    value = report.summary()["nme_median_all"]
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
