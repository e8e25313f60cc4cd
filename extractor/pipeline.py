"""A run's pipeline, worked out once from its settings: the ordered stages, each with its plugins,
batch size, worker count, runtime, CPU weight and GPU need.

Every engine adapts this one description (as NeMo Curator's backends adapt its stages): the
single-process engine runs the stages in order, the pool places ``demand()`` on devices and
starts a worker per place, Ray makes an actor pool per stage. A flag (batch size, --vram, worker
counts) reaches every engine through here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from extractor.plugins import registry
from extractor.stages import StageConfig
from extractor.workers.devices import CUDA_CONTEXT_MB, StageDemand
from extractor.workers.gpu_support import install_hint, pick_gpu_runtime
from extractor.workers.limits import usable_cores


@dataclass(frozen=True)
class StageSpec:
    """One stage of the run, as data."""

    stage: str  # detect, align, mask or identity
    plugins: tuple[str, ...]
    batch_size: int  # items (frames for detect, faces otherwise) per plugin call
    workers: int
    runtime: str  # what runs its models, e.g. "onnxruntime" or "keras/jax, dlib"
    gpu_mb: int | None  # GPU-memory budget per worker; None: the stage runs on the CPU
    batch_mb: int | None = None  # what one batch needs on a GPU (a smaller budget is refused)
    heavy: bool = False  # a network per frame: shares the spare CPU cores

    @property
    def on_gpu(self) -> bool:
        return self.gpu_mb is not None

    def demand(self) -> StageDemand:
        return StageDemand(self.stage, self.workers, self.gpu_mb, self.batch_mb, self.heavy, self.runtime)

    def config(self, base: StageConfig, on_gpu: bool) -> StageConfig:
        """The stage config a worker of this stage builds its plugins from: on a GPU, with the
        plugins set to the runtime chosen for them."""
        if not on_gpu:
            return base
        for label in self.runtime.split(", "):
            base = base.on_runtime(self.stage, label)
        return base


@dataclass
class Pipeline:
    stages: list[StageSpec]
    notes: list[str] = field(default_factory=list)  # what the plan prints about its choices

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.stage for spec in self.stages)

    def spec(self, stage: str) -> StageSpec:
        return next(spec for spec in self.stages if spec.stage == stage)


def frame_stages(settings) -> tuple[str, ...]:
    """The stages the input's frames go through, in order: an imported .fsa replaces detection,
    and alignment too unless --realign."""
    stages = ("detect", "align", "mask")
    if settings.import_alignments is not None:
        stages = ("align", "mask") if settings.realign else ("mask",)
    return stages + (("identity",) if settings.stages.identity else ())


REFERENCE_STAGES = ("detect", "align", "identity")  # what a --filter reference image goes through


def stage_names(settings) -> tuple[str, ...]:
    """The stages a run needs, in order: its frames', and detection and alignment for the
    reference images of --filter/--nfilter even when the frames' faces are imported."""
    needed = set(frame_stages(settings))
    if settings.face_filter is not None and settings.face_filter.needs_embedding:
        needed |= set(REFERENCE_STAGES)
    return tuple(stage for stage in ("detect", "align", "mask", "identity") if stage in needed)


# One CPU worker aligns or masks slower than a GPU, or a CPU detector's threads on every core,
# detects (docs/performance.md): half the cores align and mask. CPU ms a frame of each with the
# default plugins (the sample video: detect 74, align 44-53, mask 9-10; docs/tracking.md) say so,
# and how to share them.
ALIGN_COST_PER_MASK = 5


# A GPU detector's worker spends most of a frame on the CPU (resizing, decoding, the closer
# looks' tiles): on one H200, CenterFace's network took 1.5 ms of a frame's 5-6, and two workers
# sharing the GPU gave 1.5-2.5 times the frames/s of one (docs/performance.md). So each GPU gets
# two by default where the host has the cores for them and the GPU the memory.
DETECT_WORKERS_PER_GPU = 2
CORES_PER_GPU_FOR_TWO = 8  # measured with 16 cores for one GPU; half of them align and mask


def detect_workers_per_gpu(gpus: list, budget_mb: int, cpu_count: int) -> int:
    """Detect workers each GPU gets by default: two where there are ``CORES_PER_GPU_FOR_TWO``
    cores a GPU and every GPU's free memory holds two budgets with their CUDA contexts; else one."""
    fits = all(gpu.free_mb >= DETECT_WORKERS_PER_GPU * (budget_mb + CUDA_CONTEXT_MB) for gpu in gpus)
    return DETECT_WORKERS_PER_GPU if fits and cpu_count >= CORES_PER_GPU_FOR_TWO * len(gpus) else 1


