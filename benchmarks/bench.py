"""``make bench``: the pool against the single-process engine, side by side in one run.

First, extractor against the tool a CPU user would pick instead: face_recognition 1.3.0's
``face_detection --cpus N`` (dlib HOG, detection only) and ``extractor run`` with no flags (full
extraction: detect, align, mask, write), on the same folder of 256 px face crops, then of real
photos, built from ../shared/data, one after the other in one run; then each detector's frames/s
on the sample video.

Then it prints, for the same input and plugins: frames/s of --single-process and of the pool and their
ratio; the bottleneck stage's frames/s running alone; bytes pickled per frame on the queues;
peak and final total RSS and PSS of all processes. ``--soak N`` then repeats the sample video to
at least N frames and samples total memory and shared-memory use over the run.

Ratios are what to compare: the machine is shared and noisy, so absolute figures move.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import psutil  # noqa: E402

from extractor.engines.pool import run_pool  # noqa: E402
from extractor.engines.single import run_single_process  # noqa: E402
from extractor.media import ExtractMedia  # noqa: E402
from extractor.output import FramePreparer, OutputSettings  # noqa: E402
from extractor.output_folder import FaceNames  # noqa: E402
from extractor.run_settings import EngineOptions, RunSettings  # noqa: E402
from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, MaskStage, StageConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EXTRACTOR_TEST_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEO = DATA / "video" / "short_hamilton_clip.mp4"
FALLBACK_VIDEO = REPO / "samples" / "hamilton_clip_60frames.mp4"


class BackgroundSampler:
    """Calls ``sample`` every ``interval`` seconds on a thread of its own while in a ``with`` block."""

    thread_name = "sampler"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.thread_name)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class MemorySampler(BackgroundSampler):
    """Samples total RSS and PSS of this process and all its children, and the machine's shared
    memory (``Shmem`` of /proc/meminfo: /dev/shm files and anonymous memfd blocks alike)."""

    thread_name = "memory-sampler"

    def __init__(self, interval: float = 0.5):
        super().__init__(interval)
        self.samples: list[tuple[float, int, int, int]] = []  # time, rss, pss, shm bytes
        self._me = psutil.Process()

    def sample(self) -> None:
        rss = pss = 0
        for proc in [self._me] + self._me.children(recursive=True):
            try:
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            except psutil.Error:
                continue
        self.samples.append((time.monotonic(), rss, pss, _shmem_bytes()))

    def peak(self, column: int) -> int:
        return max((s[column] for s in self.samples), default=0)

    def final(self, column: int) -> int:
        return self.samples[-1][column] if self.samples else 0


def _shmem_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Shmem:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def ray_against_pool(video: Path, config: StageConfig, rounds: int = 2) -> None:
    """The Ray Data engine's overhead on this machine: the same video through the pool and
    through Ray on a local instance (started beforehand; its start-up time is shown apart),
    alternating for ``rounds`` rounds, each ratio from one round."""
    try:
        import ray

        from extractor.engines.ray_data import run_ray
    except ImportError:
        print("\nRay is not installed (pip install 'extractor[ray]'): Ray vs pool skipped")
        return
    start = time.perf_counter()
    ray.init(num_cpus=psutil.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    started = time.perf_counter() - start
    rows = []
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                pool = run_pool(_settings(video, Path(tmp) / "pool", config), EngineOptions())
                on_ray = run_ray(_settings(video, Path(tmp) / "ray", config), EngineOptions())
            rows.append((pool, on_ray))
    finally:
        ray.shutdown()
    print(f"\n| round | pool frames/s | ray frames/s (local instance, {psutil.cpu_count()} CPUs; start-up "
          f"{started:.1f} s not included) | frames, faces (pool; ray) | **ray / pool** |")
    print("| --- | --- | --- | --- | --- |")
    for number, (pool, on_ray) in enumerate(rows, 1):
        print(f"| {number} | {pool.frames_per_second:.2f} | {on_ray.frames_per_second:.2f} | {pool.frames}, "
              f"{pool.faces}; {on_ray.frames}, {on_ray.faces} | "
              f"**{on_ray.frames_per_second / pool.frames_per_second:.2f}** |")


def _settings(video: Path, out: Path, config: StageConfig) -> RunSettings:
    return RunSettings(input_path=video, output=OutputSettings(out, out / "alignments.jsonl", size=128),
                       stages=config)


def stage_alone(video: Path, config: StageConfig) -> tuple[dict[str, float], dict[str, float]]:
    """Each stage alone in this process, on frames decoded beforehand: its frames/s, and its CPU
    seconds per frame (all its threads), reading and writing (the coordinator's share) included."""
    start_cpu = time.process_time()
    frames = list(InputSource(video))
    cpu = {"read": (time.process_time() - start_cpu) / len(frames)}
    images = [f.image for f in frames]
    detect, align, mask = DetectStage(config), AlignStage(config), MaskStage(config)
    for stage in (detect, align, mask):
        stage.load()
    rates, faces, found = {}, [], []
    start, start_cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(images), detect.batch_size):
        batch = images[i:i + detect.batch_size]
        for image, in_frame in zip(batch, detect.run(batch)):
            faces += [(image, face) for face in in_frame]
            found.append(in_frame)
    rates["detect"] = len(images) / (time.perf_counter() - start)
    cpu["detect"] = (time.process_time() - start_cpu) / len(images)
    for name, stage in (("align", align), ("mask", mask)):
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(faces), stage.batch_size):
            chunk = faces[i:i + stage.batch_size]
            stage.run([image for image, _ in chunk], [face for _, face in chunk])
        rates[name] = len(images) / (time.perf_counter() - start)
        cpu[name] = (time.process_time() - start_cpu) / len(images)
    with tempfile.TemporaryDirectory() as tmp:
        preparer = FramePreparer(_settings(video, Path(tmp), config).output, FaceNames(None))
        start_cpu = time.process_time()
        for frame, in_frame in zip(frames, found):
            preparer.prepare(ExtractMedia(frame.filename, frame.image, in_frame))
        cpu["write"] = (time.process_time() - start_cpu) / len(frames)
    return rates, cpu


