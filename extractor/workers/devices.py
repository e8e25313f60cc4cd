"""The device plan: which worker runs on which device, with what GPU-memory budget.

Pure planning over a GPU inventory (read from ``nvidia-smi`` when present), so it is unit-tested
on simulated inventories. Workers apply their line of the plan before TensorFlow starts
(``apply_device_plan``).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass

from extractor.workers.limits import usable_cores

logger = logging.getLogger(__name__)

# GPU memory a worker process holds outside its framework's allocator, so outside any budget a
# framework can enforce: the CUDA context, cuDNN and cuBLAS. Measured on an H200 (CUDA 13):
# a PyTorch worker under a 1500 MB budget, 1450 MB reserved, read 1974-1978 MB in nvidia-smi.
CUDA_CONTEXT_MB = 500


class PlanError(Exception):
    """The requested workers and budgets cannot be placed on the available devices."""


@dataclass(frozen=True)
class GpuInfo:
    index: int  # nvidia-smi's (PCI bus order; workers run with CUDA_DEVICE_ORDER=PCI_BUS_ID to match)
    name: str
    total_mb: int
    free_mb: int
    uuid: str = ""


@dataclass(frozen=True)
class StageDemand:
    """What one stage asks for: worker count, and MB per worker if its plugin uses a GPU.

    ``batch_mb`` is what one batch needs (the plugin's declared need): a budget below it is
    refused. ``heavy`` stages (neural detectors, identity) share the CPU cores; the cheap ones
    (dlib landmarks, masks) get one thread each, since they idle most of the time.
    """

    stage: str
    workers: int
    vram_mb: int | None  # None: the plugin runs on the CPU whatever the machine has
    batch_mb: int | None = None
    heavy: bool = False
    runtime: str = ""  # what runs the stage's model, for the printed plan (e.g. "keras/jax")


@dataclass(frozen=True)
class WorkerPlan:
    stage: str
    index: int
    gpu: int | None  # physical GPU index, None for the CPU
    memory_mb: int | None
    cpu_threads: int
    gpu_total_mb: int | None = None
    runtime: str = ""

    @property
    def label(self) -> str:
        return f"{self.stage}-{self.index}"

    def describe(self) -> str:
        runtime = f" [{self.runtime}]" if self.runtime else ""
        if self.gpu is None:
            return f"{self.label:10} -> CPU ({self.cpu_threads} thread{'s' * (self.cpu_threads > 1)}){runtime}"
        return f"{self.label:10} -> GPU {self.gpu} with a {self.memory_mb} MB budget{runtime}"


def detect_gpus() -> list[GpuInfo]:
    """GPUs as nvidia-smi reports them; empty when there is no NVIDIA driver."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,uuid",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("nvidia-smi failed (%s): planning for the CPU only", exc)
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, total, free, *uuid = (part.strip() for part in line.split(","))
        gpus.append(GpuInfo(int(index), name, int(float(total)), int(float(free)), "".join(uuid[:1])))
    return gpus


def gpus_cuda_visible(gpus: list[GpuInfo], visible: str | None) -> list[GpuInfo]:
    """The GPUs a user's ``CUDA_VISIBLE_DEVICES`` leaves (None: not set, all), read as CUDA reads
    it: indices or UUIDs (a unique start of one, ``GPU-5ab3``), separated by commas, up to the first
    entry that names none (``-1``, or empty: no GPU). nvidia-smi lists every GPU whatever the
    variable says, and each worker sets the variable to its own GPU, so without this a run would
    take GPUs its user had kept from it."""
    if visible is None:
        return list(gpus)
    kept: list[GpuInfo] = []
    for entry in (part.strip() for part in visible.split(",")):
        matches = [g for g in gpus if (entry.isdigit() and g.index == int(entry))
                   or (entry.startswith("GPU-") and g.uuid.startswith(entry))]
        if len(matches) != 1 or matches[0] in kept:
            break
        kept.append(matches[0])
    return kept


def selected_gpus(gpus: list[GpuInfo], selected: list[int] | None, excluded: tuple[int, ...] = (),
                  where: str = "the machine has") -> list[GpuInfo]:
    """The GPUs --gpus names (all when it names none) less those --exclude-gpus names (faceswap's
    ``-X``; all of them: the CPU plan); a GPU not among ``gpus`` is an error saying which are."""
    known = {g.index for g in gpus}
    for flag, named in (("--gpus", selected or []), ("--exclude-gpus", excluded)):
        missing = sorted(set(named) - known)
        if missing:
            raise PlanError(f"{flag} names GPU {', '.join(map(str, missing))} but {where} "
                            f"{', '.join(map(str, sorted(known))) or 'none'}")
    return [g for g in gpus if (selected is None or g.index in selected) and g.index not in excluded]


def usable_gpus(found: list[GpuInfo], selected: list[int] | None, excluded: tuple[int, ...] = (),
                visible: str | None = None) -> tuple[list[GpuInfo], list[str]]:
    """The GPUs a run may plan on: those ``CUDA_VISIBLE_DEVICES`` leaves, then --gpus and
    --exclude-gpus; with a note for the plan when the variable kept some from the run."""
    gpus = gpus_cuda_visible(found, visible)
    notes = []
    if len(gpus) < len(found):
        notes.append(f"CUDA_VISIBLE_DEVICES={visible} leaves GPU(s) {_numbers(gpus) or 'none'} of the {len(found)} "
                     "nvidia-smi lists")
    where = "the machine has" if len(gpus) == len(found) else f"CUDA_VISIBLE_DEVICES={visible} leaves"
    chosen = selected_gpus(gpus, selected, excluded, where)
    if len(chosen) < len(gpus):
        notes.append(f"--gpus/--exclude-gpus leave GPU(s) {_numbers(chosen) or 'none'} of {_numbers(gpus)}")
    return chosen, notes


def run_gpus(options) -> tuple[list[GpuInfo], list[GpuInfo], list[str]]:
    """A run's GPUs, for every engine on this machine: those nvidia-smi lists (or the simulated
    ``options.gpu_inventory``), those the run may use under this process's CUDA_VISIBLE_DEVICES,
    --gpus and --exclude-gpus (``usable_gpus``), and the plan's notes about them."""
    found = detect_gpus() if options.gpu_inventory is None else options.gpu_inventory
    usable, notes = usable_gpus(found, options.gpus, options.exclude_gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return found, usable, notes


def _numbers(gpus: list[GpuInfo]) -> str:
    return ", ".join(str(g.index) for g in gpus)


def _show_only(indices: list[int]) -> None:
    """CUDA in this process (and the processes it starts) sees only these GPUs, numbered as
    nvidia-smi numbers them (CUDA's own order puts the fastest first)."""
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, indices))


