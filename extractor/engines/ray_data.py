"""The Ray Data engine: the same plugins, unchanged, as ``map_batches`` stages on a Ray cluster.

    read (tasks)          detect | align + mask (actor pools)      prepare (tasks)        driver
    images / frame  ───►  actors by the worker flags, each    ───►  record + face PNG ───►  writes in
    ranges of a video     loading its plugins once                  bytes                   input order

- Reading: an image folder is one row per file; a video is cut into ranges of frames that tasks
  decode in parallel (each seeks to its first frame), so a long video is read by many nodes.
- Frames travel as numpy arrays through Ray's object store (zero-copy on a node); faces as the
  pool's compact encoding. There is no shared-memory code of ours here.
- The stages are the run's ``Pipeline`` (``extractor/pipeline.py``), as for the pool: detection
  is an actor pool of its worker count; the face stages that run on the CPU share one actor pool
  (the most workers any of them has), so a batch crosses the object store once for them all.
  Each runs its plugins in batches of the stage's batch size under the stage's GPU budget
  (--vram, as a GPU fraction of the GPU's real memory, and enforced in the actor as a pool
  worker enforces it). Ray restarts an actor that
  dies and retries its batch: a killed actor loses no frame, and the driver writes each frame
  once, in input order (``preserve_order``).
- Imported faces (--import-alignments) ride in their frame's row from the read task on, and skip
  detection (and alignment, unless --realign). Reference images of --filter/--nfilter go through
  the same stage actors first, as a small dataset of their own.
- Outputs: the last stage (tasks) turns each frame into its alignments record and its face PNG
  bytes (``FramePreparer``, the same code the other engines write with); the driver, the only
  writer, writes them with ``FrameWriter``. So the outputs need no shared file system (nor
  the input: where a node lacks it, the driver's node reads it all, ``where_to_read``), the
  alignments file stays append-only and in order, and --skip-existing, the lock and the
  refusals behave exactly as in the pool. What crosses the network to the driver is the PNG
  bytes (about 280 kB per 512 px face), which is where a big cluster's bottleneck moves.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import time
from dataclasses import replace

import numpy as np

from extractor.workers.devices import CUDA_CONTEXT_MB

from extractor.media import ExtractMedia
from extractor.output import FramePreparer, PreparedFrame
from extractor.pipeline import REFERENCE_STAGES, Pipeline, StageSpec, build_pipeline, frame_stages
from extractor.progress import Progress
from extractor.run_settings import (EngineOptions, RunSettings, RunSummary, face_not_processed_line,
                                    frame_not_processed_line)
from extractor.images import InputError, read_image
from extractor.orientation import exif_orientation
from extractor.sources import InputSource, SkippedInput, seekable_timeline
from extractor.stop_signals import catch_stop_signals
from extractor.stop_signals import restore as restore_handlers
from extractor.workers.messages import decode_face, encode_face
from extractor.engines.pool import PipelineError
from extractor.quiet import library_log_to_file
from extractor.engines.ray_cluster import (RAY_NATIVE_LINE, HeadWatch, RayEngineError, StallWatch, connected,
                                          not_on_this_node, problem_of, ray_error, where_to_read, worker_failure)

logger = logging.getLogger(__name__)

VIDEO_RANGE = 32  # frames per read task of a video
PREPARE_BATCH_FRAMES = 8  # frames per prepare task (records and face PNGs)


# --- reading -----------------------------------------------------------------------------------

ROW_COLUMNS = ("key", "index", "time", "source", "orientation", "problem", "warning", "image", "faces", "outside",
               "log")


def _empty_row(key: str, index: int, source: str, problem: str = "", image=None, warning: str = "",
               frame_time: float | None = None) -> dict:
    return {"key": key, "index": index,
            "time": math.nan if frame_time is None else frame_time,  # a video frame's, in seconds (NaN: a photo)
            "source": source, "orientation": 1, "problem": problem, "warning": warning,
            "image": np.zeros((0, 0, 3), np.uint8) if image is None else image, "faces": b"",
            "outside": 0,  # faces the detector found outside --min-size/--max-size
            "log": b""}  # an actor's start-up log records (pickled), for the driver's --logfile


def encode_faces(faces: dict) -> bytes:
    """A row's faces (index -> face) as one bytes column."""
    return pickle.dumps({index: encode_face(face) for index, face in faces.items()})


