"""The single-process engine: every stage in this process, one batch after another.

It is the baseline the worker pool is measured against and the easiest path to debug; it runs
the very same stage code (``stages.py``) and writes through the same ``FrameWriter``.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from extractor.output import FaceNames, FrameWriter, OutputSettings, check_outside_inputs
from extractor.progress import Progress
from extractor.media import ExtractMedia
from extractor.sources import DEFAULT_MAX_PIXELS, InputSource, SkippedInput
from extractor.stages import AlignStage, DetectStage, IdentityStage, MaskStage, StageConfig

logger = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """Everything a run needs, whatever the engine."""

    input_path: Path
    output: OutputSettings
    stages: StageConfig = field(default_factory=StageConfig)
    every_n: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    show_progress: bool | None = None  # None: only when stderr is a terminal
    import_alignments: Path | None = None  # faceswap .fsa: boxes (and landmarks) instead of detection
    realign: bool = False  # with import_alignments: run the aligner on the imported boxes
    face_filter: object | None = None  # identity_filter.FaceFilter: keep only wanted people
    recursive: bool = False  # image folders: sub-folders too

    def made_with(self) -> dict:
        """What decides a face file's pixels and points, recorded in the alignments header: a
        resumed run must match it (or its faces would mix with different ones)."""
        stages, output = self.stages, self.output
        detector = "imported" if self.import_alignments is not None else stages.detector
        aligner = stages.aligner if self.import_alignments is None or self.realign else "imported"
        return {"size": output.size, "coverage": output.coverage, "detector": detector, "aligner": aligner,
                "maskers": sorted(stages.maskers), "normalization": stages.normalization,
                "min_size": stages.min_size, "debug_landmarks": output.debug_landmarks}

    def open_input_and_output(self, summary: "RunSummary") -> tuple[InputSource, FrameWriter, dict | None]:
        """The input, the writer (output checked, locked, earlier frames read) and the imported
        faces: what every engine starts with. Refusals come here, before any model loads."""
        source = InputSource(self.input_path, self.every_n, self.max_pixels, recursive=self.recursive)
        check_outside_inputs(self.output, self.input_path, self.recursive)
        self.output.made_with = self.made_with()
        writer = FrameWriter(self.output, self.face_filter, FaceNames(source.frame_keys()))
        source.done = writer.done
        summary.already_done = len(writer.done)
        try:
            imported = self.imported(summary)
        except BaseException:
            writer.close()
            raise
        return source, writer, imported

    def imported(self, summary: "RunSummary") -> dict[str, list] | None:
        """Faces of the imported .fsa by frame key, or None when nothing is imported; faces that
        cannot be used are reported and counted, not fatal."""
        if self.import_alignments is None:
            return None
        from extractor.fsa import imported_faces

        faces, problems = imported_faces(self.import_alignments)
        for problem in problems:
            logger.warning(problem)
        summary.warnings += problems
        return faces


@dataclass
class RunSummary:
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    filtered_out: int = 0  # faces dropped by --filter/--nfilter
    already_done: int = 0  # frames an earlier run finished (--skip-existing)
    skipped: list[SkippedInput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss: int = 0  # bytes, this process and its children together

    def admit(self, item: ExtractMedia | SkippedInput) -> ExtractMedia | None:
        """Report a skipped input or a decode warning; returns the frame to process, if any."""
        if isinstance(item, SkippedInput):
            logger.warning("skipped %s", item.reason)
            self.skipped.append(item)
            return None
        if item.warning:
            logger.warning(item.warning)
            self.warnings.append(item.warning)
        return item

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def format(self) -> str:
        done = f" (+{self.already_done} done by an earlier run)" if self.already_done else ""
        filtered = f" kept, {self.filtered_out} filtered out by identity" if self.filtered_out else ""
        lines = [f"frames: {self.frames}{done}", f"faces: {self.faces}{filtered}",
                 f"frames without a face: {self.frames_without_face}",
                 f"skipped inputs: {len(self.skipped)}"]
        lines += [f"  - {s.reason}" for s in self.skipped]
        if self.warnings:
            lines.append(f"warnings: {len(self.warnings)}")
            lines += [f"  - {warning}" for warning in self.warnings[:20]]
            lines += [f"  ... and {len(self.warnings) - 20} more (see the log)"] if len(self.warnings) > 20 else []
        lines.append(f"time: {self.seconds:.1f} s ({self.frames_per_second:.2f} frames/s)")
        if self.peak_rss:
            lines.append(f"peak memory: {self.peak_rss / 2**20:.0f} MB (all processes)")
        loads = {k: v for k, v in self.stage_seconds.items() if k.startswith("load ")}
        if loads:
            lines.append("model load: " + ", ".join(f"{k[5:]} {v:.1f} s" for k, v in loads.items()))
        if self.frames and len(self.stage_seconds) > len(loads):
            per = ", ".join(f"{k} {1000 * v / self.frames:.1f}" for k, v in self.stage_seconds.items()
                            if k not in loads)
            lines.append(f"ms per frame by stage: {per}")
        return "\n".join(lines)


def _timed(summary: RunSummary, stage: str, func, *args):
    start = time.perf_counter()
    result = func(*args)
    summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + time.perf_counter() - start
    return result


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_single_process(settings: RunSettings) -> RunSummary:
    """Extract every frame of the input in this process; returns the run's summary."""
    summary = RunSummary()
    start = time.perf_counter()
    source, writer, imported = settings.open_input_and_output(summary)
    progress = Progress(source.estimate_frames(), enabled=settings.show_progress)
    detect = DetectStage(settings.stages) if imported is None else None
    align = AlignStage(settings.stages) if imported is None or settings.realign else None
    mask = MaskStage(settings.stages)
    identity = IdentityStage(settings.stages) if settings.stages.identity else None
    try:
        for stage, name in ((detect, "detect"), (align, "align"), (mask, "mask"), (identity, "identity")):
            if stage is not None:
                _timed(summary, f"load {name}", stage.load)
        engine = _Batches(detect, align, mask, identity, writer, summary, progress, imported)
        pending: list[ExtractMedia] = []
        for item in source:
            frame = summary.admit(item)
            if frame is None:
                continue
            pending.append(frame)
            if len(pending) >= engine.frame_batch:
                engine.process(pending)
                pending = []
        if pending:
            engine.process(pending)
    finally:
        writer.close()
        progress.close()
    summary.frames = writer.counts.frames
    summary.faces = writer.counts.faces
    summary.frames_without_face = writer.counts.frames_without_face
    summary.filtered_out = writer.counts.filtered_out
    summary.peak_rss = progress.peak_rss
    summary.seconds = time.perf_counter() - start
    return summary


