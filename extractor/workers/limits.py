"""What this process may use: cores and memory as its container, Slurm job or Kubernetes pod
allows, not what the host has.

Why: ``os.cpu_count()`` and ``psutil.virtual_memory()`` see the whole host. In a container
started with ``--cpus 4 --memory 2g`` on a 64-core host, a plan sized from them would start 32
aligners and maskers (about 75 MB each), a detector of 64 threads and 64 frame slots (1.6 GB of
4K frames): twice what the kernel lets the container have. The limits live in the process's
cgroup (v2: ``cpu.max``, ``memory.max``; v1: ``cpu.cfs_quota_us``, ``memory.limit_in_bytes``),
on its own cgroup or any above it, and in its CPU affinity (``taskset``, ``docker
--cpuset-cpus``, Slurm's cpusets).
"""
from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
UNLIMITED_V1 = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2^63 - 1


@dataclass(frozen=True)
class CgroupLimits:
    """The tightest limits of the process's cgroup and those above it; None: no limit."""

    cores: float | None = None  # CPU quota in cores (2.5: two and a half cores' time)
    memory_bytes: int | None = None  # how much more memory the cgroup may take (limit - in use)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _keyed(path: Path, key: str) -> int | None:
    """The number after ``key`` in a cgroup file of "name value" lines (``memory.stat``, ``memory.events``)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.isdigit():
            return int(value)
    return None


def _inactive_file(folder: Path, key: str) -> int:
    """Page cache the kernel reclaims before it kills (``memory.stat``): not memory in use."""
    return _keyed(folder / "memory.stat", key) or 0


def _folders(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder under ``mount`` and those above it, up to the mount. In a container
    whose cgroup namespace hides the host's path, the mount itself is its cgroup."""
    folder = mount / path.lstrip("/")
    if not folder.is_dir():
        return [mount]
    folders = [folder]
    while folder != mount:
        folder = folder.parent
        folders.append(folder)
    return folders


@dataclass(frozen=True)
class Cgroups:
    """This process's cgroup folders, its own first, then those above it: one list for cgroup v2
    (``v2``), one per controller for v1 (CPU and memory have hierarchies of their own)."""

    v2: bool
    cpu: list[Path]
    memory: list[Path]