def decode_faces(data: bytes) -> dict:
    return {index: decode_face(face) for index, face in pickle.loads(data).items()} if data else {}


def read_units(batch: dict, max_pixels: int, every_n: int, done: frozenset, imported: dict | None = None,
               driver_node: str = "", driver_folder: str = ""):
    """Decode a batch of read units (an image file, or a range of video frames) into frame rows,
    yielded ``VIDEO_RANGE`` frames at a time (a unit may be a whole video: see ``read_plan``);
    ``imported``: the faces of an imported .fsa by frame key (encoded), put in their rows;
    ``driver_node``: the Ray node id of the driver, which listed the files (another node
    without one of them is named: see ``ray_cluster.NOT_ON_NODE``); ``driver_folder``: its working folder,
    where a relative input path starts (a node's own is another): a frame's source is that whole
    path, as the other engines record it; a problem names the path as given."""
    import ray

    elsewhere = bool(driver_node) and ray.get_runtime_context().get_node_id() != driver_node
    rows: list[dict] = []
    for kind, path, key, start, stop, first_pts, end_pts in zip(
            batch["kind"], batch["path"], batch["key"], batch["start"], batch["stop"], batch["first_pts"],
            batch["end_pts"]):
        readable = os.path.join(driver_folder, path)
        if elsewhere and not os.path.exists(readable):  # listed by the driver, not here: a node without the input
            rows.append(_empty_row(key, int(start), path, not_on_this_node(readable)))
            continue
        if kind == "image":
            try:
                image, warning = read_image(readable, max_pixels)
            except Exception as exc:  # noqa: BLE001 - InputError and anything a decoder raises
                rows.append(_empty_row(key, int(start), path, str(exc)))
                continue
            row = _empty_row(key, int(start), readable, image=image, warning=warning or "")
            row["orientation"] = exif_orientation(readable)  # the prepare task's node may not have the file
            rows.append(row)
            continue
        source = InputSource(readable, every_n, max_pixels, done)
        if first_pts < 0:  # the whole video, read through (its time stamps do not allow seeking)
            frames = source.video_frames()
        else:
            frames = source.video_frames(int(start), int(stop), (int(first_pts), None if end_pts < 0 else int(end_pts)))
        for item in frames:
            rows.append(_empty_row(path, int(start), path, item.reason.replace(readable, path))
                        if isinstance(item, SkippedInput) else
                        _empty_row(item.filename, item.frame_index, item.source, image=item.image,
                                   warning=(item.warning or "").replace(readable, path), frame_time=item.time))
            if len(rows) == VIDEO_RANGE:
                yield _columns(rows, imported)
                rows = []
    if rows:
        yield _columns(rows, imported)


def _columns(rows: list[dict], imported: dict | None) -> dict:
    if imported is not None:
        for row in rows:
            row["faces"] = pickle.dumps(dict(enumerate(imported.get(row["key"], []))))
    return {column: [row[column] for row in rows] for column in ROW_COLUMNS}


