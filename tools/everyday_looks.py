"""Everyday looks of pictures people extract from: faces found and landmark error.

Each annotated photo of ../shared/data and ../shared/turned changed as pictures found on the web,
from phones and from old footage are: a lens's dark corners (vignetting), haze, an animated GIF's
palette, a phone's over-sharpening before JPEG, a standard-definition picture scaled up, a
stock watermark over the faces, red and blue swapped, a night-vision camera's green picture,
colour fringes, a beauty filter's smoothed skin, a wide-angle lens's barrel distortion (points
moved through the same mapping); recall (IoU >= 0.3), other detections on the sets whose every
face is listed, landmark NME (median / mean; dlib_faces' reference: dlib's own points on the
original photo), by ``extractor eval``'s measure, with the default stages. Then the sample video
re-encoded by H.264 at rising CRF, whole runs (``extractor run``, one process, no face PNGs):
of the faces found on the video as it is, those found again (IoU >= 0.3) and how far their
points moved (mean over the 68, over the face's box size).

    python tools/everyday_looks.py            # about 3 minutes
    python tools/everyday_looks.py --photos   # the photos only: 1 minute
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
from PIL import Image

from common import VIDEO, h264_file, loaded_stages, match, photo_errors
from noisy_frames import measured

from benchmarks.robustness import grain, jpeg, soft
from extractor.alignments import read_records
from extractor.evaluate import nme_over_box


def vignetted(image: np.ndarray, corner: float) -> np.ndarray:
    """Light falling off towards the corners, to ``corner`` of it there (a wide lens wide open)."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2)) / np.sqrt(2)
    return np.clip(image * (1 - (1 - corner) * radius ** 2)[..., None], 0, 255).astype(np.uint8)


def hazy(image: np.ndarray, veil: float) -> np.ndarray:
    """A bright veil over everything (haze, fog, a window's reflection): ``veil`` of each pixel."""
    return np.clip(image * (1 - veil) + veil * np.array([205, 200, 195]), 0, 255).astype(np.uint8)


def gif(image: np.ndarray, colours: int, dither: bool = True) -> np.ndarray:
    """The image in a palette of ``colours``, as an animated GIF stores it."""
    palette = Image.fromarray(image[..., ::-1]).quantize(
        colors=colours, method=Image.Quantize.MEDIANCUT,
        dither=Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE)
    return np.asarray(palette.convert("RGB"))[..., ::-1].copy()


def over_sharpened(image: np.ndarray, amount: float = 2.5) -> np.ndarray:
    """A phone's strong unsharp mask, then JPEG at quality 60."""
    return jpeg(np.clip(image.astype(np.float32) * (1 + amount) - soft(image, 2) * amount, 0, 255).astype(np.uint8), 60)


def scaled_up(image: np.ndarray, factor: int) -> np.ndarray:
    """A picture ``factor`` times smaller (standard definition), JPEG'd, scaled back up bicubic."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    return cv2.resize(jpeg(small, 70), (width, height), interpolation=cv2.INTER_CUBIC)


def watermarked(image: np.ndarray) -> np.ndarray:
    """Five lines of white text at 45 % over the picture, faces and all."""
    height, width = image.shape[:2]
    over = image.copy()
    for line in range(5):
        cv2.putText(over, "SAMPLE (c) STOCK", (int(width * 0.02), int(height * (0.15 + 0.18 * line))),
                    cv2.FONT_HERSHEY_SIMPLEX, width / 500, (255, 255, 255), max(2, width // 200), cv2.LINE_AA)
    return cv2.addWeighted(over, 0.45, image, 0.55, 0)


def night_vision(image: np.ndarray) -> np.ndarray:
    """An infrared camera's picture: grey, soft, grainy, shown green."""
    grey = grain(soft(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None] * 0.8 + 30, 1.0)[..., None], 10)
    return np.clip(grey * np.array([0.3, 1.0, 0.35]), 0, 255).astype(np.uint8)


def fringed(image: np.ndarray, shift: int = 3) -> np.ndarray:
    """Blue and red moved ``shift`` px apart sideways (a cheap lens's colour fringes)."""
    out = image.copy()
    out[..., 0], out[..., 2] = np.roll(image[..., 0], shift, 1), np.roll(image[..., 2], -shift, 1)
    return out


def beauty_filtered(image: np.ndarray) -> np.ndarray:
    """A selfie app's smoothed skin: two edge-keeping (bilateral) filters."""
    return cv2.bilateralFilter(cv2.bilateralFilter(image, 9, 60, 9), 9, 60, 9)


CHANGES = {
    "vignetting, corners at x0.25": lambda image: vignetted(image, 0.25),
    "vignetting, corners at x0.1": lambda image: vignetted(image, 0.1),
    "haze (a veil of 55 %)": lambda image: hazy(image, 0.55),
    "thick haze (75 %)": lambda image: hazy(image, 0.75),
    "GIF, 64 colours, dithered": lambda image: gif(image, 64),
    "GIF, 16 colours, dithered": lambda image: gif(image, 16),
    "GIF, 32 colours, flat": lambda image: gif(image, 32, dither=False),
    "over-sharpened, JPEG 60": over_sharpened,
    "a third the size, scaled up": lambda image: scaled_up(image, 3),
    "a quarter the size, scaled up": lambda image: scaled_up(image, 4),
    "watermark over the faces": watermarked,
    "red and blue swapped": lambda image: image[..., ::-1].copy(),
    "night vision (green, grainy)": night_vision,
    "colour fringes (3 px)": fringed,
    "beauty filter": beauty_filtered,
}


