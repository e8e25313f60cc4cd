"""``extractor eval``: detection recall/precision and landmark NME on annotated sets.

Reads the ``annotations.json`` format of ../shared/data. Rules:
- a detection matches a ground-truth face at IoU >= 0.3 (greedy, best IoU first);
- false positives count only on sets marked ``exhaustive`` and on images with ``"faces": []``;
- NME = mean point error / distance between the outer eye corners (points 36 and 45), on faces
  whose set's ``landmarks_kind`` is human; faces under 40 px wide are reported separately;
- NME over the box size (mean point error / sqrt(w x h) of the true points' extent, the
  AFLW2000-3D convention: the eye-corner distance collapses on turned faces) by yaw bin, 0-30,
  30-60 and 60-90 degrees: the set's yaw (``yaw_reference_3dmm``, else ``yaw_estimate``), else
  one estimated from the true points (``estimate_yaw``).
Images whose ``faces`` is null (not box-annotated) only report their face count.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extractor.geometry import iou, points_size
from extractor.images import InputError, read_image
from extractor.regular_files import read_regular
from extractor.stages import AlignStage, DetectStage, StageConfig

IOU_MATCH = 0.3
SMALL_FACE = 40


YAW_BINS = ((0, 30), (30, 60), (60, 90))


@dataclass
class FaceResult:
    set_name: str
    file: str
    box_width: float
    nme: float | None  # None when the face was not detected
    yaw: float = 0.0  # degrees, either way
    nme_box: float | None = None  # NME over the box size
    quality: float | None = None  # the aligner's quality score of the face


@dataclass
class EvalReport:
    detector: str
    aligner: str
    ground_truth: int = 0
    matched: int = 0
    false_positives: int = 0
    counted_detections: int = 0
    fp_files: list[str] = field(default_factory=list)
    human_faces: list[FaceResult] = field(default_factory=list)
    counts: list[tuple[str, int, int]] = field(default_factory=list)  # file, expected, found
    errors: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.matched / self.ground_truth if self.ground_truth else float("nan")

    @property
    def precision(self) -> float:
        return 1.0 - self.false_positives / self.counted_detections if self.counted_detections else 1.0

    def nme_values(self, min_width: float = 0, max_width: float = float("inf")) -> np.ndarray:
        return np.array([f.nme for f in self.human_faces
                         if f.nme is not None and min_width <= f.box_width < max_width])

    def yaw_bins(self) -> list[tuple[str, int, float | None]]:
        """(bin, faces detected in it, mean NME over the box size) for each yaw bin."""
        out = []
        for low, high in YAW_BINS:
            values = [f.nme_box for f in self.human_faces
                      if f.nme_box is not None and low <= f.yaw < high + (high == 90)]
            out.append((f"{low}-{high}", len(values), float(np.mean(values)) if values else None))
        return out

    def quality_rank_correlation(self) -> float | None:
        """Spearman's rank correlation between the quality score and the true NME over the box
        (a good score is strongly negative: the worse the points, the lower the score)."""
        pairs = np.array([(f.quality, f.nme_box) for f in self.human_faces
                          if f.quality is not None and f.nme_box is not None])
        if len(pairs) < 3:
            return None
        ranks = pairs.argsort(0).argsort(0).astype(float)
        return float(np.corrcoef(ranks[:, 0], ranks[:, 1])[0, 1])

    def summary(self) -> dict:
        every = self.nme_values()
        large = self.nme_values(SMALL_FACE)
        small = self.nme_values(0, SMALL_FACE)
        return {
            "detector": self.detector, "aligner": self.aligner,
            "recall": round(self.recall, 4), "matched": self.matched, "ground_truth": self.ground_truth,
            "precision": round(self.precision, 4), "false_positives": self.false_positives,
            "nme_median_all": round(float(np.median(every)), 4) if len(every) else None,
            "nme_mean_ge40": round(float(large.mean()), 4) if len(large) else None,
            "nme_mean_lt40": round(float(small.mean()), 4) if len(small) else None,
            "human_faces": len(self.human_faces), "human_faces_missed": sum(f.nme is None for f in self.human_faces),
            **{f"nme_box_yaw_{label.replace('-', '_')}": None if value is None else round(value, 4)
               for label, _, value in self.yaw_bins()},
            "quality_rank_correlation": _rounded(self.quality_rank_correlation()),
        }

    def format(self) -> str:
        s = self.summary()
        lines = [f"detector {self.detector}, aligner {self.aligner}",
                 f"  detection recall    {s['recall']:.3f} ({self.matched}/{self.ground_truth} faces, "
                 f"IoU >= {IOU_MATCH})",
                 f"  detection precision {s['precision']:.3f} ({self.false_positives} false positives on "
                 f"exhaustive sets and no-face images)"]
        for name in self.fp_files:
            lines.append(f"    false positive in {name}")
        lines.append(f"  landmark NME (human-annotated, {len(self.human_faces)} faces, "
                     f"{s['human_faces_missed']} not detected):")
        lines.append(f"    median, all faces       {_fmt(s['nme_median_all'])}")
        lines.append(f"    mean, box >= {SMALL_FACE} px wide  {_fmt(s['nme_mean_ge40'])}")
        lines.append(f"    mean, box <  {SMALL_FACE} px wide  {_fmt(s['nme_mean_lt40'])}")
        lines.append("    over the box size, by yaw:" + "".join(
            f"  {label}: {'n/a' if value is None else f'{100 * value:.1f} %'} ({count})"
            for label, count, value in self.yaw_bins()))
        lines.append(f"    quality score against it, rank correlation: {_fmt(s['quality_rank_correlation'])} "
                     "(-1: the score orders the faces exactly by their error)")
        for face in self.human_faces:
            lines.append(f"      {face.set_name}/{face.file} (box {face.box_width:.0f} px, yaw {face.yaw:.0f}): "
                         f"{_fmt(face.nme)}, over the box {_fmt(face.nme_box)}, quality {_fmt(face.quality)}")
        for name, expected, found in self.counts:
            lines.append(f"  {name}: expected {expected} faces, found {found}")
        lines.extend(f"  error: {e}" for e in self.errors)
        return "\n".join(lines)


def pooled_landmarks(reports: list[EvalReport]) -> dict:
    """The landmark figures of several reports' human-annotated faces together."""
    pooled = EvalReport(reports[0].detector, reports[0].aligner)
    pooled.human_faces = [face for report in reports for face in report.human_faces]
    summary = pooled.summary()
    return {key: value for key, value in summary.items() if key.startswith(("nme_box_yaw", "quality", "human_faces"))}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def nme(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error over the outer-eye-corner distance (points 36 and 45)."""
    truth = np.asarray(truth, dtype=np.float64)
    norm = np.linalg.norm(truth[36] - truth[45])
    return float(np.linalg.norm(np.asarray(predicted) - truth, axis=1).mean() / norm)


def nme_over_box(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error over sqrt(w x h) of the true points' extent (AFLW2000-3D's convention)."""
    truth = np.asarray(truth, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(predicted) - truth, axis=1).mean() / points_size(truth))


