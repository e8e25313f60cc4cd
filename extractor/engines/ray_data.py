"""The Ray Data engine: the same plugins, unchanged, as ``map_batches`` stages on a Ray cluster.

    read (tasks)          detect, align, mask (actor pools)        prepare (tasks)        driver
    images / frame  ───►  one actor per worker flag, each     ───►  record + face PNG ───►  writes in
    ranges of a video     loading its plugin once                   bytes                   input order

- Reading: an image folder is one row per file; a video is cut into ranges of frames that tasks
  decode in parallel (each seeks to its first frame), so a long video is read by many nodes.
- Frames travel as numpy arrays through Ray's object store (zero-copy on a node); faces as the
  pool's compact encoding. There is no shared-memory code of ours here.
- Each model stage is an actor pool (``concurrency`` = the stage's worker flag) whose actors
  Ray restarts if they die, retrying their batch: a killed actor loses no frame, and the driver
  writes each frame once, in input order (``preserve_order``).
- Outputs: the last stage (tasks) turns each frame into its alignments record and its face PNG
  bytes (``FramePreparer``, the same code the other engines write with); the driver, the only
  writer, writes them with ``FrameWriter``. So a cluster needs no shared file system, the
  alignments file stays append-only and in order, and --skip-existing, the lock and the
  refusals behave exactly as in the pool. What crosses the network to the driver is the PNG
  bytes (about 280 kB per 512 px face), which is where a big cluster's bottleneck moves.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import time

import numpy as np

from extractor.media import ExtractMedia
from extractor.output import FramePreparer, PreparedFrame
from extractor.progress import Progress
from extractor.run_settings import (EngineOptions, RunSettings, RunSummary, face_not_processed_line,
                                    frame_not_processed_line)
from extractor.sources import InputSource, SkippedInput, read_image, video_timeline
from extractor.workers.messages import decode_face, encode_face

logger = logging.getLogger(__name__)

VIDEO_RANGE = 32  # frames per read task of a video
FACE_BATCH_FRAMES = 8  # frames per align/mask batch (their faces run as one plugin batch)


class RayEngineError(Exception):
    """Ray is missing, cannot start or join the cluster, or the run asks for what this engine lacks."""


# --- reading -----------------------------------------------------------------------------------

ROW_COLUMNS = ("key", "index", "source", "problem", "warning", "image", "faces")


def _empty_row(key: str, index: int, source: str, problem: str = "", image=None) -> dict:
    return {"key": key, "index": index, "source": source, "problem": problem, "warning": "",
            "image": np.zeros((0, 0, 3), np.uint8) if image is None else image, "faces": b""}


def read_units(batch: dict, max_pixels: int, every_n: int, done: frozenset) -> dict:
    """Decode a batch of read units (an image file, or a range of video frames) into frame rows."""
    rows: list[dict] = []
    for kind, path, key, start, stop, first_pts, end_pts in zip(
            batch["kind"], batch["path"], batch["key"], batch["start"], batch["stop"], batch["first_pts"],
            batch["end_pts"]):
        if kind == "image":
            try:
                image, warning = read_image(path, max_pixels)
            except Exception as exc:  # noqa: BLE001 - InputError and anything a decoder raises
                rows.append(_empty_row(key, int(start), path, str(exc)))
                continue
            row = _empty_row(key, int(start), path, image=image)
            row["warning"] = warning or ""
            rows.append(row)
        else:
            bounds = (int(first_pts), None if end_pts < 0 else int(end_pts))
            for item in InputSource(path, every_n, max_pixels, done).video_frames(int(start), int(stop), bounds):
                rows.append(_empty_row(item.source, int(start), item.source, item.reason)
                            if isinstance(item, SkippedInput) else
                            _empty_row(item.filename, item.frame_index, item.source, image=item.image))
    return {column: [row[column] for row in rows] for column in ROW_COLUMNS}


def read_plan(settings: RunSettings, source: InputSource) -> tuple[list[dict], list[SkippedInput]]:
    """The read units of the input: one per image, or one per range of ``VIDEO_RANGE`` frames."""
    if not source.is_video:
        return [{"kind": "image", "path": str(path), "key": key, "start": index, "stop": index + 1,
                 "first_pts": -1, "end_pts": -1} for index, path, key in source.wanted_images()], \
            source.listing_problems()
    try:
        timeline = video_timeline(source.path)
    except Exception as exc:  # noqa: BLE001 - PyAV's errors and a file that is not a video
        return [], [SkippedInput(str(source.path), f"{source.path}: cannot open video ({exc})")]
    if not timeline:
        return [], [SkippedInput(str(source.path), f"{source.path}: no video frame in it")]
    count = len(timeline)
    return [{"kind": "video", "path": str(source.path), "key": "", "start": start,
             "stop": min(count, start + VIDEO_RANGE), "first_pts": timeline[start],
             "end_pts": timeline[start + VIDEO_RANGE] if start + VIDEO_RANGE < count else -1}
            for start in range(0, count, VIDEO_RANGE)], []


# --- model stages (actors) ---------------------------------------------------------------------

class StageActor:
    """One model stage (detect, align, mask or identity) in a Ray actor: loads its plugin once,
    then maps batches of frame rows, as Ray Data's callable classes do."""

    def __init__(self, stage_name: str, config, backend: str | None):
        from extractor.quiet import quiet_runtime_loggers
        from extractor.stages import AlignStage, DetectStage, IdentityStage, MaskStage

        quiet_runtime_loggers()
        if backend:
            from extractor.models.backend import use_backend

            use_backend(backend)
        self.detect = stage_name == "detect"
        self.stage = {"detect": DetectStage, "align": AlignStage, "mask": MaskStage,
                      "identity": IdentityStage}[stage_name](config)
        self.stage.load()

    def __call__(self, batch: dict) -> dict:
        """The stage over the batch's frames; a frame the detector fails on gets a ``problem`` (not
        written), a face a stage fails on is dropped with a line in the frame's ``warning``."""
        usable = [i for i, problem in enumerate(batch["problem"]) if not problem]
        images = [batch["image"][i] for i in usable]
        faces, problems, warnings = list(batch["faces"]), list(batch["problem"]), list(batch["warning"])
        if self.detect:
            found, failures = self.stage.run_isolated(images)
            for position, (i, frame_faces) in enumerate(zip(usable, found)):
                if position in failures:
                    problems[i] = frame_not_processed_line(batch["key"][i], failures[position])
                else:
                    faces[i] = pickle.dumps([encode_face(face) for face in frame_faces])
        else:
            per_frame = [[decode_face(f) for f in pickle.loads(faces[i])] for i in usable]
            owners = [(i, index) for i, frame_faces in zip(usable, per_frame) for index in range(len(frame_faces))]
            flat_images = [batch["image"][i] for i, _ in owners]
            done, failures = self.stage.run_isolated(flat_images, [f for frame_faces in per_frame for f in frame_faces])
            kept: dict[int, list] = {i: [] for i in usable}
            for position, ((i, index), face) in enumerate(zip(owners, done)):
                if position in failures:
                    line = face_not_processed_line(batch["key"][i], index, failures[position])
                    warnings[i] = "\n".join(filter(None, [warnings[i], line]))
                else:
                    kept[i].append(encode_face(face))
            for i in usable:
                faces[i] = pickle.dumps(kept[i])
        batch["faces"], batch["problem"], batch["warning"] = faces, problems, warnings
        return batch