def read_plan(settings: RunSettings, source: InputSource) -> tuple[list[dict], list[SkippedInput]]:
    """The read units of the input: one per image, or one per range of ``VIDEO_RANGE`` frames."""
    if not source.is_video:
        return [{"kind": "image", "path": str(path), "key": key, "start": index, "stop": index + 1,
                 "first_pts": -1, "end_pts": -1} for index, path, key in source.wanted_images()], \
            source.listing_problems()
    try:
        timeline = seekable_timeline(source.path)
    except InputError as exc:
        return [], [SkippedInput(str(source.path), str(exc))]
    except Exception as exc:  # noqa: BLE001 - PyAV's errors and a file that is not a video
        return [], [SkippedInput(str(source.path), f"{source.path}: cannot open video ({exc})")]
    if timeline is None:  # joined clips, a restarted clock: one reader, through the whole video, in order
        logger.warning("%s: its time stamps are not one timeline a seek can use (joined clips, a restarted "
                       "clock, a raw stream): read by one task, from start to end", source.path)
        return [{"kind": "video", "path": str(source.path), "key": "", "start": 0, "stop": -1, "first_pts": -1,
                 "end_pts": -1}], []
    if not timeline:
        return [], [SkippedInput(str(source.path), f"{source.path}: no video frame in it")]
    count = len(timeline)
    every = settings.stages.track_every
    frames = -(-VIDEO_RANGE // every) * every if every else VIDEO_RANGE  # whole tracking ranges per unit
    return [{"kind": "video", "path": str(source.path), "key": "", "start": start,
             "stop": min(count, start + frames), "first_pts": timeline[start],
             "end_pts": timeline[start + frames] if start + frames < count else -1}
            for start in range(0, count, frames)], []


# --- model stages (actors) ---------------------------------------------------------------------

def actor_groups(pipeline: Pipeline, stages: tuple[str, ...]) -> list[tuple[StageSpec, ...]]:
    """The model stages as Ray actor pools, in order: detection alone; the face stages after it
    that run on the CPU together in one actor (a batch then crosses the object store once for
    all of them, not once per stage); a stage on a GPU alone, under its own budget."""
    groups: list[tuple[StageSpec, ...]] = []
    for spec in (pipeline.spec(stage) for stage in stages):
        last = groups[-1][-1] if groups else None
        if last is not None and "detect" not in (last.stage, spec.stage) and not last.on_gpu and not spec.on_gpu:
            groups[-1] += (spec,)
        else:
            groups.append((spec,))
    return groups


class StageActor:
    """Model stages (detect; or align, mask, identity on the CPU, one after the other) in a Ray
    actor: sets up each one's runtime under its GPU budget, loads its plugins once, then maps
    batches of frame rows, as Ray Data's callable classes do."""

    def __init__(self, specs: tuple[StageSpec, ...], config, gpu_total_mb: int | None,
                 cpu_threads: int | None = None):
        from extractor.quiet import native_stderr_to_log, quiet_runtime_loggers, records_kept
        from extractor.stages import build_stage
        from extractor.workers.stage_worker import blind_runtimes, set_up_frameworks

        quiet_runtime_loggers()
        if cpu_threads:  # Ray sets one thread for an actor holding part of a CPU; the plan's count instead
            import cv2

            os.environ["OMP_NUM_THREADS"] = str(cpu_threads)
            cv2.setNumThreads(cpu_threads)
        self.stages, self.start_up_warnings, self.start_up_log = [], [], []
        for spec in specs:
            # Its log records go to the driver with its first frames: warnings (a plugin's load) to
            # the terminal and the summary, the rest (the frameworks' start-up lines) to --logfile.
            with records_kept(logging.DEBUG) as said, native_stderr_to_log("start-up"):
                set_up_frameworks(spec.runtime, spec.gpu_mb, gpu_total_mb if spec.on_gpu else None, cpu_threads)
                stage = build_stage(spec.stage, spec.config(config, spec.on_gpu))
                stage.load()
                blind = blind_runtimes(spec.runtime) if spec.on_gpu else []
            self.start_up_warnings += [record.getMessage() for record in said if record.levelno >= logging.WARNING]
            self.start_up_log += [(record.levelno, record.name, f"{spec.stage} actor: {record.getMessage()}")
                                  for record in said if record.levelno < logging.WARNING]
            if blind:  # said once, with the actor's first frames (as a pool worker says it when ready)
                self.start_up_warnings.append(f"a {spec.stage} actor was given a GPU by Ray, but "
                                              f"{', '.join(blind)} sees no GPU in it: it runs on the CPU")
            self.stages.append(stage)

    def __call__(self, batch: dict) -> dict:
        for stage in self.stages:
            batch = self._run(stage, batch)
        if self.start_up_warnings and len(batch["warning"]):
            warnings = list(batch["warning"])
            warnings[0] = "\n".join(filter(None, [*self.start_up_warnings, warnings[0]]))
            batch["warning"], self.start_up_warnings = warnings, []
        if self.start_up_log and len(batch["log"]):
            log = list(batch["log"])
            log[0] = pickle.dumps((pickle.loads(log[0]) if log[0] else []) + self.start_up_log)  # after earlier actors'
            batch["log"], self.start_up_log = log, []
        return batch

    @staticmethod
    def _run(stage, batch: dict) -> dict:
        """One stage over the batch's frames (``run_on_frames``, as every engine): a frame the
        detector fails on gets a ``problem`` (not written), a face a stage fails on is dropped with
        a line in the frame's ``warning``."""
        from extractor.stages import run_on_frames

        usable = [i for i, problem in enumerate(batch["problem"]) if not problem]
        images = [batch["image"][i] for i in usable]
        faces, problems, warnings = list(batch["faces"]), list(batch["problem"]), list(batch["warning"])
        if stage.name == "detect":
            before = stage.outside_size_limits
            result = run_on_frames(stage, images, None, [int(batch["index"][i]) for i in usable])
            outside = list(batch["outside"])
            if outside:  # the batch's count rides in its first row
                outside[0] += stage.outside_size_limits - before
            batch["outside"] = outside
        else:
            result = run_on_frames(stage, images, [decode_faces(faces[i]) for i in usable])
        for position, i in enumerate(usable):
            if position in result.frame_failures:
                problems[i] = frame_not_processed_line(batch["key"][i], result.frame_failures[position])
            faces[i] = encode_faces(result.faces[position])
        for position, face_index, why in result.face_failures:
            i = usable[position]
            line = face_not_processed_line(batch["key"][i], face_index, why)
            warnings[i] = "\n".join(filter(None, [warnings[i], line]))
        batch["faces"], batch["problem"], batch["warning"] = faces, problems, warnings
        return batch


# --- prepare (tasks) ---------------------------------------------------------------------------

def prepare_frames(batch: dict, preparer: FramePreparer) -> dict:
    """Each frame's record and face PNG bytes (``FramePreparer``); the pixels stay behind."""
    records, pngs, filtered, low_quality, previews = [], [], [], [], []
    for i, problem in enumerate(batch["problem"]):
        if problem:
            records.append("")
            pngs.append(b"")
            filtered.append(0)
            low_quality.append(0)
            previews.append(b"")
            continue
        done = decode_faces(batch["faces"][i])
        faces = [done[index] for index in sorted(done)]
        media = ExtractMedia(batch["key"][i], batch["image"][i], faces, int(batch["index"][i]), batch["source"][i],
                             orientation=int(batch["orientation"][i]))
        prepared = preparer.prepare(media)
        records.append(json.dumps(prepared.record))
        pngs.append(pickle.dumps(prepared.pngs))
        filtered.append(prepared.filtered_out)
        low_quality.append(prepared.low_quality)
        previews.append(pickle.dumps(prepared.previews) if prepared.previews else b"")
    return {"key": batch["key"], "problem": batch["problem"], "warning": batch["warning"], "record": records,
            "pngs": pngs, "filtered": filtered, "low_quality": low_quality, "previews": previews,
            "outside": batch["outside"], "log": batch["log"]}


# --- the run -----------------------------------------------------------------------------------

def gpu_memory_mb(options: EngineOptions) -> int:
    """Memory of one GPU, to turn budgets into Ray's GPU fractions: as given, else the smallest
    GPU nvidia-smi lists on this machine (the driver's: the cluster's nodes are taken to hold the
    same kind), else 16,000 MB."""
    if options.gpu_memory_mb:
        return options.gpu_memory_mb
    from extractor.workers.devices import detect_gpus

    gpus = detect_gpus()
    return min(g.total_mb for g in gpus) if gpus else 16_000


def _actor_resources(group: tuple[StageSpec, ...], options: EngineOptions, cpu_share: float) -> dict:
    """Actor pool size and resources of a group of model stages: the most workers any of them
    has, and on a GPU the fraction of one that its budget is."""
    import ray

    # Ray Data restarts a dead actor and retries its batch (max_restarts / max_task_retries -1 by default).
    resources = {"compute": ray.data.ActorPoolStrategy(size=max(spec.workers for spec in group)),
                 "num_cpus": cpu_share}
    gpu_mb = sum(spec.gpu_mb for spec in group if spec.on_gpu)
    if gpu_mb:
        resources["num_gpus"] = min(1.0, (gpu_mb + CUDA_CONTEXT_MB) / gpu_memory_mb(options))
    return resources


def _plan(settings: RunSettings, options: EngineOptions) -> Pipeline:
    """The run's pipeline on the cluster's GPUs (their count from Ray, their memory and runtimes
    taken to be this machine's, as the nodes run the same install)."""
    import ray

    from extractor.workers.devices import GpuInfo, selected_gpus
    from extractor.workers.gpu_support import gpu_capable_runtimes

    count = int(ray.cluster_resources().get("GPU", 0))
    memory = gpu_memory_mb(options) if count else 0
    gpus = selected_gpus([GpuInfo(i, "ray", memory, memory) for i in range(count)], options.gpus,
                         options.exclude_gpus, where="the Ray cluster has")
    capable = options.gpu_runtimes if options.gpu_runtimes is not None else (gpu_capable_runtimes() if gpus else set())
    pipeline = build_pipeline(settings, options, gpus, capable)
    for note in pipeline.notes:
        logger.info("plan: %s", note)
    return pipeline


def run_ray(settings: RunSettings, options: EngineOptions) -> RunSummary:
    """Extract every frame on a Ray cluster (``options.ray_address``, or a local instance)."""
    summary = RunSummary()
    start = time.perf_counter()
    source, writer, imported = settings.open_input_and_output(summary)
    ray_handlers: dict = {}
    try:
        with connected(options.ray_address):
            # A stop signal takes every engine's Ctrl-C path here too (``stop_signals``).
            ray_handlers = catch_stop_signals()
            from extractor.quiet import native_lines_to_log, python_warnings_to_log

            # Ray's own lines and its Python warnings: to the log, not the terminal.
            with native_lines_to_log(RAY_NATIVE_LINE, "ray"), python_warnings_to_log("ray"), HeadWatch(), \
                    StallWatch(options.stall_seconds) as stall:
                try:
                    _run(settings, options, source, writer, summary, imported, stall)
                except KeyboardInterrupt:
                    if stall.reason:  # the watch's interrupt, not the user's
                        raise RayEngineError(stall.reason) from None
                    raise
                except ray_error() as exc:
                    logger.debug("Ray's error: %s", exc)
                    raise PipelineError(worker_failure(exc)) from None
    finally:
        restore_handlers(ray_handlers)
        writer.close()
    summary.take_counts(writer)
    summary.seconds = time.perf_counter() - start
    return summary


def _cpu_share(groups: list[tuple[StageSpec, ...]]) -> float:
    """CPUs an actor asks for: every actor must fit at once (a pool waiting for a CPU would stall
    the stream), with one CPU left for the read and prepare tasks; on a cluster with CPUs to spare
    each actor gets one."""
    import ray

    actors = sum(max(spec.workers for spec in group) for group in groups)
    cpus = ray.cluster_resources().get("CPU", 1)
    return 1.0 if cpus >= actors + 1 else max(0.05, (cpus - 1) / actors if cpus > 1 else cpus / (actors + 1))


def _task_share(cpu_share: float) -> float:
    """CPUs a read or prepare task asks for. Where actors hold fractions of CPUs, what a node has
    left can be as little as one CPU less one actor's share (three one-CPU nodes, three actors of
    0.67: 0.33 left on each, and a task asking 0.67 would never be placed)."""
    return 1.0 if cpu_share >= 1.0 else max(0.05, min(cpu_share, 1.0 - cpu_share))


def _actor_threads(group: tuple[StageSpec, ...], groups: list[tuple[StageSpec, ...]], cpu_share: float) -> int | None:
    """Threads of a heavy stage's actor where actors hold parts of CPUs (a small machine): as in
    the pool's plan, the heavy actors share a node's cores (Ray would give each one thread: the
    detector then ran at half speed on 2 cores). None: Ray's own (one a CPU asked for)."""
    import ray

    if cpu_share >= 1.0 or not any(spec.heavy and not spec.on_gpu for spec in group):
        return None
    cores = min((node["Resources"].get("CPU", 1) for node in ray.nodes() if node["Alive"]), default=1)
    heavy = sum(max(spec.workers for spec in other) for other in groups
                if any(spec.heavy and not spec.on_gpu for spec in other))
    return max(1, int(cores) // max(1, heavy))


def _through_stages(dataset, pipeline: Pipeline, stages: tuple[str, ...], settings: RunSettings,
                    options: EngineOptions, cpu_share: float):
    """``dataset``'s frame rows through the model stages' actor pools, in batches of the detect
    stage's frames (each plugin then runs its own batch size)."""
    frames = pipeline.spec("detect").batch_size if "detect" in pipeline.names else settings.stages.batch_size("detect")
    if settings.stages.track_every and "detect" in stages:
        frames = settings.stages.track_every  # a tracking range in one batch: one actor follows its faces
    total = gpu_memory_mb(options) if any(pipeline.spec(stage).on_gpu for stage in stages) else None
    groups = actor_groups(pipeline, stages)
    for group in groups:
        dataset = dataset.map_batches(StageActor,
                                      fn_constructor_args=(group, settings.stages, total,
                                                           _actor_threads(group, groups, cpu_share)),
                                      batch_size=frames, **_actor_resources(group, options, cpu_share))
    return dataset


def _embed_references(settings: RunSettings, options: EngineOptions, pipeline: Pipeline, cpu_share: float) -> None:
    """The --filter/--nfilter reference images through detect, align and identity actors first."""
    import ray

    face_filter = settings.face_filter
    settings = replace(settings, stages=settings.stages.for_photos())  # photos, as they are
    units = [{"kind": "image", "path": str(path), "key": str(position), "start": position, "stop": position + 1,
              "first_pts": -1, "end_pts": -1} for position, path in enumerate(face_filter.references)]
    dataset = ray.data.from_items(units, override_num_blocks=len(units)).map_batches(
        read_units, batch_size=1, num_cpus=_task_share(cpu_share),
        fn_kwargs={"max_pixels": settings.max_pixels, "every_n": 1, "done": frozenset(), "driver_folder": os.getcwd()},
        **where_to_read(sorted({os.path.abspath(path) for path in face_filter.references})))
    for row in _through_stages(dataset, pipeline, REFERENCE_STAGES, settings, options, cpu_share).iter_rows():
        position = int(row["key"])
        if row["problem"]:
            from extractor.identity_filter import ReferenceError

            raise ReferenceError(f"reference {face_filter.references[position]}: {row['problem']}")
        face_filter.take_reference(position, list(decode_faces(row["faces"]).values()))


def _written(writer, progress: Progress, options) -> None:
    """A frame is on disk: counted."""
    progress.add(written=1)
    if options.on_frame_written:
        options.on_frame_written(writer.counts.frames)


def _run(settings: RunSettings, options: EngineOptions, source, writer, summary: RunSummary,
         imported: dict | None, stall: StallWatch) -> None:
    import ray

    units, skipped = read_plan(settings, source)
    for item in skipped:
        summary.admit(item)
    if not units:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the driver writes frames in input order
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its note that progress bars are off, and the like
    for name in ("ray", "ray.data"):  # its errors (an actor that died as it started), tracebacks and all
        library_log_to_file(name, "ray")
    context.enable_progress_bars = False
    if ray.cluster_resources().get("GPU", 0) and not options.gpu_memory_mb:  # nvidia-smi once, not per stage
        options = replace(options, gpu_memory_mb=gpu_memory_mb(options))
    pipeline = _plan(settings, options)
    stages = frame_stages(settings)
    cpu_share = _cpu_share(actor_groups(pipeline, tuple(pipeline.names)))
    if settings.face_filter is not None and settings.face_filter.needs_embedding:
        _embed_references(settings, options, pipeline, cpu_share)
    reading = {"max_pixels": settings.max_pixels, "every_n": settings.every_n, "done": frozenset(source.done),
               "driver_node": ray.get_runtime_context().get_node_id(), "driver_folder": os.getcwd(),
               "imported": None if imported is None else
               {key: [encode_face(face) for face in faces] for key, faces in imported.items()}}
    dataset = ray.data.from_items(units, override_num_blocks=len(units)).map_batches(
        read_units, batch_size=1, num_cpus=_task_share(cpu_share), fn_kwargs=reading,
        **where_to_read(sorted({os.path.abspath(settings.input_path), os.path.abspath(units[0]["path"])})))
    dataset = _through_stages(dataset, pipeline, stages, settings, options, cpu_share)
    # Track ids and steady landmarks, a video's doubtful faces confirmed by their neighbours: frame
    # after frame, here, where the frames' records and face PNGs are then made.
    in_order = writer.tracks is not None or writer.neighbours is not None
    if not in_order:
        preparer = FramePreparer(settings.output, writer.face_names, settings.face_filter,
                                 want_previews=writer.preview is not None)
        dataset = dataset.map_batches(prepare_frames, batch_size=PREPARE_BATCH_FRAMES,
                                      num_cpus=_task_share(cpu_share), fn_kwargs={"preparer": preparer})
    progress = Progress(source.estimate_frames(), enabled=settings.show_progress)
    rows, said = 0, set()
    try:
        for row in dataset.iter_rows():
            rows += 1
            stall.rows = rows
            summary.outside_size_limits += int(row["outside"])
            for level, name, text in pickle.loads(row["log"]) if row["log"] else []:
                logging.getLogger(name).log(level, "%s", text)
            if row["problem"]:
                summary.admit(problem_of(row))
                continue
            for line in filter(None, row["warning"].split("\n")):
                if line not in said:  # an actor's start-up warning, given by each actor of its stage: once
                    said.add(line)
                    logger.warning(line)
                    summary.warnings.append(line)
            if in_order:
                done = decode_faces(row["faces"])
                frame = ExtractMedia(row["key"], row["image"], [done[i] for i in sorted(done)], int(row["index"]),
                                     row["source"], time=None if math.isnan(row["time"]) else float(row["time"]))
                for ready, _ in writer.in_order(frame, None):
                    writer.write(ready)
                    _written(writer, progress, options)
            else:
                previews = pickle.loads(row["previews"]) if row["previews"] else []
                writer.commit(PreparedFrame(json.loads(row["record"]), pickle.loads(row["pngs"]),
                                            int(row["filtered"]), previews, low_quality=int(row["low_quality"])))
                _written(writer, progress, options)
        for ready, _ in writer.last_in_order():  # the input's end: a frame held back, if any
            writer.write(ready)
            _written(writer, progress, options)
        if source.is_video and not rows and not source.done:  # never a silent empty run
            summary.admit(SkippedInput(str(source.path), f"{source.path}: no video frame decodes"))
    finally:
        progress.close()
        summary.peak_rss = progress.peak_rss