def estimate_yaw(points) -> float:
    """The head's yaw in degrees (either way) from its 68 points: how far the nose tip sits from
    the middle of the jaw line, with the eye line levelled. Fitted on the 12 faces of
    ../shared/turned with a published yaw (within about 10 degrees up to 80)."""
    points = np.asarray(points, dtype=np.float64)
    eyes = points[45] - points[36]
    angle = -np.arctan2(eyes[1], eyes[0])
    turned = points @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]).T
    left, right, nose = turned[0, 0], turned[16, 0], turned[30, 0]
    offset = ((nose - left) - (right - nose)) / max(abs(right - left), 1e-6)
    return float(np.degrees(np.arctan(0.8 * abs(offset))))


def face_yaw(truth: dict) -> float:
    """A ground-truth face's yaw (degrees, either way): the set's, else estimated from its points."""
    for key in ("yaw_reference_3dmm", "yaw_estimate"):
        if truth.get(key) is not None:
            return abs(float(truth[key]))
    return estimate_yaw(truth["landmarks68"])


def match(detections: list, truths: list) -> list[tuple[int, int]]:
    """Greedy one-to-one matching (detection index, truth index) at IoU >= 0.3."""
    pairs = sorted(((iou(d.box_ltrb, t), di, ti) for di, d in enumerate(detections)
                    for ti, t in enumerate(truths)), reverse=True)
    used_d, used_t, out = set(), set(), []
    for value, di, ti in pairs:
        if value >= IOU_MATCH and di not in used_d and ti not in used_t:
            used_d.add(di)
            used_t.add(ti)
            out.append((di, ti))
    return out


def find_annotation_files(root: Path) -> list[Path]:
    root = Path(root)
    if (root / "annotations.json").exists():
        return [root / "annotations.json"]
    return sorted(root.glob("*/annotations.json"))