# --- prepare (tasks) ---------------------------------------------------------------------------

def prepare_frames(batch: dict, preparer: FramePreparer) -> dict:
    """Each frame's record and face PNG bytes (``FramePreparer``); the pixels stay behind."""
    records, pngs, filtered, previews = [], [], [], []
    for i, problem in enumerate(batch["problem"]):
        if problem:
            records.append("")
            pngs.append(b"")
            filtered.append(0)
            previews.append(b"")
            continue
        faces = [decode_face(f) for f in pickle.loads(batch["faces"][i])]
        media = ExtractMedia(batch["key"][i], batch["image"][i], faces, int(batch["index"][i]), batch["source"][i])
        prepared = preparer.prepare(media)
        records.append(json.dumps(prepared.record))
        pngs.append(pickle.dumps(prepared.pngs))
        filtered.append(prepared.filtered_out)
        previews.append(pickle.dumps(prepared.previews) if prepared.previews else b"")
    return {"key": batch["key"], "problem": batch["problem"], "warning": batch["warning"], "record": records,
            "pngs": pngs, "filtered": filtered, "previews": previews}


# --- the run -----------------------------------------------------------------------------------

def _connect(address: str | None) -> bool:
    """Join ``address`` (``auto`` or ``HOST:PORT``) or start a local instance sized to this
    machine; True when this run started Ray (and so shuts it down)."""
    try:
        import ray
    except ImportError:
        raise RayEngineError("--engine ray needs Ray: pip install 'extractor[ray]'") from None
    if ray.is_initialized():
        return False
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    logging.getLogger("ray").setLevel(logging.ERROR)
    quiet = {"runtime_env": env, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError from ray.init
        raise RayEngineError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                             f"{exc}") from None
    return True