@contextmanager
def only_these_gpus(gpus: list[GpuInfo]):
    """This process sees only ``gpus`` (numbered as nvidia-smi numbers them; none: the CPU) while
    the block runs: the single-process engine's --gpus, --exclude-gpus and CUDA_VISIBLE_DEVICES,
    set before any framework starts. The variables are put back after."""
    saved = {name: os.environ.get(name) for name in ("CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES")}
    _show_only([g.index for g in gpus])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def plan_devices(demands: list[StageDemand], gpus: list[GpuInfo], selected: list[int] | None = None,
                 cpu_count: int | None = None) -> tuple[list[WorkerPlan], list[str]]:
    """Place every worker; returns the plan and notes to print (fall-backs said out loud).

    GPU workers go one at a time to the selected GPU with the fewest workers so far (then the
    most memory left), among those where the budget and the worker's CUDA context
    (``CUDA_CONTEXT_MB``) still fit, so they spread;
    a stage whose workers do not all fit runs fewer workers; one that cannot place a single
    worker, or whose budget cannot hold one batch, is an error that says what would fit.
    CPU threads: the heavy stages' workers share every core, cheap workers get one thread each.
    The cheap stages and the coordinator leave cores idle part of the time, and the detector's
    threads take them (its runtimes sleep rather than spin): measured on 2 cores, one detection
    thread instead of two cost 18 % of the video's frames/s and gained nothing on photos.
    """
    notes: list[str] = []
    gpus = selected_gpus(gpus, selected)
    free = {g.index: g.free_mb for g in gpus}
    load = {g.index: 0 for g in gpus}
    on_cpu = [d for d in demands if d.vram_mb is None or not gpus]
    heavy_workers = sum(d.workers for d in on_cpu if d.heavy)
    cpu_count = cpu_count or usable_cores()
    heavy_threads = max(1, cpu_count // max(1, heavy_workers))
    plans: list[WorkerPlan] = []
    if not gpus and any(d.vram_mb is not None for d in demands):
        notes.append("no GPU to use: every worker runs on the CPU")
    for demand in demands:
        if demand.vram_mb is None or not gpus:
            threads = heavy_threads if demand.heavy else 1
            plans += [WorkerPlan(demand.stage, i, None, None, threads, runtime=demand.runtime)
                      for i in range(demand.workers)]
            continue
        if demand.batch_mb and demand.vram_mb < demand.batch_mb:
            raise PlanError(f"{demand.stage}: a {demand.vram_mb} MB budget cannot hold one batch "
                            f"({demand.batch_mb} MB); raise --{demand.stage}-vram to at least {demand.batch_mb} "
                            f"or lower --batch-size {demand.stage}=N")
        placed = 0
        held = demand.vram_mb + CUDA_CONTEXT_MB  # what the process holds: budget and CUDA context
        for i in range(demand.workers):
            fitting = [g for g in free if free[g] >= held]
            if not fitting:
                break
            # Spread: the GPU with the fewest workers so far, then the most memory left.
            best = min(fitting, key=lambda g: (load[g], -free[g]))
            free[best] -= held
            load[best] += 1
            total = next(g.total_mb for g in gpus if g.index == best)
            plans.append(WorkerPlan(demand.stage, i, best, demand.vram_mb, 1, total, demand.runtime))
            placed += 1
        if placed == 0:
            largest = max(g.free_mb for g in gpus)
            raise PlanError(f"{demand.stage}: one worker needs {demand.vram_mb} MB of GPU memory (and about "
                            f"{CUDA_CONTEXT_MB} MB for its CUDA context) but the most "
                            f"left on any selected GPU is {max(free.values())} MB (largest free: {largest} MB); "
                            f"lower --{demand.stage}-vram or the batch size, or free a GPU")
        if placed < demand.workers:
            notes.append(f"{demand.stage}: only {placed} of {demand.workers} workers fit in GPU memory "
                         f"at {demand.vram_mb} MB each (+{CUDA_CONTEXT_MB} MB CUDA context); running {placed}")
    return plans, notes


def apply_device_plan(plan: WorkerPlan) -> None:
    """In a fresh worker, before any framework is imported: pin the device and the CPU threads."""
    _show_only([] if plan.gpu is None else [plan.gpu])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(plan.cpu_threads)
    import cv2

    cv2.setNumThreads(plan.cpu_threads)