def evaluate(root: Path, config: StageConfig, detect: DetectStage | None = None,
             align: AlignStage | None = None) -> EvalReport:
    """Run detection and alignment over every annotated image below ``root``.

    Already loaded stages may be passed in (tests load each model once per session).
    """
    detect = detect or DetectStage(config)
    align = align or AlignStage(config)
    report = EvalReport(config.detector, config.aligner + (f" (re-feed {config.re_feed})" if config.re_feed else ""))
    files = find_annotation_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: no annotations.json found (in it or its sub-folders)")
    for ann_path in files:
        try:
            annotations = json.loads(read_regular(ann_path).decode("utf-8"))
            entries = annotations["images"]
            if not isinstance(entries, list):
                raise TypeError(f"'images' is a {type(entries).__name__}, not a list")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{ann_path}: not a readable annotations file ({type(exc).__name__}: {exc})") from None
        human = str(annotations.get("landmarks_kind", "")).startswith("human")
        exhaustive = bool(annotations.get("exhaustive"))
        for number, entry in enumerate(entries):
            try:
                check_entry(entry, human)
                _evaluate_entry(report, detect, align, ann_path, entry, human, exhaustive)
            except EntryError as exc:
                report.errors.append(f"{ann_path}: image entry {number} skipped: {exc}")
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                report.errors.append(f"{ann_path}: image entry {number} skipped ({type(exc).__name__}: {exc})")
    return report


class EntryError(ValueError):
    """An image entry of an annotations file that cannot be measured, and why."""


def check_entry(entry, human: bool) -> None:
    """``EntryError`` naming what is wrong with an image entry: its file not a name in the set's
    folder, a face's box not 4 finite numbers (x1, y1, x2, y2, in that order), or, in a
    human-annotated set, its ``landmarks68`` not 68 finite points. A face that cannot be matched
    would count as missed, and a wrong number of points would stop the measure half-way."""
    if not isinstance(entry, dict):
        raise EntryError(f"a {type(entry).__name__}, not an object with 'file' and 'faces'")
    name = entry.get("file")
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise EntryError(f"file {name!r} is not the name of an image in the set's folder")
    faces = entry.get("faces")
    if faces is None:
        return
    if not isinstance(faces, list):
        raise EntryError(f"{name}: faces is a {type(faces).__name__}, not a list")
    for index, face in enumerate(faces):
        box = _finite(face.get("box") if isinstance(face, dict) else None, (4,))
        if box is None or box[2] <= box[0] or box[3] <= box[1]:
            raise EntryError(f"{name}: face {index}'s box is not 4 finite numbers x1, y1, x2, y2 with x2 > x1 and "
                             "y2 > y1")
        if human and _finite(face.get("landmarks68"), (68, 2)) is None:
            raise EntryError(f"{name}: face {index}'s landmarks68 is not 68 finite (x, y) points")


def _finite(value, shape: tuple) -> np.ndarray | None:
    """``value`` as a float array of ``shape`` with finite numbers only; None where it is not one."""
    try:
        array = np.asarray(value, float)
    except (TypeError, ValueError):
        return None
    return array if array.shape == shape and np.isfinite(array).all() else None


def _evaluate_entry(report: EvalReport, detect: DetectStage, align: AlignStage, ann_path: Path, entry: dict,
                    human: bool, exhaustive: bool) -> None:
    """One annotated image: detection matched to its boxes, and landmark error where human-made."""
    set_name = ann_path.parent.name
    truths = entry.get("faces")
    expected = entry.get("expected_face_count")
    if truths is None and expected is None:
        return  # broken on purpose: nothing to measure
    try:
        image, _ = read_image(ann_path.parent / entry["file"])
    except InputError as exc:
        report.errors.append(str(exc))
        return
    found = detect.run([image])[0]
    if truths is None:
        report.counts.append((f"{set_name}/{entry['file']}", expected, len(found)))
        return
    pairs = match(found, [f["box"] for f in truths])
    report.ground_truth += len(truths)
    report.matched += len(pairs)
    if exhaustive or not truths:
        report.counted_detections += len(found)
        report.false_positives += len(found) - len(pairs)
        if len(found) > len(pairs):
            report.fp_files.append(f"{set_name}/{entry['file']}")
    if not human:
        return
    align.run([image] * len(pairs), [found[di] for di, _ in pairs])
    by_truth = {ti: found[di] for di, ti in pairs}
    for ti, truth in enumerate(truths):
        width = truth["box"][2] - truth["box"][0]
        face = by_truth.get(ti)
        value = nme(face.landmarks, truth["landmarks68"]) if face is not None else None
        by_box = nme_over_box(face.landmarks, truth["landmarks68"]) if face is not None else None
        report.human_faces.append(FaceResult(set_name, entry["file"], width, value, face_yaw(truth), by_box,
                                             face.quality if face is not None else None))