def feeding_workers(cpu_count: int) -> dict[str, int]:
    """Aligners and maskers that a detector feeds (worker counts left at their default): half
    the cores, shared so that the slower of the two stages is as fast as it can be."""
    cores = max(2, cpu_count // 2)
    maskers = max(range(1, cores), key=lambda m: min((cores - m) / ALIGN_COST_PER_MASK, m))
    return {"align": cores - maskers, "mask": maskers}


def build_pipeline(settings, options, gpus: list | None = None, capable: set[str] | None = None,
                   cpu_count: int | None = None) -> Pipeline:
    """The run's stages with their worker count, GPU need, CPU weight and runtime, read from the
    plugins' data, and the notes the plan prints about them.

    A stage goes on the GPUs (``gpus``, already narrowed to --gpus) only when each of its GPU
    plugins has a runtime installed with GPU support (``capable``, from ``gpu_support``): its
    most preferred one is chosen. Otherwise it is planned as on a machine without GPUs, and the
    notes say so with the command that installs GPU support. A worker count left at 0 (the
    default) is one detect worker per GPU the detector runs on (else one, its threads sharing
    every core), and enough aligners and maskers to keep the detection fed (``feeding_workers``:
    half the cores, one each on a 2-core machine); 1 otherwise.
    """
    config, gpus = settings.stages, gpus or []
    capable = set() if capable is None else capable
    specs, notes, without_runtime = [], [], []
    gpu_detectors, gpu_plugins = 0, False
    for stage in stage_names(settings):
        names = config.plugin_names(stage)
        classes = [registry.get_plugin_class(stage, name) for name in names]
        plugin_options = [config.plugin_options.get(f"{stage}.{name}", {}) for name in names]
        # What can run each plugin on a GPU, given its options (none: a CPU plugin here, e.g.
        # CenterFace on OpenCV DNN, or dlib's own code for jittered identities).
        candidates = [cls.gpu_runtimes(config.backend, opts) if cls.device_need.gpu else []
                      for cls, opts in zip(classes, plugin_options)]
        gpu_plugins = gpu_plugins or any(candidates)
        wanted = [runtimes for runtimes in candidates if runtimes]
        chosen = [pick_gpu_runtime(runtimes, capable) for runtimes in wanted]
        on_gpu = bool(gpus and wanted and all(chosen))
        if gpus and wanted and not on_gpu:
            without_runtime.append((stage, next(c for c, pick in zip(wanted, chosen) if not pick)))
        gpu = [cls for cls, runtimes in zip(classes, candidates) if runtimes] if on_gpu else []
        batch_mb = sum(cls.batch_vram_mb(config.batch_sizes.get(stage)) for cls in gpu) if gpu else None
        labels = iter(chosen)
        runtime = ", ".join(dict.fromkeys(
            next(labels) if on_gpu and runtimes else cls.runtime_label(config.backend, False, opts)
            for cls, opts, runtimes in zip(classes, plugin_options, candidates)))
        workers = options.workers.get(stage) or 0
        if not workers and stage == "detect" and on_gpu:
            per_gpu = detect_workers_per_gpu(gpus, options.vram_mb.get(stage) or batch_mb,
                                             cpu_count or usable_cores())
            workers = per_gpu * len(gpus)
            if per_gpu > 1:
                notes.append(f"detect: {per_gpu} workers per GPU ({workers}; a GPU detector's worker is mostly "
                             "CPU work); --detect-workers N to change")
            else:
                notes.append(f"detect: one worker per GPU ({workers}; {DETECT_WORKERS_PER_GPU} with "
                             f"{CORES_PER_GPU_FOR_TWO} cores a GPU and the GPU memory for them); "
                             "--detect-workers N to change")
        if not workers and stage in ("align", "mask") and any(spec.stage == "detect" for spec in specs):
            workers = feeding_workers(cpu_count or usable_cores())[stage]
            if gpu_detectors or workers > 1:
                fed = "the GPU detectors" if gpu_detectors else "the detector"
                notes.append(f"{stage}: {workers} worker(s) to keep {fed} fed; --{stage}-workers N to change")
        workers = workers or 1
        gpu_detectors = workers if stage == "detect" and on_gpu else gpu_detectors
        specs.append(StageSpec(stage, tuple(names), config.batch_size(stage), workers, runtime,
                               (options.vram_mb.get(stage) or batch_mb) if gpu else None, batch_mb,
                               heavy=any(cls.cpu_heavy for cls in classes)))
    if not gpus and gpu_plugins:
        notes.insert(0, "no GPU to use: every worker runs on the CPU")
    if without_runtime:
        hint = install_hint(without_runtime[0][1])
        stages = ", ".join(stage for stage, _ in without_runtime)
        notes.insert(0, f"{len(gpus)} GPU(s) found, but no installed runtime can use them for {stages} (the install "
                        f"has none with GPU support): {stages} planned on the CPU; `{hint}` installs GPU support")
    return Pipeline(specs, notes)