def face_size_cost(video: Path, config: StageConfig, sizes=(256, 512), rounds: int = 3) -> None:
    """CPU a face costs to prepare (crop, thumbnail, PNG with its headers) at each face size, the
    PNG encoding alone too, on the sample video's faces, sizes alternating over ``rounds``."""
    from extractor import png

    frames = list(InputSource(video))
    detect, align = DetectStage(config), AlignStage(config)
    for stage in (detect, align):
        stage.load()
    found = []
    for i in range(0, len(frames), detect.batch_size):
        batch = [f.image for f in frames[i:i + detect.batch_size]]
        for image, faces in zip(batch, detect.run(batch)):
            align.run([image] * len(faces), faces)
            found.append(faces)
    face_count = sum(len(faces) for faces in found)
    encode_seconds, real_encode = {}, png.encode_png

    def timed_encode(*args, **kwargs):
        start = time.process_time()
        try:
            return real_encode(*args, **kwargs)
        finally:
            encode_seconds[current] += time.process_time() - start

    prepare = {size: 0.0 for size in sizes}
    encode_seconds.update(prepare)
    png_bytes = dict.fromkeys(sizes, 0)
    import extractor.output as output_module
    output_module.encode_png = timed_encode
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(rounds):
                for current in sizes:
                    settings = OutputSettings(Path(tmp), Path(tmp) / "a.jsonl", size=current)
                    preparer = FramePreparer(settings, FaceNames(None))
                    start = time.process_time()
                    for frame, faces in zip(frames, found):
                        prepared = preparer.prepare(ExtractMedia(frame.filename, frame.image, faces))
                        png_bytes[current] += sum(len(data) for data in prepared.pngs)
                    prepare[current] += time.process_time() - start
    finally:
        output_module.encode_png = real_encode
    faces_timed = face_count * rounds
    print(f"\n| face PNG side (`{face_count}` faces of the sample video, {rounds} rounds) | prepare, CPU ms a face "
          "| of which PNG encoding | PNG KB a face |")
    print("| --- | --- | --- | --- |")
    for size in sizes:
        print(f"| {size} | {1000 * prepare[size] / faces_timed:.2f} | {1000 * encode_seconds[size] / faces_timed:.2f} "
              f"| {png_bytes[size] / faces_timed / 1024:.0f} |")