def barrel_maps(height: int, width: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the distorted picture, where it comes from: the centre's distance grown by
    1 + ``strength`` r^2 (r over the half diagonal), as a wide-angle lens bends straight lines."""
    centre_x, centre_y, half = (width - 1) / 2, (height - 1) / 2, np.hypot(width, height) / 2
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = (x - centre_x) / half, (y - centre_y) / half
    grow = 1 + strength * (dx * dx + dy * dy)
    return (centre_x + dx * grow * half).astype(np.float32), (centre_y + dy * grow * half).astype(np.float32)


def barrel_points(points, height: int, width: int, strength: float) -> np.ndarray:
    """Where points of the photo land in the distorted picture (``barrel_maps`` inverted)."""
    centre, half = np.array([(width - 1) / 2, (height - 1) / 2]), np.hypot(width, height) / 2
    source = (np.asarray(points, float) - centre) / half
    moved = source.copy()
    for _ in range(50):
        moved = source / (1 + strength * (moved ** 2).sum(1, keepdims=True))
    return moved * half + centre


def barrel_distorted(strength: float):
    """``photo_errors``' picture: the photo through ``barrel_maps``, and where its points land."""
    def picture(image: np.ndarray):
        height, width = image.shape[:2]
        frame = cv2.remap(image, *barrel_maps(height, width, strength), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
        return frame, lambda points: barrel_points(points, height, width, strength)
    return picture


def photo_rows() -> None:
    detect, align = loaded_stages()
    print("| photos | found | other detections | NME median / mean |\n| --- | --- | --- | --- |")
    for name, change in {"as they are": lambda image: image, **CHANGES}.items():
        found, listed, other, errors = measured(change, detect, align, detect.config)
        print(f"| {name} | {found}/{listed} | {other} | {np.median(errors):.4f} / {np.mean(errors):.4f} |", flush=True)
    for strength in (0.15, 0.3, 0.5):
        found, listed, errors = photo_errors(detect, align, barrel_distorted(strength))
        print(f"| barrel distortion {strength} (corners {100 * strength:.0f} % further out) | {found}/{listed} | | "
              f"{np.median(errors):.4f} / {np.mean(errors):.4f} |", flush=True)


def reencoded(video: Path, target: Path, crf: int, shrink: int = 1) -> None:
    """``video`` through libx264 at ``crf`` (``shrink`` times smaller), as a re-upload is."""
    with av.open(str(video)) as source:
        rate = source.streams.video[0].average_rate
        frames = (frame.to_ndarray(format="bgr24") for frame in source.decode(video=0))
        if shrink > 1:
            frames = (cv2.resize(image, (image.shape[1] // shrink // 2 * 2, image.shape[0] // shrink // 2 * 2),
                                 interpolation=cv2.INTER_AREA) for image in frames)
        h264_file(frames, target, crf, rate)


def faces_per_frame(video: Path, folder: Path) -> list[list[tuple[list[float], np.ndarray]]]:
    """(box as left, top, right, bottom; points) of each face of each frame, as a whole run finds
    them (one process, no face PNGs)."""
    out = folder / f"{video.stem}_run"
    subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(video), "-o", str(out), "--no-faces",
                    "--engine", "single", "--no-progress"], check=True, capture_output=True)
    frames = []
    for record in sorted(read_records(out / "alignments.jsonl"), key=lambda record: record["index"]):
        frames.append([([face["box"][0], face["box"][1], face["box"][0] + face["box"][2],
                         face["box"][1] + face["box"][3]], np.asarray(face["landmarks"], float))
                       for face in record["faces"]])
    return frames


def video_rows() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clean = faces_per_frame(VIDEO, folder)
        print(f"\nthe sample video, whole runs ({sum(map(len, clean))} faces as it is)\n"
              "| re-encoded | faces found again | other faces | points moved, mean / median (over the box) |\n"
              "| --- | --- | --- | --- |")
        for crf, shrink in ((0, 1), (18, 1), (23, 1), (28, 1), (35, 1), (28, 2)):
            video = folder / f"crf{crf}_{shrink}.mp4"
            reencoded(VIDEO, video, crf, shrink)
            again = faces_per_frame(video, folder)
            kept, moved = 0, []
            for mine, theirs in zip(again, clean):
                boxes = [SimpleNamespace(box_ltrb=np.asarray(box) * shrink) for box, _ in mine]
                for i, j in match(boxes, [box for box, _ in theirs]):
                    kept += 1
                    moved.append(nme_over_box(mine[i][1] * shrink, theirs[j][1]))
            label = f"CRF {crf}" + (f", {shrink} times smaller (compared scaled back)" if shrink > 1 else "")
            print(f"| {label} | {kept} | {sum(map(len, again)) - kept} | {np.mean(moved):.4f} / "
                  f"{np.median(moved):.4f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", action="store_true", help="the photos only")
    args = parser.parse_args()
    photo_rows()
    if not args.photos:
        video_rows()


if __name__ == "__main__":
    main()
