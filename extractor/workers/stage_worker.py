"""A stage worker process: take handles from its queue, batch them, run the stage, pass results on.

Started from a fork server (``start``), or with ``spawn``: the worker takes the coordinator's
environment, applies its device plan (visible GPU, memory budget, threads)
before anything imports TensorFlow, then loads its stage's model once. It ignores SIGINT (the
coordinator decides how the run ends) and dies with the coordinator, whatever kills it
(``lifeline``).

It tells the coordinator what happens with the typed messages of ``messages`` (Started, Ready,
Busy, Detected, FaceDone, Skipped, Failed, Stats), and sends it its log records (Logged), at the
levels the coordinator's log takes: a warning of a plugin's load reaches the terminal, and what
the frameworks print at start-up reaches --logfile.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass

from extractor.quiet import native_stderr_to_log, quiet_runtime_loggers
from extractor.workers.devices import WorkerPlan, apply_device_plan
from extractor.workers.frame_pool import PoolAddress, SlotViewer
from extractor.workers.lifeline import die_with_parent
from extractor.workers.limits import first_for_the_oom_killer
from extractor.workers.messages import (Busy, Detected, FaceDone, FaceTask, Failed, FrameRef, Logged, Ready, Skipped,
                                        Started, Stats, decode_face, encode_face, pickled_size, to_wire)
from extractor.workers.start import WorkerEnvironment, leave_fork_server

POLL_SECONDS = 0.5


@dataclass
class WorkerSpec:
    plan: WorkerPlan
    stage_config: object  # StageConfig (imported lazily so spawn stays cheap)
    pool: PoolAddress
    coordinator_pid: int
    environment: WorkerEnvironment  # the coordinator's, taken first (a fork server's may be older)
    linger: float = 0.005
    count_bytes: bool = False
    last: bool = False  # the last stage sends finished faces to the coordinator
    log_level: int = logging.WARNING  # the lowest level the coordinator's log takes (DEBUG with --logfile)


class _Sender:
    """Puts messages on queues, counting pickled bytes when asked (for the benchmark and tests)."""

    def __init__(self, count: bool):
        self.count = count
        self.bytes = 0
        self.messages = 0

    def put(self, target, message) -> None:
        if type(message) is not tuple:  # a typed result message (FaceTasks go as their wire tuple)
            message = to_wire(message)
        if self.count:
            self.bytes += pickled_size(message)
            self.messages += 1
        target.put(message)


class _LogToCoordinator(logging.Handler):
    """The worker's log records, as Logged messages on the result queue."""

    def __init__(self, label: str, result_queue):
        super().__init__()
        self.label, self.result_queue = label, result_queue

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.result_queue.put(to_wire(Logged(self.label, record.levelno, record.name, text)))

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # the queue is gone (the run is ending): nothing to tell


def _log_to_coordinator(label: str, result_queue, level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):  # a fork server's, if any: not ours to write through
        root.removeHandler(handler)
    root.addHandler(_LogToCoordinator(label, result_queue))
    root.setLevel(level)


def _collect(in_queue, batch_size: int, linger: float) -> tuple[list, bool]:
    """Up to ``batch_size`` items (waiting ``linger`` s for stragglers); True when told to stop."""
    first = in_queue.get(timeout=POLL_SECONDS)
    if first is None:
        return [], True
    batch, deadline = [first], time.monotonic() + linger
    while len(batch) < batch_size:
        try:
            item = in_queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


def set_up_frameworks(runtime: str, budget_mb: int | None, gpu_total_mb: int | None,
                      cpu_threads: int | None) -> None:
    """Backend, GPU-memory budget and threads, before any plugin imports its framework (a pool
    worker's and a Ray actor's way to honour --vram).

    The runtime labels (``keras/jax``, ``onnxruntime``, ``dlib``...) say what will run, so only
    frameworks that will really load are set up.
    """
    from extractor.models.backend import limit_gpu_memory, limit_onnxruntime_gpu_memory, prepare_backend

    for label in runtime.split(", "):
        if label.startswith("keras/"):
            backend = label[len("keras/"):]
            prepare_backend(backend, gpu_total_mb, budget_mb)
            limit_gpu_memory(backend, budget_mb, gpu_total_mb, cpu_threads)
        elif label == "onnxruntime":
            limit_onnxruntime_gpu_memory(budget_mb)


def blind_runtimes(runtime_line: str) -> list[str]:
    """The GPU runtimes of a worker's line (e.g. "keras/jax, dlib") that, once its models are
    loaded, see no GPU: each Keras backend asked which devices it lists, ONNX Runtime whether
    its sessions run on CUDA."""
    from extractor.models.backend import gpu_visible

    blind = []
    for runtime in runtime_line.split(", "):
        if runtime.startswith("keras/"):
            sees = gpu_visible(runtime[len("keras/"):])
        elif runtime == "onnxruntime":  # its sessions, not its provider list (see GPU_SESSIONS_ON_CUDA)
            from extractor.models.runners import GPU_SESSIONS_ON_CUDA

            sees = bool(GPU_SESSIONS_ON_CUDA) and all(GPU_SESSIONS_ON_CUDA)
        else:
            continue
        if not sees:
            blind.append(runtime)
    return blind