def compare(video: Path, config: StageConfig, detect_workers: int) -> None:
    print(f"input: {video} ({int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))} frames), "
          f"{psutil.cpu_count()} CPUs; detector {config.detector}, aligner {config.aligner}, "
          f"maskers {', '.join(config.maskers)}")
    with tempfile.TemporaryDirectory() as tmp:
        with MemorySampler() as single_mem:
            single = run_single_process(_settings(video, Path(tmp) / "single", config))
        written: list[tuple[float, int]] = []
        options = EngineOptions(workers={"detect": detect_workers, "align": 1, "mask": 1}, count_bytes=True,
                                on_frame_written=lambda n: written.append((time.monotonic(), n)))
        with MemorySampler() as pool_mem:
            pool = run_pool(_settings(video, Path(tmp) / "pool", config), options)
    alone, cpu = stage_alone(video, config)
    bottleneck = min(alone, key=alone.get)
    # However the work is spread, the machine cannot go faster than its cores over the CPU time
    # a frame needs in all stages: the pool's distance to that bound is its own overhead.
    cpu_bound = (psutil.cpu_count() or 1) / sum(cpu.values())
    single_fps, pool_fps = single.frames_per_second, pool.frames_per_second
    steady_fps = steady_rate(written)
    print("\n| measure | value |\n| --- | --- |")
    print(f"| single-process frames/s (end to end, model loads included) | {single_fps:.2f} |")
    print(f"| pool frames/s ({detect_workers} detect, 1 align, 1 mask worker) | {pool_fps:.2f} |")
    print(f"| **pool / single-process** | **{pool_fps / single_fps:.2f}** |")
    print("| stages alone, frames/s | " + ", ".join(f"{k} {v:.1f}" for k, v in alone.items()) + " |")
    print(f"| **pool / bottleneck stage alone ({bottleneck})** | **{pool_fps / alone[bottleneck]:.2f}** |")
    print(f"| pool frames/s once running (the last 90 % of the frames: start-up and model loads left out) | "
          f"{steady_fps:.2f} |")
    print(f"| **pool once running / bottleneck stage alone ({bottleneck})** | "
          f"**{steady_fps / alone[bottleneck]:.2f}** |")
    print("| CPU ms per frame, each stage alone | " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in cpu.items()) + " |")
    print(f"| CPU bound: {psutil.cpu_count()} cores / CPU time per frame of all stages, frames/s | {cpu_bound:.2f} |")
    print(f"| **pool once running / CPU bound** | **{steady_fps / cpu_bound:.2f}** |")
    print(f"| bytes pickled per frame (all queues) | {pool.bytes_per_frame:.0f} |")
    print(f"| bytes pickled per face | {pool.bytes_pickled / max(pool.faces, 1):.0f} |")
    mb = 1024 * 1024
    for name, mem in (("single-process", single_mem), ("pool", pool_mem)):
        print(f"| {name} total RSS peak / final (MB) | {mem.peak(1) / mb:.0f} / {mem.final(1) / mb:.0f} |")
        print(f"| {name} total PSS peak / final (MB) | {mem.peak(2) / mb:.0f} / {mem.final(2) / mb:.0f} |")
    print(f"| pool frame buffer | {pool.slots} slots x {pool.slot_bytes / mb:.1f} MB |")
    print(f"| frames, faces (single / pool) | {single.frames}, {single.faces} / {pool.frames}, {pool.faces} |")


def steady_rate(written: list[tuple[float, int]]) -> float:
    """Frames/s between the moment 10 % of the frames were written and the last one."""
    if len(written) < 2:
        return 0.0
    first = next(entry for entry in written if entry[1] >= 0.1 * written[-1][1])
    return (written[-1][1] - first[1]) / max(written[-1][0] - first[0], 1e-9)


