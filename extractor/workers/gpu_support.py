"""Which installed runtimes can use an NVIDIA GPU, read from package metadata (no framework is
imported, so the coordinator stays light and quiet).

A GPU that no installed runtime can use is no GPU for the plan: a worker planned there would run
on the CPU anyway (the default install has ``tensorflow-cpu`` and CPU ONNX Runtime). Each GPU
worker also confirms, once started, that its framework lists the GPU it was given (the stage
worker's ``gpu_check``), since metadata says what was built, not what the driver accepts.
"""
from __future__ import annotations

import importlib.metadata as metadata

# GPU runtimes, fastest first where measured (docs/performance.md, one H200: CenterFace through
# PyTorch with CUDA graphs 1.6 ms a frame, JAX 6.4 ms with its pre- and post-processing);
# ONNX Runtime's CUDA provider and TensorFlow are not measured there yet.
GPU_RUNTIME_ORDER = ("keras/torch", "onnxruntime", "keras/jax", "keras/tensorflow")
# What installs each one (the README's GPU install).
INSTALL_COMMANDS = {"keras/torch": "make install BACKEND=torch GPU=1",
                    "keras/jax": "make install BACKEND=jax GPU=1",
                    "keras/tensorflow": "make install BACKEND=tensorflow GPU=1",
                    "onnxruntime": "make install BACKEND=torch GPU=1 (it adds onnxruntime-gpu)"}


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _needs_cuda_packages(name: str) -> bool:
    """Whether a package's unconditional requirements are NVIDIA's CUDA wheels (a CUDA build)."""
    requires = metadata.requires(name) or []
    return any(r.lower().startswith("nvidia-") and "extra ==" not in r for r in requires)


def gpu_capable_runtimes() -> set[str]:
    """Runtime labels (as the plan prints them) whose installed build can run on an NVIDIA GPU."""
    capable = set()
    if _installed("tensorflow") and not _installed("tensorflow-cpu") and any(
            (dist.metadata["Name"] or "").lower().startswith("nvidia-cudnn") for dist in metadata.distributions()):
        capable.add("keras/tensorflow")  # tensorflow[and-cuda]
    if any(_installed(f"jax-cuda{version}-plugin") for version in (12, 13)):
        capable.add("keras/jax")
    if _installed("torch") and (_needs_cuda_packages("torch") or "+cu" in metadata.version("torch")):
        capable.add("keras/torch")
    if _installed("onnxruntime-gpu"):
        capable.add("onnxruntime")
    return capable


def pick_gpu_runtime(candidates: list[str], capable: set[str]) -> str | None:
    """The first of a plugin's GPU runtimes (its order of preference) that can use a GPU here."""
    return next((label for label in candidates if label in capable), None)


def install_hint(candidates: list[str]) -> str:
    """The command that would give a plugin a GPU runtime: its most preferred one."""
    return INSTALL_COMMANDS.get(candidates[0], "make install BACKEND=torch GPU=1") if candidates else ""