def gpu_memory_mb(options: EngineOptions) -> int:
    """Memory of one GPU, to turn budgets into Ray's GPU fractions: as given, else the smallest
    GPU nvidia-smi lists on this machine (the driver's: the cluster's nodes are taken to hold the
    same kind), else 16,000 MB."""
    if options.gpu_memory_mb:
        return options.gpu_memory_mb
    from extractor.workers.devices import detect_gpus

    gpus = detect_gpus()
    return min(g.total_mb for g in gpus) if gpus else 16_000


def _stage_resources(stage: str, settings: RunSettings, options: EngineOptions, gpus: float,
                     cpu_share: float) -> dict:
    """Actor pool size and resources of a model stage, from its worker flag and its plugins'
    declared device need (a GPU fraction from the budget when the cluster has GPUs)."""
    import ray

    from extractor.plugins import registry

    config = settings.stages
    classes = [registry.get_plugin_class(stage, name) for name in config.plugin_names(stage)]
    need_mb = sum(cls.batch_vram_mb(config.batch_sizes.get(stage)) for cls in classes if cls.device_need.gpu)
    # Ray Data restarts a dead actor and retries its batch (max_restarts / max_task_retries -1 by default).
    resources = {"compute": ray.data.ActorPoolStrategy(size=options.workers.get(stage) or 1), "num_cpus": cpu_share}
    if gpus and need_mb:
        budget = options.vram_mb.get(stage) or need_mb
        resources["num_gpus"] = min(1.0, budget / gpu_memory_mb(options))
    return resources


def run_ray(settings: RunSettings, options: EngineOptions) -> RunSummary:
    """Extract every frame on a Ray cluster (``options.ray_address``, or a local instance)."""
    if settings.import_alignments is not None:
        raise RayEngineError("--import-alignments is not supported by --engine ray yet: use --engine pool")
    summary = RunSummary()
    start = time.perf_counter()
    source, writer, _ = settings.open_input_and_output(summary)
    started = False
    try:
        started = _connect(options.ray_address)
        _run(settings, options, source, writer, summary)
    finally:
        writer.close()
        if started:
            import ray

            ray.shutdown()
    summary.take_counts(writer)
    summary.seconds = time.perf_counter() - start
    return summary


def _run(settings: RunSettings, options: EngineOptions, source, writer, summary: RunSummary) -> None:
    import ray

    units, skipped = read_plan(settings, source)
    for item in skipped:
        summary.admit(item)
    if not units:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the driver writes frames in input order
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    gpus = ray.cluster_resources().get("GPU", 0)
    stages = ("detect", "align", "mask") + (("identity",) if settings.stages.identity else ())
    actors = sum(options.workers.get(stage) or 1 for stage in stages)
    cpus = ray.cluster_resources().get("CPU", 1)
    # Every actor must fit at once (a pool waiting for a CPU would stall the stream), with one CPU
    # left for the read and prepare tasks; on a cluster with CPUs to spare each actor gets one.
    cpu_share = 1.0 if cpus >= actors + 1 else max(0.05, (cpus - 1) / actors if cpus > 1 else cpus / (actors + 1))
    reading = {"max_pixels": settings.max_pixels, "every_n": settings.every_n, "done": frozenset(source.done)}
    dataset = ray.data.from_items(units, override_num_blocks=len(units)).map_batches(
        read_units, batch_size=1, num_cpus=min(1.0, cpu_share), fn_kwargs=reading)
    for stage in stages:
        dataset = dataset.map_batches(
            StageActor, fn_constructor_args=(stage, settings.stages, settings.stages.backend),
            batch_size=settings.stages.batch_size("detect") if stage == "detect" else FACE_BATCH_FRAMES,
            **_stage_resources(stage, settings, options, gpus, cpu_share))
    preparer = FramePreparer(settings.output, writer.face_names, settings.face_filter,
                             want_previews=writer.preview is not None)
    dataset = dataset.map_batches(prepare_frames, batch_size=FACE_BATCH_FRAMES, num_cpus=min(1.0, cpu_share),
                                  fn_kwargs={"preparer": preparer})
    progress = Progress(source.estimate_frames(), enabled=settings.show_progress)
    try:
        for row in dataset.iter_rows():
            if row["problem"]:
                summary.admit(SkippedInput(row["key"], row["problem"]))
                continue
            for line in filter(None, row["warning"].split("\n")):
                logger.warning(line)
                summary.warnings.append(line)
            previews = pickle.loads(row["previews"]) if row["previews"] else []
            writer.commit(PreparedFrame(json.loads(row["record"]), pickle.loads(row["pngs"]), int(row["filtered"]),
                                        previews))
            progress.add(written=1)
            if options.on_frame_written:
                options.on_frame_written(writer.counts.frames)
    finally:
        progress.close()
        summary.peak_rss = progress.peak_rss
