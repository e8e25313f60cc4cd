"""What this process may use: cores and memory as its container, Slurm job or Kubernetes pod
allows, not what the host has.

Why: ``os.cpu_count()`` and ``psutil.virtual_memory()`` see the whole host. In a container
started with ``--cpus 4 --memory 8g`` on a 64-core host, the plan sized from them started 32
aligners and maskers and a frame buffer sized for the host's RAM, and the kernel's OOM killer
ended the run. The limits live in the process's cgroup (v2: ``cpu.max``, ``memory.max``; v1:
``cpu.cfs_quota_us``, ``memory.limit_in_bytes``), on its own cgroup or any above it, and in its
CPU affinity (``taskset``, ``docker --cpuset-cpus``, Slurm's cpusets).
"""
from __future__ import annotations

import math
import os
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


def _inactive_file(folder: Path, key: str) -> int:
    """Page cache the kernel reclaims before it kills (``memory.stat``): not memory in use."""
    for line in (_read(folder / "memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.isdigit():
            return int(value)
    return 0


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


def _v2(folders: list[Path]) -> CgroupLimits:
    cores, memory = [], []
    for folder in folders:
        quota, _, period = (_read(folder / "cpu.max") or "max").partition(" ")
        if quota.isdigit() and period.isdigit() and int(period):
            cores.append(int(quota) / int(period))
        limit, current = _read(folder / "memory.max"), _read(folder / "memory.current")
        if limit and limit.isdigit() and current and current.isdigit():
            memory.append(int(limit) - (int(current) - _inactive_file(folder, "inactive_file")))
    return CgroupLimits(min(cores, default=None), max(0, min(memory)) if memory else None)


def _v1(mounts: dict[str, Path], paths: dict[str, str]) -> CgroupLimits:
    cores, memory = [], []
    if "cpu" in mounts and "cpu" in paths:
        for folder in _folders(mounts["cpu"], paths["cpu"]):
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota and quota.isdigit() and period and period.isdigit() and int(period):
                cores.append(int(quota) / int(period))  # -1 (no quota) is not all digits
    if "memory" in mounts and "memory" in paths:
        for folder in _folders(mounts["memory"], paths["memory"]):
            limit, usage = _read(folder / "memory.limit_in_bytes"), _read(folder / "memory.usage_in_bytes")
            if limit and limit.isdigit() and int(limit) < UNLIMITED_V1 and usage and usage.isdigit():
                memory.append(int(limit) - (int(usage) - _inactive_file(folder, "total_inactive_file")))
    return CgroupLimits(min(cores, default=None), max(0, min(memory)) if memory else None)


def cgroup_limits(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CgroupLimits:
    """The CPU quota and memory headroom of this process's cgroups (v2, or v1's per-controller
    hierarchies, mounted as ``cpu,cpuacct`` or ``cpu``); no limit where none can be read."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    if "" in paths and (root / "cgroup.controllers").exists():  # v2 alone
        return _v2(_folders(root, paths[""]))
    mounts = {}
    for folder in root.iterdir() if root.is_dir() else []:
        for controller in folder.name.split(","):
            if controller in ("cpu", "memory") and folder.is_dir():
                mounts.setdefault(controller, folder)
    return _v1(mounts, paths)


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