def photo_folder(folder: Path, copies: int) -> int:
    """Every annotated photo of ../shared/data, ``copies`` times, flat in ``folder``; returns the count."""
    count = 0
    for listing in sorted(DATA.glob("*/annotations.json")):
        for image in json.loads(listing.read_text())["images"]:
            if not image.get("faces"):
                continue
            source = listing.parent / image["file"]
            for copy in range(copies):
                shutil.copy(source, folder / f"{listing.parent.name}_{copy}_{source.name.replace('/', '_')}")
                count += 1
    return count


def face_crop(image, box, side: int = 256, jitter=(0.0, 0.0, 0.0), around: float = 1.8):
    """The face of ``box`` cut out square at ``around`` times its box (1.8: as a face set's crops
    are; 1.2: a thumbnail the face fills), brought to ``side`` px (0: at its own size);
    ``jitter``: its centre moved and its side scaled by these shares of the box. Returns the crop
    and the matrix from the photo to it."""
    import numpy as np

    left, top, right, bottom = box
    cut = max(right - left, bottom - top) * around * (1 + jitter[2])
    x = (left + right - cut) / 2 + jitter[0] * (right - left)
    y = (top + bottom - cut) / 2 + jitter[1] * (bottom - top)
    scale = side / cut if side else 1.0
    size = side or int(round(cut))
    matrix = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]])
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT), matrix


def face_crop_folder(folder: Path, copies: int) -> int:
    """Every listed face of ../shared/data of 30 px or more as 256 px crops (a face set's, at 1.8
    times its box), ``copies`` of each moved by up to 5 % of its box; returns the count."""
    import numpy as np

    count = 0
    for listing in sorted(DATA.glob("*/annotations.json")):
        for number, entry in enumerate(json.loads(listing.read_text())["images"]):
            boxes = [face["box"] for face in entry.get("faces") or []
                     if max(face["box"][2] - face["box"][0], face["box"][3] - face["box"][1]) >= 30]
            image = cv2.imread(str(listing.parent / entry["file"])) if boxes else None
            for face, box in enumerate(boxes if image is not None else []):
                for copy in range(copies):
                    jitter = np.random.default_rng(count).uniform(-0.05, 0.05, 3)
                    crop, _ = face_crop(image, box, 256, tuple(jitter))
                    cv2.imwrite(str(folder / f"{listing.parent.name}_{number}_{face}_{copy}.jpg"), crop,
                                [cv2.IMWRITE_JPEG_QUALITY, 92])
                    count += 1
    return count


