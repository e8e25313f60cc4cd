"""The single-process engine: every stage in this process, one batch after another.

It is the baseline the worker pool is measured against and the easiest path to debug; it runs
the very same stage code (``stages.py``) and writes through the same ``FrameWriter``.
"""
from __future__ import annotations

import copy
import logging
import time

from extractor.progress import Progress
from extractor.media import ExtractMedia
from extractor.run_settings import EngineOptions, RunSettings, RunSummary
from extractor.stages import AlignStage, DetectStage, IdentityStage, MaskStage

logger = logging.getLogger(__name__)


def _timed(summary: RunSummary, stage: str, func, *args):
    start = time.perf_counter()
    result = func(*args)
    summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + time.perf_counter() - start
    return result


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_single_process(settings: RunSettings, options: EngineOptions | None = None) -> RunSummary:
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
        engine = _Batches(detect, align, mask, identity, writer, summary, progress, imported,
                          (options or EngineOptions()).on_frame_written)
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
    summary.take_counts(writer)
    summary.peak_rss = progress.peak_rss
    summary.seconds = time.perf_counter() - start
    return summary


class _Batches:
    """One batch of frames through detect (or the imported faces), align, mask and write."""

    def __init__(self, detect, align, mask, identity, writer, summary, progress, imported, on_frame_written=None):
        self.detect, self.align, self.mask, self.identity = detect, align, mask, identity
        self.writer, self.summary, self.progress, self.imported = writer, summary, progress, imported
        self.on_frame_written = on_frame_written
        self.frame_batch = detect.batch_size if detect is not None else 16

    def _in_batches(self, stage, name: str, images: list, faces: list, counter: str | None) -> dict[int, str]:
        """Run a face stage over all faces in its batch size (a missing stage passes them on);
        returns the faces (by id) it could not process, with why."""
        failed = {}
        for batch in _chunks(list(range(len(faces))), stage.batch_size if stage else max(1, len(faces))):
            if stage is not None:
                _, failures = _timed(self.summary, name, stage.run_isolated, [images[i] for i in batch],
                                     [faces[i] for i in batch])
                failed.update({id(faces[batch[i]]): f"{name}: {why}" for i, why in failures.items()})
            if counter:
                self.progress.add(**{counter: len(batch)})
        return failed

    def process(self, frames: list[ExtractMedia]) -> None:
        if self.imported is None:
            found, failures = _timed(self.summary, "detect", self.detect.run_isolated, [f.image for f in frames])
            for index in sorted(failures, reverse=True):
                self.summary.frame_not_processed(frames[index].filename, failures[index])
                del frames[index], found[index]
        else:
            found = [[copy.deepcopy(face) for face in self.imported.get(f.filename, [])] for f in frames]
        self.progress.add(detected=len(frames), faces=sum(map(len, found)))
        images, faces = [], []
        for frame, frame_faces in zip(frames, found):
            frame.add_detected_faces(frame_faces)
            images += [frame.image] * len(frame_faces)
            faces += frame_faces
        failed = {}
        for stage, name, counter in ((self.align, "align", "aligned"), (self.mask, "mask", "masked"),
                                     (self.identity, "identity", None)):
            failed.update(self._in_batches(stage, name, images, faces, counter))
            kept = [i for i, face in enumerate(faces) if id(face) not in failed]
            images, faces = [images[i] for i in kept], [faces[i] for i in kept]
        for frame in frames:
            for index, face in enumerate(frame.detected_faces):
                if id(face) in failed:
                    self.summary.face_not_processed(frame.filename, index, failed[id(face)])
            frame.detected_faces[:] = [face for face in frame.detected_faces if id(face) not in failed]
        for frame in frames:
            _timed(self.summary, "write", self.writer.write, frame)
            frame.remove_image()  # written: let the pixels go
            self.progress.add(written=1)
            if self.on_frame_written:
                self.on_frame_written(self.writer.counts.frames)