def my_cgroups(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> Cgroups:
    """Where this process's cgroups are (v1's hierarchies mounted as ``cpu,cpuacct``, ``cpu``,
    ``memory``...); empty lists where none can be read."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    if "" in paths and (root / "cgroup.controllers").exists():  # v2 alone
        folders = _folders(root, paths[""])
        return Cgroups(True, folders, folders)
    mounts: dict[str, Path] = {}
    for folder in root.iterdir() if root.is_dir() else []:
        for controller in folder.name.split(","):
            if controller in ("cpu", "memory") and folder.is_dir():
                mounts.setdefault(controller, folder)
    found = {key: _folders(mounts[key], paths[key]) if key in mounts and key in paths else []
             for key in ("cpu", "memory")}
    return Cgroups(False, found["cpu"], found["memory"])


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None  # "max" and v1's -1: no limit


def cgroup_limits(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CgroupLimits:
    """The CPU quota and memory headroom of this process's cgroups (v2 or v1); no limit where
    none can be read."""
    groups = my_cgroups(root, proc_cgroup)
    cores, memory = [], []
    for folder in groups.cpu:
        if groups.v2:
            quota, _, period = (_read(folder / "cpu.max") or "max").partition(" ")
            quota, period = _number(quota), _number(period)
        else:
            quota, period = _number(_read(folder / "cpu.cfs_quota_us")), _number(_read(folder / "cpu.cfs_period_us"))
        if quota is not None and period:
            cores.append(quota / period)
    names = (("memory.max", "memory.current", "inactive_file") if groups.v2 else
             ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"))
    for folder in groups.memory:
        limit, used = _number(_read(folder / names[0])), _number(_read(folder / names[1]))
        if limit is not None and limit < UNLIMITED_V1 and used is not None:
            memory.append(limit - (used - _inactive_file(folder, names[2])))
    return CgroupLimits(min(cores, default=None), max(0, min(memory)) if memory else None)


# What the run needed, said wherever the out-of-memory killer ended a part of it.
OUT_OF_MEMORY = ("the kernel's out-of-memory killer: the run needed more memory than the machine, or its container "
                 "or job, allows; a smaller --frame-buffer, fewer workers or a lower --max-pixels need less")


def oom_kill_file(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> Path | None:
    """The file that counts the out-of-memory kills of this process's memory cgroup (v2
    ``memory.events``, v1 ``memory.oom_control``: its ``oom_kill`` line); None where there is none."""
    groups = my_cgroups(root, proc_cgroup)
    if not groups.memory:
        return None
    return groups.memory[0] / ("memory.events" if groups.v2 else "memory.oom_control")


def oom_kills(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """Processes of this process's memory cgroup the kernel's out-of-memory killer has killed
    (any OOM kill, the host's too); None where the kernel does not say. A run's workers share its cgroup."""
    counter = oom_kill_file(root, proc_cgroup)
    return None if counter is None else _keyed(counter, "oom_kill")


def killed_because(exit_code: int | None, oom_kills_at_start: int | None) -> str:
    """Why a worker that ended with ``exit_code`` was killed, for the run's error line ("" when it
    was not SIGKILL): the out-of-memory killer where the kernel counted a kill since the run started."""
    if exit_code != -signal.SIGKILL:
        return ""
    now = oom_kills()
    if now is None or oom_kills_at_start is None:
        return " (SIGKILL: the kernel's out-of-memory killer, or another program)"
    if now > oom_kills_at_start:
        return f" ({OUT_OF_MEMORY})"
    return " (SIGKILL, sent by another program)"


def usable_cores(limits: CgroupLimits | None = None) -> int:
    """Cores this process may keep busy: its CPU affinity, less where a cgroup quota is lower
    (a quota of 2.5 cores: 3 workers' worth, as the kernel shares it out over time)."""
    limits = cgroup_limits() if limits is None else limits
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if limits.cores is not None:
        cores = min(cores, math.ceil(limits.cores))
    return max(1, cores)


def available_memory(limits: CgroupLimits | None = None) -> int:
    """Bytes this process may still take: the host's available memory, or its cgroup's headroom where lower."""
    limits = cgroup_limits() if limits is None else limits
    available = psutil.virtual_memory().available
    return available if limits.memory_bytes is None else min(available, limits.memory_bytes)


def limits_note(limits: CgroupLimits | None = None) -> str | None:
    """The plan's line where a container or job limits the run below the host; None where not."""
    limits = cgroup_limits() if limits is None else limits
    host_cores, cores = os.cpu_count() or 1, usable_cores(limits)
    host_memory, memory = psutil.virtual_memory().available, available_memory(limits)
    said = []
    if cores < host_cores:
        said.append(f"{cores} of the host's {host_cores} cores")
    if memory < host_memory:
        said.append(f"{memory / 1e9:.1f} GB of the host's {host_memory / 1e9:.1f} GB available memory")
    if not said:
        return None
    return (f"this run may use {' and '.join(said)} (its container, job or CPU affinity): workers and "
            "frame buffer sized to that")


WORKER_OOM_SCORE_ADJ = 500  # of -1000..1000: a worker goes before the coordinator when memory runs out


def first_for_the_oom_killer(proc_self: Path = Path("/proc/self")) -> None:
    """Put this process (a worker) ahead of the coordinator for the kernel's out-of-memory killer:
    the coordinator then lives to stop the run with the reason, not as a bare "Killed". Raising
    one's own score needs no privilege; a score already higher is kept."""
    path = proc_self / "oom_score_adj"
    try:
        if int(path.read_text()) < WORKER_OOM_SCORE_ADJ:
            path.write_text(str(WORKER_OOM_SCORE_ADJ))
    except (OSError, ValueError):
        pass  # not Linux, or /proc read-only: the kernel chooses as it would