class _Batches:
    """One batch of frames through detect (or the imported faces), align, mask and write."""

    def __init__(self, detect, align, mask, identity, writer, summary, progress, imported):
        self.detect, self.align, self.mask, self.identity = detect, align, mask, identity
        self.writer, self.summary, self.progress, self.imported = writer, summary, progress, imported
        self.frame_batch = detect.batch_size if detect is not None else 16

    def _in_batches(self, stage, name: str, images: list, faces: list, counter: str | None) -> None:
        """Run a face stage over all faces in its batch size (a missing stage passes them on)."""
        for batch in _chunks(list(range(len(faces))), stage.batch_size if stage else max(1, len(faces))):
            if stage is not None:
                _timed(self.summary, name, stage.run, [images[i] for i in batch], [faces[i] for i in batch])
            if counter:
                self.progress.add(**{counter: len(batch)})

    def process(self, frames: list[ExtractMedia]) -> None:
        if self.imported is None:
            found = _timed(self.summary, "detect", self.detect.run, [f.image for f in frames])
        else:
            found = [[copy.deepcopy(face) for face in self.imported.get(f.filename, [])] for f in frames]
        self.progress.add(detected=len(frames), faces=sum(map(len, found)))
        images, faces = [], []
        for frame, frame_faces in zip(frames, found):
            frame.add_detected_faces(frame_faces)
            images += [frame.image] * len(frame_faces)
            faces += frame_faces
        self._in_batches(self.align, "align", images, faces, "aligned")
        self._in_batches(self.mask, "mask", images, faces, "masked")
        self._in_batches(self.identity, "identity", images, faces, None)
        for frame in frames:
            _timed(self.summary, "write", self.writer.write, frame)
            frame.remove_image()  # written: let the pixels go
            self.progress.add(written=1)
