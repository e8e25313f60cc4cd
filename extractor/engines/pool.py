"""The worker-pool engine: a loader, stage worker processes, and the coordinator.

    loader thread ──FrameRef──► detect workers ──FaceTask──► align workers ──FaceTask──► mask workers
         │ (pixels into the frame pool)   │ ("detected", n)                                 │ ("face", ...)
         └────────────────────────────────┴──────────────► coordinator (this process) ◄───┘
                                                            writes frames in input order,
                                                            releases each frame's slot

The coordinator is the only writer: it completes a frame when its last face returns, writes it
(faces, then its alignments record) and gives its slot back to the loader. Any failure (a worker
exception, a worker killed, Ctrl-C) ends every process, releases the frame pool and keeps every
frame already written.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import partial

import cv2

from extractor.media import ExtractMedia
from extractor.neighbours import HeldFrame
from extractor.quiet import traceback_hint
from extractor.output import FrameWriter
from extractor.run_settings import EngineOptions, RunSettings, RunSummary
from extractor.sources import InputSource
from extractor.stop_signals import catch_stop_signals
from extractor.stop_signals import restore as restore_handlers
from extractor.workers.assembler import FrameAssembler
from extractor.identity_filter import ReferenceError
from extractor.pipeline import Pipeline, build_pipeline
from extractor.workers.devices import PlanError, WorkerPlan, plan_devices, run_gpus
from extractor.workers.gpu_support import gpu_capable_runtimes
from extractor.workers.frame_pool import (FramePool, FramePoolError, block_slots, check_frame_buffer,
                                          default_slot_count, slots_that_fit)
from extractor.workers.leftovers import own_semaphore_names, sweep_dead_runs, unlink_semaphore_names
from extractor.workers.limits import killed_because, limits_note, oom_kills, usable_cores
from extractor.progress import Progress
from extractor.workers.ordered_writer import OrderedFrameWriter, helper_threads
from extractor.workers.messages import (Busy, Detected, FaceDone, FaceTask, Failed, FrameRef, Logged, Ready, Skipped,
                                        Started, Stats, decode_face, encode_face, from_wire, pickled_size, to_wire)
from extractor.workers.stage_worker import WorkerSpec, worker_main
from extractor.workers.stall_clock import StallClock
from extractor.workers.start import WorkerEnvironment, worker_context

logger = logging.getLogger(__name__)
JOIN_SECONDS = 5.0


class PipelineError(Exception):
    """The run stopped because a stage failed; the message names the stage and the frames."""


@dataclass
class FrameMeta:
    name: str
    index: int
    source: str
    slot: int
    shape: tuple[int, ...]
    reference: int | None = None  # a --filter/--nfilter reference image (its position), not a frame to write
    time: float | None = None  # a video frame's time (seconds)


@dataclass
class PoolSummary(RunSummary):
    plan: list[str] = field(default_factory=list)
    bytes_pickled: int = 0
    messages: int = 0
    worker_busy_seconds: dict[str, float] = field(default_factory=dict)
    slots: int = 0
    slot_bytes: int = 0

    @property
    def bytes_per_frame(self) -> float:
        return self.bytes_pickled / self.frames if self.frames else 0.0

    def format(self) -> str:
        lines = [super().format(), f"engine: worker pool, {len(self.worker_busy_seconds)} workers, "
                 f"{self.slots} frame slots of {self.slot_bytes / 1e6:.1f} MB"]
        if self.bytes_pickled:
            lines.append(f"queues: {self.bytes_per_frame:.0f} bytes pickled per frame")
        return "\n".join(lines)


WORKERS_PER_CORE = 4  # more processes than this only wait for a core, each holding its models' memory


def check_worker_count(plans: list[WorkerPlan], cpu_count: int | None = None) -> None:
    """Refuse a pool of more worker processes than the machine can run (a flag or config value of
    1000 started 71 processes and 6.7 GB in seconds on 2 cores before this)."""
    cores = cpu_count or usable_cores()
    limit = max(8, WORKERS_PER_CORE * cores)
    if len(plans) > limit:
        stages = dict.fromkeys(p.stage for p in plans)
        counts = ", ".join(f"{stage} {sum(p.stage == stage for p in plans)}" for stage in stages)
        raise PlanError(f"{len(plans)} worker processes asked for ({counts}), but this machine has {cores} "
                        f"core(s): at most {limit} can run; lower --detect-workers / --align-workers / --mask-workers")


class PoolEngine:
    def __init__(self, settings: RunSettings, options: EngineOptions):
        self.settings = settings
        self.options = options
        self.summary = PoolSummary()
        self._stop = threading.Event()
        self._frames: dict[int, FrameMeta] = {}
        self._loaded = 0
        self._oom_kills_at_start = oom_kills()  # to tell an out-of-memory kill from another
        self._loading_done = False
        self._loader_error: BaseException | None = None
        self._busy: dict[str, str] = {}  # worker -> names of the frames of its last batch
        self._loader_bytes = 0
        self.imported: dict[str, list] | None = None
        self._started: set[str] = set()  # workers that have opened their queues
        self._ready: set[str] = set()  # workers that have loaded their models
        self._dropped: set[int] = set()  # frames the detector could not process
        self._prepare_threads = 0  # the coordinator's helper threads preparing faces (set by the plan)
        self.progress = Progress(None, enabled=False, log_every=None)  # the run's, once it has its input
        self.pipeline: Pipeline | None = None

    # --- planning --------------------------------------------------------------------------
    def plan(self) -> list[WorkerPlan]:
        _, selected, gpu_notes = run_gpus(self.options)
        capable = self.options.gpu_runtimes
        if capable is None:
            capable = gpu_capable_runtimes() if selected else set()
        self.pipeline = build_pipeline(self.settings, self.options, selected, capable)
        plans, notes = plan_devices([spec.demand() for spec in self.pipeline.stages], selected, None)
        notes = gpu_notes + [line for line in [limits_note()] if line] + self.pipeline.notes + notes
        check_worker_count(plans)
        self._prepare_threads = helper_threads(self.options.prepare_threads)
        helpers = f", {self._prepare_threads} threads preparing faces" if self._prepare_threads else ""
        self.summary.plan = notes + [p.describe() for p in plans] + [f"{'writer':10} -> CPU (this process{helpers})"]
        logger.info("device plan:\n  %s", "\n  ".join(self.summary.plan))
        return plans

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> PoolSummary:
        start = time.perf_counter()
        source, writer, self.imported = self.settings.open_input_and_output(self.summary)
        self.progress = Progress(source.estimate_frames(), enabled=self.settings.show_progress)
        try:  # refusals of the plan or the frame buffer: the writer removes an output left empty
            plans = self.plan()
            sweep_dead_runs()
            # Slots cut for the usual frame (three in four are no larger), a larger one taking several:
            # one big photo leaves a folder its frames in flight (``frame_pool.block_slots``).
            slot_bytes, self._largest = source.frame_bytes()
            self._slot_minimum = 2 * len(plans) + 2  # a frame for each worker in hand and one queued
            frames = self._slot_count(slot_bytes)
            check_frame_buffer(frames, slot_bytes, self._largest)
            slots = block_slots(frames, slot_bytes, self._largest, self._slot_count(self._largest))
        except BaseException:
            writer.close()
            raise
        self.summary.slots, self.summary.slot_bytes = frames, slot_bytes
        logger.info("frame pool: %d frames in flight, %.0f MB in slots of %.1f MB (a larger frame takes several; at "
                    "most half the free RAM); frames of up to %.0f MP (--max-pixels)", frames, slots * slot_bytes / 1e6,
                    slot_bytes / 1e6, self.settings.max_pixels / 1e6)
        ctx = worker_context()
        own_semaphore_names()  # the queues' semaphores: sem.extractor-<pid>-*, unlinked once workers start
        stages = self.pipeline.names
        tracked = bool(self.settings.stages.track_every) and stages[0] == "detect"  # a queue per detect worker
        queues = {stage: [ctx.Queue() for plan in plans if plan.stage == stage] if tracked and stage == "detect"
                  else ctx.Queue() for stage in stages}
        results = ctx.Queue()
        downstream = {stage: queues[after] for stage, after in zip(stages, stages[1:])}
        downstream[stages[-1]] = results
        inputs = _worker_inputs(plans, queues)
        every_queue = list(dict.fromkeys(inputs.values())) + [results]
        processes: dict[str, multiprocessing.process.BaseProcess] = {}
        previous_handlers = catch_stop_signals()  # SIGTERM, SIGHUP: the Ctrl-C path below
        # The coordinator's OpenCV work (face warps, PNGs) is small per call: a second thread only
        # waits for a core the workers are using (measured: +18 % CPU for the same wall time).
        previous_cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        pool = loader = None
        try:
            pool = FramePool(slot_bytes, slots, max_frames=frames)
            environment = WorkerEnvironment()
            for plan in plans:
                config = self.pipeline.spec(plan.stage).config(self.settings.stages, plan.gpu is not None)
                spec = WorkerSpec(plan, config, pool.address, os.getpid(), environment,
                                  count_bytes=self.options.count_bytes, last=plan.stage == stages[-1],
                                  log_level=logging.getLogger().getEffectiveLevel())
                proc = ctx.Process(target=worker_main, name=f"extractor-{plan.label}",
                                   args=(spec, inputs[plan.label], downstream[plan.stage], results), daemon=True)
                proc.start()
                processes[plan.label] = proc
            loader = threading.Thread(target=self._load, args=(source, pool, queues, results),
                                      name="extractor-loader", daemon=True)
            loader.start()
            self._coordinate(pool, results, writer, processes, every_queue)
            self._finish(inputs, results, processes, plans)
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP, a failed stage: end every worker, then report
            self._abort(inputs, results, processes)
            raise
        finally:
            restore_handlers(previous_handlers)
            cv2.setNumThreads(previous_cv2_threads)
            self._stop.set()
            if loader is not None:
                # Let the loader leave its loop so the input (a video decoder with native threads of
                # its own) is released now: a decoder torn down at interpreter exit aborts the process.
                loader.join(timeout=10)
            writer.close()
            self.progress.close()
            self.summary.peak_rss = self.progress.peak_rss
            if pool is not None:
                pool.close()
            self._fill_summary(writer, start)
        return self.summary

    def _fill_summary(self, writer: FrameWriter, start: float) -> None:
        self.summary.take_counts(writer)
        self.summary.bytes_pickled += self._loader_bytes
        self.summary.seconds = time.perf_counter() - start

    # --- loader thread ---------------------------------------------------------------------
    def _load(self, source: InputSource, pool: FramePool, queues: dict, results) -> None:
        """Frames into the pool and onto the first stage's queue, in input order; the references
        of --filter/--nfilter go first, and imported faces straight to align or mask."""
        frames = iter(source)
        face_filter = self.settings.face_filter
        references = range(len(face_filter.references)) if face_filter and face_filter.needs_embedding else []
        try:
            for position in references:
                if not self._put_frame(pool, queues, results, face_filter.read_reference(position),
                                       str(face_filter.references[position]), -1, "", position):
                    return
            for item in frames:
                if self._stop.is_set():
                    return
                item = self.summary.admit(item)
                if item is None:
                    continue
                if not self._put_frame(pool, queues, results, item.image, item.filename, item.frame_index,
                                       item.source, None, item.time):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the coordinator
            self._loader_error = exc
        finally:
            frames.close()  # releases the decoder (video capture) here, not at interpreter exit
            self._loading_done = True

    def _put_frame(self, pool: FramePool, queues: dict, results, image, name: str, index: int, source: str,
                   reference: int | None, time: float | None = None) -> bool:
        """One frame into a slot and its first message(s) out; False when the run is stopping."""
        if image.nbytes > self._largest and not self._grow(pool, image, name):
            return False
        slot = self._acquire(pool, pool.slots_for(image.nbytes))
        if slot is None:
            return False
        shape = pool.store(slot, image)
        seq = self._loaded
        self._frames[seq] = FrameMeta(name, index, source, slot, shape, reference, time)
        ref = FrameRef(seq, slot, shape, index, pool.slot_bytes)
        messages = [(self._first_queue(queues, index), tuple(ref))]
        if self.imported is not None and reference is None:  # faces from the .fsa: straight to align or mask
            faces = self.imported.get(name, [])
            entry = queues["align" if self.settings.realign else "mask"]
            messages = [(results, to_wire(Detected(seq, len(faces))))] + [
                (entry, FaceTask(ref, i, encode_face(face)).to_wire()) for i, face in enumerate(faces)]
        for target, message in messages:
            if self.options.count_bytes:
                self._loader_bytes += pickled_size(message)
            target.put(message)
        self._loaded += 1
        return True

    def _slot_count(self, slot_bytes: int) -> int:
        """Frame slots of ``slot_bytes``: --frame-buffer, else a tenth of the free RAM (4-64)."""
        return self.options.frame_buffer or default_slot_count(slot_bytes, minimum=self._slot_minimum)

    def _grow(self, pool: FramePool, image, name: str) -> bool:
        """Room for a frame larger than the pool's slots (a video whose frames grow mid-way): once
        every frame in flight is written, the pool is re-cut into slots that hold it. False when
        the run is stopping."""
        while pool.free_slots < pool.slots:
            if self._stop.is_set():
                return False
            time.sleep(0.01)
        slots = slots_that_fit(image.nbytes, self._slot_count(image.nbytes))
        if slots < 2:
            raise FramePoolError(f"{name}: a frame of {image.shape[1]}x{image.shape[0]} does not fit in the memory "
                                 "left for frames (two at least); a smaller --max-pixels refuses such frames")
        pool.grow(image.nbytes, slots)
        self._largest = image.nbytes
        self.summary.slots, self.summary.slot_bytes = slots, image.nbytes
        logger.info("frame pool: %s is %dx%d, larger than the frames before it: re-cut into %d slots of %.1f MB",
                    name, image.shape[1], image.shape[0], slots, image.nbytes / 1e6)
        return True

    def _first_queue(self, queues: dict, index: int):
        """The first stage's queue for frame ``index``. A tracked video's detect workers each have
        their own: a range of ``track_every`` frames goes to one worker, in order, so it can follow
        faces from frame to frame (the ranges go round the workers)."""
        first = queues[self.pipeline.names[0]]
        if isinstance(first, list):
            return first[max(index, 0) // self.settings.stages.track_every % len(first)]
        return first

    def _acquire(self, pool: FramePool, count: int) -> int | None:
        while not self._stop.is_set():
            try:
                return pool.acquire(timeout=0.2, count=count)
            except queue.Empty:
                continue
        return None

    # --- coordinator -----------------------------------------------------------------------
    def _coordinate(self, pool: FramePool, results, writer: FrameWriter, processes, all_queues: list) -> None:
        ordered = OrderedFrameWriter(writer, self._prepare_threads)
        try:
            self._coordinate_messages(pool, results, ordered, processes, all_queues)
            for media, done in writer.last_in_order():  # the input's end: a frame held back, if any
                ordered.submit(media, done)
            ordered.write_ready(wait=True)
        finally:
            ordered.close()  # before the frame pool goes: helpers read its slots
        self._raise_loader_error()

    def _coordinate_messages(self, pool: FramePool, results, ordered: OrderedFrameWriter, processes,
                             all_queues: list) -> None:
        assembler = FrameAssembler()
        stall = StallClock()
        while not (self._loading_done and assembler.next_seq >= self._loaded):
            ordered.write_ready()
            try:
                message = results.get(timeout=0.005 if ordered.busy else 0.2)
            except queue.Empty:
                self._check_health(processes)
                self.progress.tick()
                if stall.tick() > self.options.stall_seconds and self._frames:
                    raise PipelineError(self._stall_message(processes)) from None
                continue
            stall.restart()
            self._handle(from_wire(message), assembler, processes, all_queues)
            for seq, faces in assembler.pop_ready():
                meta = self._frames.pop(seq)
                if meta.reference is not None:  # a reference image: its faces give the filter a person
                    pool.release(meta.slot)
                    self.settings.face_filter.take_reference(meta.reference, faces)
                    continue
                if seq in self._dropped:  # the detector could not process it: not written, a resume retries it
                    self._dropped.discard(seq)
                    pool.release(meta.slot)
                    continue
                faces = [face for face in faces if face is not None]  # None: a face a stage skipped
                media = ExtractMedia(meta.name, pool.view(meta.slot, meta.shape), faces, meta.index, meta.source,
                                     time=meta.time)
                written = partial(self._written, pool, meta.slot, ordered.writer)
                let_go = partial(self._let_go, pool, meta.slot, ordered.writer)
                for ready, done in ordered.writer.in_order(media, written, let_go):
                    ordered.submit(ready, done)

    def _handle(self, message, assembler: FrameAssembler, processes, all_queues: list) -> None:
        """One message from a worker (``messages``' typed results)."""
        if isinstance(message, Detected):
            assembler.expect(message.seq, message.count)
            self.progress.add(detected=1, faces=message.count)
            if self.imported is not None and not self.settings.realign:  # imported faces skip the aligner
                self.progress.add(aligned=message.count)
        elif isinstance(message, FaceDone):
            assembler.add(message.seq, message.face_index, decode_face(message.face))
            self.progress.add(masked=1)
        elif isinstance(message, Skipped):
            self._skip(assembler, message)
        elif isinstance(message, Started):
            self._started.add(message.label)
            if len(self._started) == len(processes):  # every worker has opened the queues
                unlink_semaphore_names(all_queues)
        elif isinstance(message, Ready):
            self._ready.add(message.label)
            logger.info("worker %s ready (pid %d)", message.label, message.pid)
            if message.mismatch:  # planned on a GPU, but its framework does not see one
                logger.warning(message.mismatch)
                self.summary.warnings.append(message.mismatch)
        elif isinstance(message, Busy):
            self._busy[message.label] = self._names(message.seqs)
            if message.label.startswith("align"):
                self.progress.add(aligned=message.items)
        elif isinstance(message, Failed):
            when = f"on {self._names(message.seqs)}" if message.label in self._ready else "while loading its model"
            raise _worker_failure(message.label, when, message.trace)
        elif isinstance(message, Stats):
            self._record_stats(message)
        elif isinstance(message, Logged):
            self._log_for_worker(message)

    def _log_for_worker(self, record: Logged) -> None:
        """A worker's log record, in this process's log under the worker's logger, its label
        first; a warning in the summary too."""
        logging.getLogger(record.logger).log(record.level, "%s: %s", record.label, record.text)
        if record.level >= logging.WARNING:
            self.summary.start_up_warning(record.text)

    def _let_go(self, pool: FramePool, slot: int, writer: FrameWriter, media: ExtractMedia) -> HeldFrame:
        """A frame held back until the next one is done (its doubtful faces): its pixels copied
        out of its slot, which goes back to the loader at once (re-cutting the slots for larger
        frames waits for every slot to be free)."""
        held = media.with_own_pixels()
        pool.release(slot)
        return HeldFrame(held, partial(self._written, pool, None, writer))

    def _written(self, pool: FramePool, slot: int | None, writer: FrameWriter) -> None:
        """A frame is on disk: its slot (if it still has one) goes back to the loader."""
        if slot is not None:
            pool.release(slot)
        self.progress.add(written=1)
        if self.options.on_frame_written:
            self.options.on_frame_written(writer.counts.frames)

    def _skip(self, assembler: FrameAssembler, skipped: Skipped) -> None:
        """A frame (face_index None) or one face that a stage could not process: one line, counted."""
        meta = self._frames[skipped.seq]
        if meta.reference is not None and skipped.face_index is None:
            raise ReferenceError(f"reference {meta.name}: the detector could not process it ({skipped.reason})")
        if skipped.face_index is None:
            self._dropped.add(skipped.seq)
            assembler.expect(skipped.seq, 0)
            self.summary.frame_not_processed(meta.name, skipped.reason)
        else:
            assembler.add(skipped.seq, skipped.face_index, None)
            if meta.reference is None:
                self.summary.face_not_processed(meta.name, skipped.face_index, skipped.reason)

    def _raise_loader_error(self) -> None:
        if isinstance(self._loader_error, ReferenceError):  # a reference image the user gave: its own message
            raise self._loader_error
        if self._loader_error is not None:
            raise PipelineError(f"loader failed: {self._loader_error!r}") from self._loader_error

    def _stall_message(self, processes) -> str:
        """What --stall-timeout stopped: the workers still loading their models, else the batches
        each worker was last given."""
        loading = sorted(set(processes) - self._ready)
        if loading:
            return (f"no progress for {self.options.stall_seconds:.0f} s: {', '.join(loading)} still loading "
                    f"(a model that loads slowly here wants a longer --stall-timeout)")
        stuck = "; ".join(f"{label}: {names}" for label, names in self._busy.items())
        return (f"no progress for {self.options.stall_seconds:.0f} s with {len(self._frames)} frames in flight "
                f"(a stuck worker?); last batches: {stuck or 'none'}")

    def _check_health(self, processes) -> None:
        self._raise_loader_error()
        for label, proc in processes.items():
            if proc.exitcode is not None:
                last = self._busy.get(label, "no frame yet")
                unfinished = sorted(self._frames)
                lost = (f"{len(unfinished)} unfinished frame(s) from {self._frames[unfinished[0]].name} on "
                        "were not written" if unfinished else "no frame was in flight")
                raise PipelineError(f"{label} worker died (exit code {proc.exitcode})"
                                    f"{killed_because(proc.exitcode, self._oom_kills_at_start)}; its last batch was "
                                    f"{last}; {lost}")

    def _names(self, seqs: list[int]) -> str:
        names = [self._frames[s].name for s in seqs if s in self._frames]
        return "frame(s) " + ", ".join(names) if names else "no frame (idle or starting)"

    def _record_stats(self, stats: Stats) -> None:
        self.summary.bytes_pickled += stats.bytes_sent
        self.summary.messages += stats.messages
        self.summary.worker_busy_seconds[stats.label] = stats.busy_seconds
        self.summary.outside_size_limits += stats.outside_size_limits

    # --- endings ---------------------------------------------------------------------------
    def _finish(self, queues, results, processes, plans) -> None:
        """Normal end: a stop marker per worker, collect their stats, join them."""
        for plan in plans:
            queues[plan.label].put(None)
        waiting = set(processes)
        deadline = time.monotonic() + JOIN_SECONDS * 4
        while waiting and time.monotonic() < deadline:
            try:
                message = results.get(timeout=0.2)
            except queue.Empty:
                waiting = {label for label in waiting if processes[label].exitcode is None}
                continue
            message = from_wire(message)
            if isinstance(message, Stats):
                self._record_stats(message)
                waiting.discard(message.label)
            elif isinstance(message, Logged):
                self._log_for_worker(message)
            elif isinstance(message, Failed):
                raise _worker_failure(message.label, "while stopping", message.trace)
        for proc in processes.values():
            proc.join(JOIN_SECONDS)
        self._abort(queues, results, processes)  # anything still alive is ended

    def _abort(self, queues, results, processes) -> None:
        """End every worker now (terminate, then kill) and let go of the queues without waiting."""
        self._stop.set()
        for proc in processes.values():
            if proc.exitcode is None:
                proc.terminate()
        for proc in processes.values():
            proc.join(JOIN_SECONDS)
            if proc.exitcode is None:
                proc.kill()
                proc.join(JOIN_SECONDS)
        for q in dict.fromkeys(list(queues.values()) + [results]):
            q.cancel_join_thread()
            q.close()


def _worker_inputs(plans: list[WorkerPlan], queues: dict) -> dict:
    """Each worker's input queue, by label: its stage's, or its own where the stage has a list."""
    own = {stage: iter(listed) for stage, listed in queues.items() if isinstance(listed, list)}
    return {plan.label: next(own[plan.stage]) if plan.stage in own else queues[plan.stage] for plan in plans}


def _worker_failure(label: str, when: str, trace: str) -> PipelineError:
    """One line for the user (the exception itself); the whole traceback goes to the log file."""
    logger.debug("%s worker traceback:\n%s", label, trace)
    last = trace.strip().splitlines()[-1] if trace.strip() else "no detail"
    return PipelineError(f"{label} worker failed {when}: {last} ({traceback_hint()})")


def run_pool(settings: RunSettings, options: EngineOptions) -> PoolSummary:
    return PoolEngine(settings, options).run()
