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
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import partial

import cv2

from extractor.media import ExtractMedia
from extractor.quiet import traceback_hint
from extractor.output import FrameWriter
from extractor.plugins import registry
from extractor.run_settings import EngineOptions, RunSettings, RunSummary
from extractor.sources import InputSource
from extractor.workers.assembler import FrameAssembler
from extractor.workers.devices import (PlanError, StageDemand, WorkerPlan, detect_gpus, plan_devices,
                                       selected_gpus)
from extractor.workers.gpu_support import gpu_capable_runtimes, install_hint, pick_gpu_runtime
from extractor.workers.frame_pool import FramePool, check_frame_buffer, default_slot_count
from extractor.workers.leftovers import own_semaphore_names, sweep_dead_runs, unlink_semaphore_names
from extractor.progress import Progress
from extractor.workers.ordered_writer import OrderedFrameWriter, helper_threads
from extractor.workers.messages import FaceTask, FrameRef, decode_face, encode_face, pickled_size
from extractor.workers.stage_worker import WorkerSpec, worker_main
from extractor.workers.start import WorkerEnvironment, worker_context

logger = logging.getLogger(__name__)
STAGES = ("detect", "align", "mask", "identity")
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


def active_stages(settings: RunSettings) -> tuple[str, ...]:
    """Stages that need workers: an imported .fsa replaces detection, and alignment too unless
    --realign."""
    stages = ("detect", "align", "mask")
    if settings.import_alignments is not None:
        stages = ("align", "mask") if settings.realign else ("mask",)
    return stages + (("identity",) if settings.stages.identity else ())


