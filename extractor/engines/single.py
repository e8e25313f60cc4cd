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
from extractor.pipeline import build_pipeline
from extractor.quiet import start_up_quietly
from extractor.stages import build_stage, run_on_frames
from extractor.workers.devices import only_these_gpus, run_gpus

logger = logging.getLogger(__name__)


def _timed(summary: RunSummary, stage: str, func, *args):
    start = time.perf_counter()
    result = func(*args)
    summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + time.perf_counter() - start
    return result


def run_single_process(settings: RunSettings, options: EngineOptions | None = None) -> RunSummary:
    """Extract every frame of the input in this process; returns the run's summary. On a machine
    with GPUs, the process sees only those the run may use (as the pool's plan would place its
    workers: CUDA_VISIBLE_DEVICES, --gpus, --exclude-gpus)."""
    options = options or EngineOptions()
    found, gpus, notes = run_gpus(options)
    if not found:  # nothing to narrow (a GPU --gpus named is refused above, as by the pool)
        return _run(settings, options)
    for note in notes:
        logger.info("%s", note)
    with only_these_gpus(gpus):
        return _run(settings, options)


def _run(settings: RunSettings, options: EngineOptions) -> RunSummary:
    summary = RunSummary()
    start = time.perf_counter()
    source, writer, imported = settings.open_input_and_output(summary)
    progress = Progress(source.estimate_frames(), enabled=settings.show_progress)
    try:
        pipeline = build_pipeline(settings, options)
        stages = {spec.stage: build_stage(spec.stage, settings.stages) for spec in pipeline.stages}
        for name, stage in stages.items():
            # TensorFlow's oneDNN note, absl's: the log only; a plugin's warnings: the summary too.
            with start_up_quietly(f"{name} start-up") as said:
                _timed(summary, f"load {name}", stage.load)
            for record in said:
                if record.levelno >= logging.WARNING:
                    summary.start_up_warning(record.getMessage())
        engine = _Batches(stages, settings, writer, summary, progress, imported, options.on_frame_written)
        engine.embed_references()
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
        engine.write(writer.last_in_order())  # the input's end: a frame held back, if any
    finally:
        writer.close()
        progress.close()
    summary.take_counts(writer)
    summary.outside_size_limits = getattr(stages.get("detect"), "outside_size_limits", 0)
    summary.peak_rss = progress.peak_rss
    summary.seconds = time.perf_counter() - start
    return summary


class _Batches:
    """One batch of frames through detect (or the imported faces), the face stages and write."""

    def __init__(self, stages: dict, settings: RunSettings, writer, summary, progress, imported, on_frame_written=None):
        self.stages, self.settings = stages, settings
        self.writer, self.summary, self.progress, self.imported = writer, summary, progress, imported
        self.on_frame_written = on_frame_written
        self.frame_batch = stages["detect"].batch_size if "detect" in stages else 16

    def _faces_through(self, images: list, faces: list[dict], skip: tuple[str, ...] = (),
                       indices: list[int] | None = None) -> tuple[list[dict], list]:
        """The face stages over ``faces`` (per frame: index -> face); returns what is left and
        the faces that failed, as (frame position, face index, why)."""
        failures = []
        for name, stage in self.stages.items():
            if name == "detect" or name in skip:
                continue
            result = _timed(self.summary, name, run_on_frames, stage, images, faces, indices)
            faces, failures = result.faces, failures + result.face_failures
            counter = {"align": "aligned", "mask": "masked"}.get(name)
            if counter:
                self.progress.add(**{counter: sum(map(len, faces))})
        return faces, failures

    def embed_references(self) -> None:
        """The --filter/--nfilter reference images through this run's stages, before any frame."""
        face_filter = self.settings.face_filter
        if face_filter is None or not face_filter.needs_embedding:
            return
        for position in range(len(face_filter.references)):
            image = face_filter.read_reference(position)
            found = run_on_frames(self.stages["detect"], [image], None, [-1])  # -1: a photo, looked at as it is
            faces, _ = self._faces_through([image], found.faces, skip=("mask",), indices=[-1])
            face_filter.take_reference(position, list(faces[0].values()))

    def process(self, frames: list[ExtractMedia]) -> None:
        if self.imported is None:
            result = _timed(self.summary, "detect", run_on_frames, self.stages["detect"], [f.image for f in frames],
                            None, [f.frame_index for f in frames])
            for index in sorted(result.frame_failures, reverse=True):
                self.summary.frame_not_processed(frames[index].filename, result.frame_failures[index])
                del frames[index], result.faces[index]
            found = result.faces
            skip = ()
        else:
            found = [dict(enumerate(copy.deepcopy(face) for face in self.imported.get(f.filename, [])))
                     for f in frames]
            skip = ("align",) if not self.settings.realign else ()
        self.progress.add(detected=len(frames), faces=sum(map(len, found)))
        faces, failures = self._faces_through([f.image for f in frames], found, skip)
        for position, index, why in failures:
            self.summary.face_not_processed(frames[position].filename, index, why)
        for frame, kept in zip(frames, faces):
            frame.add_detected_faces([kept[index] for index in sorted(kept)])
        for frame in frames:
            self.write(self.writer.in_order(frame, frame.remove_image))

    def write(self, ready: list) -> None:
        """Frames ready in input order, (frame, done): written, their pixels let go."""
        for frame, done in ready:
            _timed(self.summary, "write", self.writer.write, frame)
            done()  # written: let the pixels go
            self.progress.add(written=1)
            if self.on_frame_written:
                self.on_frame_written(self.writer.counts.frames)