def _timed_command(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the command and every process under it, and its stdout.

    CPU is sampled every 50 ms (the last sample of each process counts): a process's wait
    status does not reach ``getrusage`` when its parent does not wait for it (fork servers)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu: dict[int, float] = {}

    def sample() -> None:
        while proc.poll() is None:
            try:
                tree = [psutil.Process(proc.pid)]
                tree += tree[0].children(recursive=True)
            except psutil.Error:
                break
            for member in tree:
                try:
                    times = member.cpu_times()
                    cpu[member.pid] = times.user + times.system
                except psutil.Error:
                    continue
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{err[-2000:]}")
    return elapsed, sum(cpu.values()), out


def against_peer(copies: int, cpus: int, rounds: int = 5, also: list[str] | None = None, fill=None,
                 also_config: str = "") -> None:
    """Wall time, process start and model loads included, of the peer's HOG detection and of a
    default ``extractor run`` on the same photo folder (``fill``: what fills it, by default
    ``photo_folder``), one after the other, ``rounds`` times (alternating, so a noisy neighbour on
    a shared machine hits both); each round gives a ratio, and the median ratio is the figure.
    ``also`` (extra flags) or ``also_config`` (a ``--config`` file's text): one more extractor run
    in each round (e.g. ``--size 256``), for the same ratio. Then each tool on one photo: its
    start-up CPU, which with the folder's CPU gives its CPU per further photo."""
    bin_dir = Path(sys.executable).parent
    peer = bin_dir / "face_detection"
    ours = [str(bin_dir / "extractor"), "--loglevel", "WARNING", "run", "--no-progress", "-i"]
    variants = {"peer": lambda folder, out: [str(peer), "--cpus", str(cpus), str(folder)],
                "ours": lambda folder, out: ours + [str(folder), "-o", str(out)]}
    also_label = " ".join(also or []) + (f"--config ({' '.join(also_config.split())})" if also_config else "")

    runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in variants}  # (wall, cpu) per round
    peer_out = ""
    with tempfile.TemporaryDirectory() as tmp:
        if also or also_config:
            config = Path(tmp) / "also.toml"
            config.write_text(also_config)
            also_run = ours[:3] + (["--config", str(config)] if also_config else []) + ours[3:]
            variants["also"] = lambda folder, out: also_run + [str(folder), "-o", str(out)] + (also or [])
            runs["also"] = []
        photos, one = Path(tmp) / "photos", Path(tmp) / "one"
        photos.mkdir()
        one.mkdir()
        count = (fill or photo_folder)(photos, copies)
        first = sorted(photos.iterdir())[0]
        shutil.copy(first, one / first.name)
        for _ in range(rounds):
            for tool, command in variants.items():
                shutil.rmtree(Path(tmp) / tool, ignore_errors=True)
                wall, cpu, out = _timed_command(command(photos, Path(tmp) / tool))
                runs[tool].append((wall, cpu))
                if tool == "peer":
                    peer_out = out
        faces = len(list((Path(tmp) / "ours").glob("*.png")))
        start_up = {tool: _timed_command(command(one, Path(tmp) / f"one_{tool}"))[:2]
                    for tool, command in variants.items() if tool != "also"}
    rates = {tool: [count / wall for wall, _ in walls] for tool, walls in runs.items()}

    def ratios(tool: str) -> list[float]:
        return sorted(a / b for a, b in zip(rates[tool], rates["peer"]))

    def ratio_cell(tool: str) -> str:
        values = ratios(tool)
        return f"**{values[len(values) // 2]:.2f}** ({', '.join(f'{r:.2f}' for r in values)})"

    what = "every annotated photo" if fill in (None, photo_folder) else f"each ({fill.__name__})"
    print(f"images: {count} ({copies} copies of {what} of {DATA}), {psutil.cpu_count()} CPUs, "
          f"{rounds} alternating rounds")
    print("\n| tool (same folder, one run) | images/s (each round) | faces |\n| --- | --- | --- |")
    print(f"| face_recognition 1.3.0 `face_detection --cpus {cpus}` (HOG, detection only) | "
          f"{', '.join(f'{r:.1f}' for r in rates['peer'])} | {len(peer_out.splitlines())} |")
    print(f"| `extractor run` defaults (detect + align + mask + write 512 px PNGs) | "
          f"{', '.join(f'{r:.1f}' for r in rates['ours'])} | {faces} |")
    print(f"| **extractor / face_recognition** (median of the rounds' ratios) | {ratio_cell('ours')} | |")
    if also or also_config:
        print(f"| `extractor run` {also_label} | {', '.join(f'{r:.1f}' for r in rates['also'])} | |")
        print(f"| **extractor {also_label} / face_recognition** | {ratio_cell('also')} | |")
    print("\n| tool | CPU-s for the folder (median of rounds) | one photo: wall s, CPU-s (start-up) | "
          "CPU ms per further photo |\n| --- | --- | --- | --- |")
    for tool, label in (("peer", "face_recognition"), ("ours", "extractor")):
        cpu = sorted(c for _, c in runs[tool])[len(runs[tool]) // 2]
        wall_one, cpu_one = start_up[tool]
        print(f"| {label} | {cpu:.1f} | {wall_one:.1f}, {cpu_one:.1f} | {(cpu - cpu_one) / (count - 1) * 1000:.0f} |")


def detectors_on_video(video: Path, detectors: list[str]) -> None:
    """End-to-end pool frames/s (default flags) of each detector on the sample video."""
    print("\n| detector | sample video frames/s (pool, defaults) | faces |\n| --- | --- | --- |")
    for name in detectors:
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_pool(_settings(video, Path(tmp), StageConfig(detector=name)), EngineOptions())
        print(f"| {name} | {summary.frames_per_second:.2f} | {summary.faces} |")


def long_video(video: Path, target_frames: int, folder: Path, size: tuple[int, int] | None = None,
               whole_loops: bool = True) -> Path:
    """The sample video repeated to ``target_frames`` frames (rounded up to whole repeats when
    ``whole_loops``), scaled to ``size`` (width, height) if given."""
    path = folder / ("soak.mp4" if size is None else f"video_{size[0]}x{size[1]}.mp4")
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
    if whole_loops:
        target_frames = -(-target_frames // len(frames)) * len(frames)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for index in range(target_frames):
        writer.write(frames[index % len(frames)])
    writer.release()
    return path


def soak(video: Path, config: StageConfig, target_frames: int, detect_workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        long = long_video(video, target_frames, Path(tmp))
        total = int(cv2.VideoCapture(str(long)).get(cv2.CAP_PROP_FRAME_COUNT))
        progress: list[tuple[float, int]] = []
        options = EngineOptions(workers={"detect": detect_workers, "align": 1, "mask": 1},
                              on_frame_written=lambda n: progress.append((time.monotonic(), n)))
        with MemorySampler(interval=1.0) as mem:
            summary = run_pool(_settings(long, Path(tmp) / "soak", config), options)
    print(f"\nsoak: {summary.frames} frames ({total} in the video), {summary.faces} faces, "
          f"{summary.frames_per_second:.2f} frames/s")

    def at(fraction: float) -> tuple[int, int, int]:
        """Memory sampled when ``fraction`` of the frames were written."""
        when = next(t for t, n in progress if n >= fraction * summary.frames)
        sample = min(mem.samples, key=lambda s: abs(s[0] - when))
        return sample[1], sample[2], sample[3]

    mb = 1024 * 1024
    print("| progress | total RSS (MB) | total PSS (MB) | shared memory, machine (MB) |\n| --- | --- | --- | --- |")
    for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
        rss, pss, shm = at(fraction)
        print(f"| {fraction:.0%} | {rss / mb:.0f} | {pss / mb:.0f} | {shm / mb:.0f} |")
    rss10, pss10, _ = at(0.1)
    rss100, pss100, _ = at(1.0)
    print(f"| **growth 10% -> 100%** | **{100 * (rss100 - rss10) / rss10:+.1f} %** | "
          f"**{100 * (pss100 - pss10) / pss10:+.1f} %** | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO if DEFAULT_VIDEO.exists() else FALLBACK_VIDEO)
    parser.add_argument("--detect-workers", type=int, default=1)
    parser.add_argument("--soak", type=int, default=2000, help="frames for the soak run (0: skip it)")
    parser.add_argument("--copies", type=int, default=8, help="copies of each photo in the peer comparison")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of the peer comparison (a 9 s run moves by a second between runs)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray vs pool comparison")
    parser.add_argument("--detectors", default="centerface,mtcnn,blazeface,dlib-hog",
                        help="detectors timed on the sample video ('' to skip)")
    parser.add_argument("--only", choices=["peer", "face-sizes", "ray", "crops"], help="run one part only "
                        "(crops: the peer comparison on 256 px face crops, also with CenterFace's own_size_first off)")
    parser.add_argument("--also", default="", help="flags of one more extractor run in the peer comparison")
    args = parser.parse_args()
    config = StageConfig(maskers=("components",))
    if args.only == "ray":
        ray_against_pool(args.video, config, args.rounds)
        return
    if args.only in ("crops", None):  # 256 px face crops: seen at their own size first, and enlarged as before
        against_peer(10, psutil.cpu_count() or 1, args.rounds, fill=face_crop_folder,
                     also_config="[plugins.detect.centerface]\nown_size_first = false\n")
    if args.only == "crops":
        return
    if args.only != "face-sizes":
        against_peer(args.copies, psutil.cpu_count() or 1, args.rounds, args.also.split() or None)
    if args.only != "peer":
        face_size_cost(args.video, config)
    if args.only:
        return
    if args.detectors:
        detectors_on_video(args.video, args.detectors.split(","))
    compare(args.video, config, args.detect_workers)
    if not args.no_ray:
        ray_against_pool(args.video, config, 2)
    if args.soak:
        soak(args.video, config, args.soak, args.detect_workers)


if __name__ == "__main__":
    main()