def stage_demands(settings: RunSettings, options: EngineOptions, gpus: list | None = None,
                  capable: set[str] | None = None, cpu_count: int | None = None) -> tuple[list[StageDemand], list[str]]:
    """Worker count, GPU need, CPU weight and runtime of each stage, read from its plugins' data,
    and the notes the plan prints about them.

    A stage goes on the GPUs (``gpus``, already narrowed to --gpus) only when each of its GPU
    plugins has a runtime installed with GPU support (``capable``, from ``gpu_support``): its
    most preferred one is chosen. Otherwise it is planned as on a machine without GPUs, and the
    plan says so with the command that installs GPU support. A worker count left at 0 (the
    default) is one detect worker per GPU the detector runs on, and as many aligners to keep them
    fed (up to half the cores); 1 otherwise.
    """
    config, gpus = settings.stages, gpus or []
    capable = set() if capable is None else capable
    demands, notes, without_runtime = [], [], []
    gpu_detectors, gpu_plugins = 0, False
    for stage in active_stages(settings):
        names = config.plugin_names(stage)
        classes = [registry.get_plugin_class(stage, name) for name in names]
        gpu_plugins = gpu_plugins or any(cls.device_need.gpu for cls in classes)
        plugin_options = [config.plugin_options.get(f"{stage}.{name}", {}) for name in names]
        wanted = [cls.gpu_runtimes(config.backend, opts) for cls, opts in zip(classes, plugin_options)
                  if cls.device_need.gpu]
        chosen = [pick_gpu_runtime(candidates, capable) for candidates in wanted]
        on_gpu = bool(gpus and wanted and all(chosen))
        if gpus and wanted and not on_gpu:
            without_runtime.append((stage, next(c for c, pick in zip(wanted, chosen) if not pick)))
        gpu = [cls for cls in classes if cls.device_need.gpu] if on_gpu else []
        batch = config.batch_sizes.get(stage)
        batch_mb = sum(cls.batch_vram_mb(batch) for cls in gpu) if gpu else None
        need = (options.vram_mb.get(stage) or batch_mb) if gpu else None
        labels = iter(chosen) if on_gpu else None
        runtime = ", ".join(dict.fromkeys(
            next(labels) if on_gpu and cls.device_need.gpu else cls.runtime_label(config.backend, False, opts)
            for cls, opts in zip(classes, plugin_options)))
        workers = options.workers.get(stage) or 0
        if not workers and stage == "detect" and on_gpu:
            workers = len(gpus)
            notes.append(f"detect: one worker per GPU ({workers}); --detect-workers N for more")
        if not workers and stage == "align" and gpu_detectors:
            # A GPU detects faster than one CPU aligner places landmarks (docs/performance.md).
            workers = max(1, min(2 * gpu_detectors, (cpu_count or os.cpu_count() or 1) // 2))
            notes.append(f"align: {workers} worker(s) to keep the GPU detectors fed; --align-workers N to change")
        workers = workers or 1
        gpu_detectors = workers if stage == "detect" and on_gpu else gpu_detectors
        demands.append(StageDemand(stage, workers, need, batch_mb,
                                   heavy=any(cls.cpu_heavy for cls in classes), runtime=runtime))
    if not gpus and gpu_plugins:
        notes.insert(0, "no GPU found: every worker runs on the CPU")
    if without_runtime:
        hint = install_hint(without_runtime[0][1])
        stages = ", ".join(stage for stage, _ in without_runtime)
        notes.insert(0, f"{len(gpus)} GPU(s) found, but no installed runtime can use them for {stages} (the install "
                        f"has none with GPU support): {stages} planned on the CPU; `{hint}` installs GPU support")
    return demands, notes


WORKERS_PER_CORE = 4  # more processes than this only wait for a core, each holding its models' memory


def check_worker_count(plans: list[WorkerPlan], cpu_count: int | None = None) -> None:
    """Refuse a pool of more worker processes than the machine can run (a flag or config value of
    1000 started 71 processes and 6.7 GB in seconds on 2 cores before this)."""
    cores = cpu_count or os.cpu_count() or 1
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
        self._loading_done = False
        self._loader_error: BaseException | None = None
        self._busy: dict[str, str] = {}  # worker -> names of the frames of its last batch
        self._loader_bytes = 0
        self.imported: dict[str, list] | None = None
        self._started: set[str] = set()  # workers that have opened their queues
        self._dropped: set[int] = set()  # frames the detector could not process
        self._prepare_threads = 0  # the coordinator's helper threads preparing faces (set by the plan)
        self.progress = Progress(None, enabled=False)

    # --- planning --------------------------------------------------------------------------
    def plan(self) -> list[WorkerPlan]:
        inventory = self.options.gpu_inventory
        gpus = detect_gpus() if inventory is None else inventory
        selected = selected_gpus(gpus, self.options.gpus)
        capable = self.options.gpu_runtimes
        if capable is None:
            capable = gpu_capable_runtimes() if selected else set()
        demands, demand_notes = stage_demands(self.settings, self.options, selected, capable)
        plans, notes = plan_devices(demands, selected, None)
        notes = demand_notes + notes
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
        try:
            plans = self.plan()
        except BaseException:
            writer.close()
            raise
        sweep_dead_runs()
        slot_bytes = source.max_frame_bytes()
        slots = self.options.frame_buffer or default_slot_count(slot_bytes, minimum=2 * len(plans) + 2)
        check_frame_buffer(slots, slot_bytes)
        self.summary.slots, self.summary.slot_bytes = slots, slot_bytes
        logger.info("frame pool: %d slots of %.1f MB (%.0f MB in all, at most half the free RAM); frames of up to "
                    "%.0f MP (--max-pixels)", slots, slot_bytes / 1e6, slots * slot_bytes / 1e6,
                    self.settings.max_pixels / 1e6)
        ctx = worker_context()
        own_semaphore_names()  # the queues' semaphores: sem.extractor-<pid>-*, unlinked once workers start
        stages = active_stages(self.settings)
        queues = {stage: ctx.Queue() for stage in stages}
        results = ctx.Queue()
        downstream = {stage: queues[after] for stage, after in zip(stages, stages[1:])}
        downstream[stages[-1]] = results
        processes: dict[str, multiprocessing.process.BaseProcess] = {}
        previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        # The coordinator's OpenCV work (face warps, PNGs) is small per call: a second thread only
        # waits for a core the workers are using (measured: +18 % CPU for the same wall time).
        previous_cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        pool = loader = None
        try:
            pool = FramePool(slot_bytes, slots)
            environment = WorkerEnvironment()
            for plan in plans:
                config = self.settings.stages
                if plan.gpu is not None:  # the runtime the plan chose for this GPU
                    for label in plan.runtime.split(", "):
                        config = config.on_runtime(plan.stage, label)
                spec = WorkerSpec(plan, config, pool.address, os.getpid(), environment,
                                  count_bytes=self.options.count_bytes, last=plan.stage == stages[-1])
                proc = ctx.Process(target=worker_main, name=f"extractor-{plan.label}",
                                   args=(spec, queues[plan.stage], downstream[plan.stage], results), daemon=True)
                proc.start()
                processes[plan.label] = proc
            loader = threading.Thread(target=self._load, args=(source, pool, queues[stages[0]], results),
                                      name="extractor-loader", daemon=True)
            loader.start()
            self._coordinate(pool, results, writer, processes, list(queues.values()) + [results])
            self._finish(queues, results, processes, plans)
        except BaseException:  # Ctrl-C, SIGTERM, a failed stage: end every worker, then report
            self._abort(queues, results, processes)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous_term)
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
    def _load(self, source: InputSource, pool: FramePool, first_queue, results) -> None:
        frames = iter(source)
        try:
            for item in frames:
                if self._stop.is_set():
                    return
                item = self.summary.admit(item)
                if item is None:
                    continue
                slot = self._acquire(pool)
                if slot is None:
                    return
                shape = pool.store(slot, item.image)
                seq = self._loaded
                self._frames[seq] = FrameMeta(item.filename, item.frame_index, item.source, slot, shape)
                ref = FrameRef(seq, slot, shape)
                messages = [(first_queue, tuple(ref))]
                if self.imported is not None:  # faces from the .fsa: straight to align or mask
                    faces = self.imported.get(item.filename, [])
                    messages = [(results, ("detected", seq, len(faces)))] + [
                        (first_queue, FaceTask(ref, i, encode_face(face)).to_wire()) for i, face in enumerate(faces)]
                for target, message in messages:
                    if self.options.count_bytes:
                        self._loader_bytes += pickled_size(message)
                    target.put(message)
                self._loaded += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the coordinator
            self._loader_error = exc
        finally:
            frames.close()  # releases the decoder (video capture) here, not at interpreter exit
            self._loading_done = True

    def _acquire(self, pool: FramePool) -> int | None:
        while not self._stop.is_set():
            try:
                return pool.acquire(timeout=0.2)
            except queue.Empty:
                continue
        return None

    # --- coordinator -----------------------------------------------------------------------
    def _coordinate(self, pool: FramePool, results, writer: FrameWriter, processes, all_queues: list) -> None:
        ordered = OrderedFrameWriter(writer, self._prepare_threads)
        try:
            self._coordinate_messages(pool, results, ordered, processes, all_queues)
            ordered.write_ready(wait=True)
        finally:
            ordered.close()  # before the frame pool goes: helpers read its slots
        if self._loader_error is not None:
            raise PipelineError(f"loader failed: {self._loader_error!r}") from self._loader_error

    def _coordinate_messages(self, pool: FramePool, results, ordered: OrderedFrameWriter, processes,
                             all_queues: list) -> None:
        assembler = FrameAssembler()
        last_message = time.monotonic()
        while not (self._loading_done and assembler.next_seq >= self._loaded):
            ordered.write_ready()
            try:
                message = results.get(timeout=0.005 if ordered.busy else 0.2)
            except queue.Empty:
                self._check_health(processes)
                self.progress.tick()
                if self._frames and time.monotonic() - last_message > self.options.stall_seconds:
                    stuck = "; ".join(f"{label}: {names}" for label, names in self._busy.items())
                    raise PipelineError(f"no progress for {self.options.stall_seconds:.0f} s with "
                                        f"{len(self._frames)} frames in flight (a stuck worker?); "
                                        f"last batches: {stuck or 'none'}") from None
                continue
            last_message = time.monotonic()
            kind = message[0]
            if kind == "detected":
                assembler.expect(message[1], message[2])
                self.progress.add(detected=1, faces=message[2])
                if self.imported is not None and "align" not in active_stages(self.settings):
                    self.progress.add(aligned=message[2])
            elif kind == "face":
                assembler.add(message[1], message[2], decode_face(message[3]))
                self.progress.add(masked=1)
            elif kind == "skipped":
                self._skip(assembler, *message[1:])
            elif kind == "started":
                self._started.add(message[1])
                if len(self._started) == len(processes):  # every worker has opened the queues
                    unlink_semaphore_names(all_queues)
            elif kind == "ready":
                logger.info("worker %s ready (pid %d)", message[1], message[2])
                if message[3]:  # planned on a GPU, but its framework does not see one
                    logger.warning(message[3])
                    self.summary.warnings.append(message[3])
            elif kind == "busy":
                self._busy[message[1]] = self._names(message[2])
                if message[1].startswith("align"):
                    self.progress.add(aligned=message[3])
            elif kind == "error":
                raise _worker_failure(message[1], f"on {self._names(message[2])}", message[3])
            elif kind == "stats":
                self._record_stats(message)
            for seq, faces in assembler.pop_ready():
                meta = self._frames.pop(seq)
                if seq in self._dropped:  # the detector could not process it: not written, a resume retries it
                    self._dropped.discard(seq)
                    pool.release(meta.slot)
                    continue
                faces = [face for face in faces if face is not None]  # None: a face a stage skipped
                media = ExtractMedia(meta.name, pool.view(meta.slot, meta.shape), faces, meta.index, meta.source)
                ordered.submit(media, partial(self._written, pool, meta.slot, ordered.writer))

    def _written(self, pool: FramePool, slot: int, writer: FrameWriter) -> None:
        """A frame is on disk: its slot goes back to the loader."""
        pool.release(slot)
        self.progress.add(written=1)
        if self.options.on_frame_written:
            self.options.on_frame_written(writer.counts.frames)

    def _skip(self, assembler: FrameAssembler, seq: int, face_index: int | None, reason: str) -> None:
        """A frame (face_index None) or one face that a stage could not process: one line, counted."""
        name = self._frames[seq].name
        if face_index is None:
            self._dropped.add(seq)
            assembler.expect(seq, 0)
            self.summary.frame_not_processed(name, reason)
        else:
            assembler.add(seq, face_index, None)
            self.summary.face_not_processed(name, face_index, reason)

    def _check_health(self, processes) -> None:
        if self._loader_error is not None:
            raise PipelineError(f"loader failed: {self._loader_error!r}") from self._loader_error
        for label, proc in processes.items():
            if proc.exitcode is not None:
                last = self._busy.get(label, "no frame yet")
                unfinished = sorted(self._frames)
                lost = (f"{len(unfinished)} unfinished frame(s) from {self._frames[unfinished[0]].name} on "
                        "were not written" if unfinished else "no frame was in flight")
                raise PipelineError(f"{label} worker died (exit code {proc.exitcode}); its last batch was "
                                    f"{last}; {lost}")

    def _names(self, seqs: list[int]) -> str:
        names = [self._frames[s].name for s in seqs if s in self._frames]
        return "frame(s) " + ", ".join(names) if names else "no frame (idle or starting)"

    def _record_stats(self, message) -> None:
        _, label, sent, count, busy, _pid = message
        self.summary.bytes_pickled += sent
        self.summary.messages += count
        self.summary.worker_busy_seconds[label] = busy

    # --- endings ---------------------------------------------------------------------------
    def _finish(self, queues, results, processes, plans) -> None:
        """Normal end: a stop marker per worker, collect their stats, join them."""
        for plan in plans:
            queues[plan.stage].put(None)
        waiting = set(processes)
        deadline = time.monotonic() + JOIN_SECONDS * 4
        while waiting and time.monotonic() < deadline:
            try:
                message = results.get(timeout=0.2)
            except queue.Empty:
                waiting = {label for label in waiting if processes[label].exitcode is None}
                continue
            if message[0] == "stats":
                self._record_stats(message)
                waiting.discard(message[1])
            elif message[0] == "error":
                raise _worker_failure(message[1], "while stopping", message[3])
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
        for q in list(queues.values()) + [results]:
            q.cancel_join_thread()
            q.close()


def _worker_failure(label: str, when: str, trace: str) -> PipelineError:
    """One line for the user (the exception itself); the whole traceback goes to the log file."""
    logger.debug("%s worker traceback:\n%s", label, trace)
    last = trace.strip().splitlines()[-1] if trace.strip() else "no detail"
    return PipelineError(f"{label} worker failed {when}: {last} ({traceback_hint()})")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_pool(settings: RunSettings, options: EngineOptions) -> PoolSummary:
    return PoolEngine(settings, options).run()
