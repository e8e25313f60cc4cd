"""``make tracking``: video extraction with tracking against detection on every frame.

Every run is the pool with default flags, tracking on (``--track``) or off (the default), side
by side in one process, and every frame detected with its landmarks steadied (``--track
--track-every 1``). It prints:

- Faces, on the sample video and on clips built from the annotated photos of ../shared/data:
  the share of the every-frame faces the tracked run also has (IoU >= 0.5), the tracked faces
  every-frame detection does not have (split into those it finds within two frames, a face its
  detections flicker on, and the rest, counted as false), and how many frames a face entering
  the picture waits to be found.
- Speed: frames/s of each whole run (start-up included), alternating rounds, and the ratio per
  round; CPU ms a frame per stage (each worker's busy time).
- Steadiness: the photo clips move each annotated photo by a known small pan, zoom and rotation
  frame by frame, with per-frame noise and JPEG compression, the ground truth moved with it.
  Landmark NME (over the outer-eye-corner distance) and jitter (frame-to-frame motion of the
  points minus the true motion, over the same distance), tracking and smoothing on and off.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from extractor.alignments import read_records  # noqa: E402
from extractor.engines.pool import run_pool  # noqa: E402
from extractor.evaluate import find_annotation_files  # noqa: E402
from extractor.output import OutputSettings  # noqa: E402
from extractor.run_settings import EngineOptions, RunSettings  # noqa: E402
from extractor.tracking import box_iou, greedy_pairs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EXTRACTOR_TEST_DATA", REPO.parent / "shared" / "data"))
VIDEO = DATA / "video" / "short_hamilton_clip.mp4"
TRACK_EVERY = 10
CLIP_FRAMES = 60
CLIP_FPS = 30.0


# --- runs -----------------------------------------------------------------------------------

def extract(video: Path, out: Path, track_every: int, smooth: bool = True) -> tuple[dict, object]:
    """The pool with default flags on ``video``; the faces by frame index and the summary."""
    out.mkdir(parents=True, exist_ok=True)
    settings = RunSettings(video, OutputSettings(out, out / "alignments.jsonl", overwrite=True),
                           track_every=track_every, smooth=smooth, show_progress=False)
    summary = run_pool(settings, EngineOptions())
    return {int(record["index"]): record["faces"] for record in read_records(out / "alignments.jsonl")}, summary


def _boxes(faces: list[dict]) -> np.ndarray:
    return np.array([face["box"] for face in faces], float).reshape(-1, 4)


def _matched(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """For each box of ``a``, whether a box of ``b`` overlaps it by ``threshold`` (greedy, one to one)."""
    found = np.zeros(len(a), bool)
    if len(a) and len(b):
        found[[i for i, _ in greedy_pairs(box_iou(a, b), threshold)]] = True
    return found


def compare_faces(every: dict, tracked: dict, window: int = 2) -> dict:
    """Tracked faces against every-frame detection (see the module's docstring)."""
    total = kept = extra = flicker = 0
    waits = []
    for index in sorted(every):
        truth, mine = _boxes(every[index]), _boxes(tracked.get(index, []))
        total += len(truth)
        kept += int(_matched(truth, mine).sum())
        unmatched = mine[~_matched(mine, truth)]
        extra += len(unmatched)
        for box in unmatched:
            near = [_boxes(every.get(other, [])) for other in range(index - window, index + window + 1)]
            flicker += any(len(b) and box_iou(box[None], b).max() >= 0.5 for b in near)
        before = _boxes(every.get(index - 1, []))
        for box in truth:  # a face entering the picture (nothing there in the frame before)
            if len(before) and box_iou(box[None], before).max() >= 0.3:
                continue
            wait = next((d for d in range(TRACK_EVERY + 1) if len(_boxes(tracked.get(index + d, [])))
                         and box_iou(box[None], _boxes(tracked.get(index + d, []))).max() >= 0.3), None)
            waits.append(TRACK_EVERY + 1 if wait is None else wait)
    waits = np.array(waits or [0])
    return {"every-frame faces": total, "kept": kept / max(total, 1), "extra": extra,
            "extra, every-frame finds within 2 frames": flicker, "false": extra - flicker,
            "entrances": len(waits), "entrance wait, frames (mean / max)": f"{waits.mean():.1f} / {waits.max()}",
            f"entrances found within {TRACK_EVERY} frames": float((waits <= TRACK_EVERY).mean())}


# --- clips with ground truth ------------------------------------------------------------------

def _motion(t: int, seed: int) -> np.ndarray:
    """The known transform of frame ``t``: a slow pan, zoom and rotation (2x3, about the centre)."""
    phase = seed * 0.7
    dx, dy = 12 * np.sin(2 * np.pi * t / 90 + phase), 6 * np.sin(2 * np.pi * t / 70 + phase)
    zoom = 1 + 0.04 * np.sin(2 * np.pi * t / 80 + phase)
    angle = 4 * np.sin(2 * np.pi * t / 100 + phase)
    return np.array([dx, dy, zoom, angle])


def moved_frame(image: np.ndarray, t: float, seed: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` (in frames at ``CLIP_FPS``) of a clip of ``image``: moved by ``_motion``, with
    sensor noise and JPEG compression; and the transform (2x3) that moved it."""
    height, width = image.shape[:2]
    dx, dy, zoom, angle = _motion(t, seed)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, zoom)
    matrix[:, 2] += (dx, dy)
    frame = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR), matrix


def _moved_box(box, matrix: np.ndarray) -> list[float]:
    """The bounding box (left, top, width, height) of a [left, top, right, bottom] box moved by ``matrix``."""
    left, top, right, bottom = box
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], float) @ matrix[:, :2].T
    corners += matrix[:, 2]
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    return [x0, y0, x1 - x0, y1 - y0]


def build_clips(folder: Path, frames: int = CLIP_FRAMES,
                data: Path = DATA) -> list[tuple[Path, list[list[np.ndarray]], list | None]]:
    """A clip per annotated photo of ``data`` with 68-point ground truth: ``frames`` frames moved by
    ``_motion``, each with sensor noise and JPEG compression; each frame's moved points, and for
    sets whose boxes list every face, each frame's moved boxes (else None)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for name, image, entry, faces, exhaustive in annotated_photos(data):
        height, width = image.shape[:2]
        path = folder / f"{name}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, (width, height))
        truth, boxes = [], []
        for t in range(frames):
            frame, matrix = moved_frame(image, t, len(clips), rng)
            writer.write(frame)
            truth.append(moved_points(faces, matrix))
            boxes.append([_moved_box(f["box"], matrix) for f in entry["faces"]])
        writer.release()
        clips.append((path, truth, boxes if exhaustive else None))
    return clips


def annotated_photos(data: Path = DATA):
    """(clip name, photo cut to even sides, its annotation entry, its faces with 68 points, whether
    its set boxes every face) for each photo of ``data`` with 68-point ground truth."""
    for ann in find_annotation_files(data):
        annotations = json.loads(ann.read_text())
        for entry in annotations["images"]:
            faces = [f for f in entry.get("faces") or [] if f.get("landmarks68")]
            if not faces:
                continue
            image = cv2.imread(str(ann.parent / entry["file"]))
            height, width = image.shape[:2]
            yield (f"{ann.parent.name}_{Path(entry['file']).stem}", image[:height - height % 2, :width - width % 2],
                   entry, faces, bool(annotations.get("exhaustive")))


def moved_points(faces: list[dict], matrix: np.ndarray) -> list[np.ndarray]:
    """Each face's 68 true points, moved by ``matrix`` as its frame was."""
    return [np.asarray(f["landmarks68"], float) @ matrix[:, :2].T + matrix[:, 2] for f in faces]


def not_in_truth(faces: dict, boxes: list) -> int:
    """Faces that overlap no ground-truth box (IoU >= 0.3) of their frame: false faces."""
    return sum(int((~_matched(_boxes(faces.get(t, [])), np.array(frame_boxes).reshape(-1, 4), 0.3)).sum())
               for t, frame_boxes in enumerate(boxes))


def steadiness(faces: dict, truth: list[list[np.ndarray]]) -> tuple[list[float], list[float]]:
    """NME per face and frame, and jitter per face and pair of consecutive frames, over the
    faces matched to a ground-truth face (nearest landmark centre within half its eye distance)."""
    errors, jitters, before = [], [], {}
    for t, points in enumerate(truth):
        found = [np.asarray(f["landmarks"], float) for f in faces.get(t, []) if f.get("landmarks")]
        now = {}
        for g, true in enumerate(points):
            eyes = np.linalg.norm(true[36] - true[45])
            if not found:
                continue
            distances = [np.linalg.norm(p.mean(0) - true.mean(0)) for p in found]
            if min(distances) > eyes / 2:
                continue
            mine = found[int(np.argmin(distances))]
            errors.append(float(np.linalg.norm(mine - true, axis=1).mean() / eyes))
            if g in before:
                moved = (mine - before[g][0]) - (true - before[g][1])
                jitters.append(float(np.linalg.norm(moved, axis=1).mean() / eyes))
            now[g] = (mine, true)
        before = now
    return errors, jitters


# --- report -----------------------------------------------------------------------------------

def stage_ms(summary) -> str:
    busy: dict[str, float] = {}
    for label, seconds in summary.worker_busy_seconds.items():
        stage = label.split("-")[0]
        busy[stage] = busy.get(stage, 0.0) + seconds
    return ", ".join(f"{stage} {1000 * seconds / max(summary.frames, 1):.1f}" for stage, seconds in busy.items())


def sample_video(video: Path, tmp: Path, rounds: int) -> None:
    """Faces and speed on a real video: tracked against every frame, alternating rounds."""
    print(f"## Sample video: {video.name}, pool, default flags (tracking every {TRACK_EVERY} frames)")
    print("| round | frames/s, every frame | frames/s, tracked | ratio | CPU ms a frame by stage, every frame | "
          "tracked |\n| --- | --- | --- | --- | --- | --- |")
    for round_ in range(rounds):
        every, every_summary = extract(video, tmp / "every", 0)
        tracked, tracked_summary = extract(video, tmp / "tracked", TRACK_EVERY)
        ratio = tracked_summary.frames_per_second / every_summary.frames_per_second
        print(f"| {round_ + 1} | {every_summary.frames_per_second:.2f} | {tracked_summary.frames_per_second:.2f} | "
              f"**{ratio:.2f}** | {stage_ms(every_summary)} | {stage_ms(tracked_summary)} |")
    print(f"\ntracks: {tracked_summary.tracks}; faces: every frame {every_summary.faces}, tracked "
          f"{tracked_summary.faces}")
    print(json.dumps(compare_faces(every, tracked), indent=1))
    each, each_summary = extract(video, tmp / "each", 1)
    same = sum([f["box"] for f in faces] == [f["box"] for f in each.get(index, [])] for index, faces in every.items())
    print(f"--track --track-every 1 (every frame detected, landmarks steadied): the same boxes on {same} of "
          f"{len(every)} frames, {each_summary.faces} faces, {each_summary.frames_per_second:.2f} frames/s (every "
          f"frame, untracked, in the last round: {every_summary.frames_per_second:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating speed rounds on the sample video")
    parser.add_argument("--video", type=Path, default=VIDEO)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="extractor-tracking-") as tmp:
        tmp = Path(tmp)
        if args.rounds:
            sample_video(args.video, tmp, args.rounds)
        print("\n## Clips from the annotated photos (known motion, noise, JPEG)")
        clips = build_clips(tmp / "clips")
        runs = {"every frame": (0, False), "every frame, smoothed (--track --track-every 1)": (1, True),
                "tracked, not smoothed": (TRACK_EVERY, False), "tracked and smoothed": (TRACK_EVERY, True)}
        measured = {name: ([], [], [0, 0]) for name in runs}  # NME, jitter, [faces, false] where boxes are exhaustive
        faces_every = {}
        totals = {"every-frame faces": 0, "kept": 0.0, "false": 0, "extra": 0}
        for path, truth, boxes in clips:
            for name, (track_every, smooth) in runs.items():
                faces, _ = extract(path, tmp / "clip-run", track_every, smooth)
                errors, jitters = steadiness(faces, truth)
                measured[name][0].extend(errors)
                measured[name][1].extend(jitters)
                if boxes is not None:
                    measured[name][2][0] += sum(len(found) for found in faces.values())
                    measured[name][2][1] += not_in_truth(faces, boxes)
                if name == "every frame":
                    faces_every = faces
                elif smooth and track_every == TRACK_EVERY:
                    found = compare_faces(faces_every, faces)
                    totals["every-frame faces"] += found["every-frame faces"]
                    totals["kept"] += found["kept"] * found["every-frame faces"]
                    totals["false"] += found["false"]
                    totals["extra"] += found["extra"]
        print(f"{len(clips)} clips of {CLIP_FRAMES} frames; tracked faces against every-frame: kept "
              f"{totals['kept'] / max(totals['every-frame faces'], 1):.4f} of {totals['every-frame faces']}, "
              f"extra {totals['extra']}, of them false {totals['false']}")
        print("| run | faces x frames | NME mean / median | jitter mean / median | faces on frames whose every face "
              "is boxed: found, false |\n| --- | --- | --- | --- | --- |")
        for name, (errors, jitters, (found, false)) in measured.items():
            print(f"| {name} | {len(errors)} | {np.mean(errors):.4f} / {np.median(errors):.4f} | "
                  f"{np.mean(jitters):.4f} / {np.median(jitters):.4f} | {found}, {false} |")


if __name__ == "__main__":
    main()