def gpu_mismatch(plan: WorkerPlan) -> str | None:
    """For a worker planned on a GPU, once its model is loaded: None when each GPU runtime of its
    line lists the GPU it was given, else the line that says which does not (it then runs on the
    CPU: the plan could not know, e.g. a CUDA build without a matching driver)."""
    blind = blind_runtimes(plan.runtime) if plan.gpu is not None else []
    if not blind:
        return None
    return (f"{plan.label} was planned on GPU {plan.gpu}, but {', '.join(blind)} sees no GPU in it: "
            "it runs on the CPU")


def worker_main(spec: WorkerSpec, in_queue, out_queue, result_queue) -> None:
    """Process entry point (must stay importable at module level for spawn)."""
    die_with_parent(spec.coordinator_pid)
    first_for_the_oom_killer()
    leave_fork_server()
    spec.environment.apply()
    _log_to_coordinator(spec.plan.label, result_queue, spec.log_level)
    quiet_runtime_loggers()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    label, stage_name = spec.plan.label, spec.plan.stage
    result_queue.put(to_wire(Started(label, os.getpid())))
    apply_device_plan(spec.plan)
    sender = _Sender(spec.count_bytes)
    seqs: list[int] = []
    try:
        from extractor.stages import build_stage

        stage = build_stage(stage_name, spec.stage_config)
        # The frameworks' start-up lines (TensorFlow's oneDNN note, absl's) go to the log only.
        with native_stderr_to_log("start-up"):  # its lines go home under the worker's label
            plan = spec.plan
            set_up_frameworks(plan.runtime, plan.memory_mb if plan.gpu is not None else None, plan.gpu_total_mb,
                              plan.cpu_threads)
            stage.load()
            mismatch = gpu_mismatch(spec.plan)
        viewer = SlotViewer(spec.pool)
        handle = _detect if stage_name == "detect" else _faces
        result_queue.put(to_wire(Ready(label, os.getpid(), mismatch)))  # control messages are not counted per frame
        busy = 0.0
        while True:
            try:
                batch, stop = _collect(in_queue, stage.batch_size, spec.linger)
            except queue.Empty:
                continue
            if batch:
                batch = [FrameRef(*item) if stage_name == "detect" else FaceTask.from_wire(item) for item in batch]
                seqs = sorted({item.seq if stage_name == "detect" else item.frame.seq for item in batch})
                sender.put(result_queue, Busy(label, seqs, len(batch)))
                start = time.perf_counter()
                handle(stage, viewer, batch, out_queue, result_queue, sender, spec.last)
                busy += time.perf_counter() - start
                seqs = []
            if stop:
                break
        result_queue.put(to_wire(Stats(label, sender.bytes, sender.messages, busy, os.getpid(),
                                       getattr(stage, "outside_size_limits", 0))))
    except BaseException:  # noqa: BLE001 - report every failure, then exit non-zero
        result_queue.put(to_wire(Failed(label, seqs, traceback.format_exc())))
        raise SystemExit(1) from None


def _pixels(viewer, ref: FrameRef):
    return viewer.view(ref.slot, ref.shape, ref.slot_bytes)


def _detect(stage, viewer, batch: list[FrameRef], out_queue, result_queue, sender, last: bool) -> None:
    """Detect, then send each frame's face count home and its faces on; a frame the detector
    fails on goes home as skipped (with why) instead of stopping the run."""
    from extractor.stages import run_on_frames

    result = run_on_frames(stage, [_pixels(viewer, ref) for ref in batch], None,
                           [ref.index for ref in batch])
    for position, (ref, faces) in enumerate(zip(batch, result.faces)):
        if position in result.frame_failures:
            sender.put(result_queue, Skipped(ref.seq, None, result.frame_failures[position]))
            continue
        sender.put(result_queue, Detected(ref.seq, len(faces)))
        for face_index, face in faces.items():
            sender.put(out_queue, FaceTask(ref, face_index, encode_face(face)).to_wire())


def _faces(stage, viewer, batch: list[FaceTask], out_queue, result_queue, sender, last: bool) -> None:
    """A face stage (align, mask, identity) over the batch's faces, grouped by frame: each face
    passes on, or home if this is the last stage; a face the plugin fails on goes home as
    skipped (with why)."""
    from extractor.stages import run_on_frames

    frames = {task.frame.seq: task.frame for task in batch}
    order = list(frames)
    position_of = {seq: position for position, seq in enumerate(order)}
    faces = [{} for _ in order]
    for task in batch:
        faces[position_of[task.frame.seq]][task.face_index] = decode_face(task.face)
    result = run_on_frames(stage, [_pixels(viewer, frames[seq]) for seq in order], faces,
                           [frames[seq].index for seq in order])
    for position, face_index, why in result.face_failures:
        sender.put(result_queue, Skipped(order[position], face_index, why))
    for position, done in enumerate(result.faces):
        frame = frames[order[position]]
        for face_index, face in done.items():
            face.detector_points = None  # a hint for the aligner only: not sent further
            if last:
                sender.put(result_queue, FaceDone(frame.seq, face_index, encode_face(face)))
            else:
                sender.put(out_queue, FaceTask(frame, face_index, encode_face(face)).to_wire())
