"""Doubtful faces of a video confirmed by the frame before or after (extractor/neighbours.py): what
extractor keeps with and without it, then how the rule's score floor weighs. For the latter
CenterFace runs at 0.3 on every frame; a face scored from LOW up to the
threshold (0.5) counts as confirmed where a face scored 0.5 or more overlaps it (IoU >= 0.5) on
the frame before or the frame after. On the sample video (as it is, made grey, and re-encoded
once by x264 at CRF 28) and on the clips with known motion made from the photos whose every
face is boxed (benchmarks/tracking.py), as they are and darkened.

    python tools/neighbour_frames.py          # about 6 minutes on 2 cores; writes /tmp/neighbour_frames_*.jpg
"""
import tempfile
from pathlib import Path

import cv2
import numpy as np
from common import VIDEO, evenly, h264_file, tile, write_sheet

from benchmarks.tracking import build_clips
from extractor.alignments import read_records
from extractor.api import FaceExtractor
from extractor.engines.single import run_single_process
from extractor.geometry import iou
from extractor.output import OutputSettings
from extractor.run_settings import RunSettings
from extractor.sources import InputSource, SkippedInput

THRESHOLD, LOWS = 0.5, (0.3, 0.35, 0.4, 0.45)


def frames_of(video: Path) -> list[np.ndarray]:
    return [item.image for item in InputSource(video) if not isinstance(item, SkippedInput)]


def reencoded(frames: list[np.ndarray], folder: Path) -> list[np.ndarray]:
    """The frames through one more x264 encode (CRF 28, as a phone or a sharing site might)."""
    return frames_of(h264_file(frames, folder / "reencoded.mp4", 28))


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def confirmed(found: list[list], low: float) -> list[tuple[int, object]]:
    """(frame, face) of each face scored LOW-0.5 that a sure face of a neighbouring frame overlaps."""
    sure = [[face.box_ltrb for face in faces if face.score >= THRESHOLD] for faces in found]
    out = []
    for t, faces in enumerate(found):
        near = (sure[t - 1] if t else []) + (sure[t + 1] if t + 1 < len(found) else [])
        out += [(t, face) for face in faces if low <= face.score < THRESHOLD
                and any(iou(face.box_ltrb, box) >= 0.5 for box in near)]
    return out


def sample_video(extractor: FaceExtractor, folder: Path) -> None:
    colour = frames_of(VIDEO)
    looks = {"as it is": colour, "grey": [grey(image) for image in colour], "re-encoded": reencoded(colour, folder)}
    reference = None
    for name, frames in looks.items():
        found = [extractor.get(image) for image in frames]
        sure = [[face.box_ltrb for face in faces if face.score >= THRESHOLD] for faces in found]
        reference = reference or sure
        for low in LOWS:
            added = confirmed(found, low)
            doubtful = sum(low <= face.score < THRESHOLD for faces in found for face in faces)
            known = sum(any(iou(face.box_ltrb, box) >= 0.5 for box in reference[t]) for t, face in added)
            print(f"sample video, {name}, from {low}: {sum(map(len, sure))} faces of 0.5 or more, {doubtful} "
                  f"doubtful, {len(added)} confirmed ({known} of them found at 0.5 in the video as it is)")
        added = confirmed(found, 0.4)
        tiles = [tile(frames[t], (face.left, face.top, face.width, face.height), np.zeros((0, 2)),
                      f"{t + 1}: {face.score:.2f}", 96, 2.0) for t, face in evenly(added, 40)]
        if tiles:
            write_sheet(f"/tmp/neighbour_frames_{name.replace(' ', '_')}.jpg", tiles, 10)


def boxed_clips(extractor: FaceExtractor, folder: Path) -> None:
    clips = [clip for clip in build_clips(folder / "clips", 40) if clip[2] is not None]
    for name, scale in (("as they are", 1.0), ("darkened x0.3", 0.3)):
        counts = dict(truth=0, sure=0, sure_false=0, confirmed=0, confirmed_false=0)
        for path, _, boxes in clips:
            frames = [(image * scale).astype(np.uint8) for image in frames_of(path)]
            found = [extractor.get(image) for image in frames]
            truth = [[(x, y, x + w, y + h) for x, y, w, h in frame] for frame in boxes]
            counts["truth"] += sum(map(len, truth))
            for t, faces in enumerate(found):
                for face in faces:
                    if face.score >= THRESHOLD:
                        real = any(iou(face.box_ltrb, box) >= 0.3 for box in truth[t])
                        counts["sure" if real else "sure_false"] += 1
            for t, face in confirmed(found, 0.4):
                real = any(iou(face.box_ltrb, box) >= 0.3 for box in truth[t])
                counts["confirmed" if real else "confirmed_false"] += 1
        print(f"boxed clips, {name}, from 0.4: {counts}")


def runs(folder: Path) -> None:
    """What extractor itself keeps (one process, default flags, no face PNGs), confirm_from 0.4
    (the default) against 0 (never), on the sample video and the boxed clips."""
    clips = [(path, boxes) for path, _, boxes in build_clips(folder / "clips", 40) if boxes is not None]
    for confirm_from in (0.4, 0.0):
        faces, doubtful, false = {}, 0, 0
        for video, boxes in [(VIDEO, None)] + clips:
            out = folder / f"run-{confirm_from}-{video.stem}"
            settings = RunSettings(video, OutputSettings(out, out / "alignments.jsonl", save_faces=False))
            settings.stages.plugin_options = {"detect.centerface": {"confirm_from": confirm_from}}
            run_single_process(settings)
            records = list(read_records(out / "alignments.jsonl"))
            faces[video == VIDEO] = faces.get(video == VIDEO, 0) + sum(len(r["faces"]) for r in records)
            doubtful += sum(face["score"] < THRESHOLD for r in records for face in r["faces"])
            if boxes is not None:
                for record in records:
                    truth = [(x, y, x + w, y + h) for x, y, w, h in boxes[record["index"]]]
                    false += sum(not any(iou((x, y, x + w, y + h), box) >= 0.3 for box in truth)
                                 for x, y, w, h in (face["box"] for face in record["faces"]))
        print(f"extractor run, confirm_from {confirm_from}: sample video {faces[True]} faces, boxed clips "
              f"{faces[False]} faces ({false} overlapping no box); {doubtful} faces under 0.5 kept in all")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        runs(Path(tmp))
        config.write("[plugins.detect.centerface]\nthreshold = 0.3\n")
        config.flush()
        extractor = FaceExtractor(photos=False, config=config.name)
        sample_video(extractor, Path(tmp))
        boxed_clips(extractor, Path(tmp))


if __name__ == "__main__":
    main()
