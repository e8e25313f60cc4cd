"""Which Keras 3 backend runs the models, and the GPU-memory budget each backend enforces.

Keras reads ``KERAS_BACKEND`` once, at its first import, and JAX reads its allocator variables at
its first import too: so a worker calls ``prepare_backend`` (environment only, nothing heavy
imported) before any model module, then ``limit_gpu_memory`` once the framework may load.

Budgets, one per worker, as each framework enforces them:
- TensorFlow: a logical device with ``memory_limit`` on the one visible GPU;
- JAX: ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` and ``XLA_PYTHON_CLIENT_MEM_FRACTION`` = budget /
  the GPU's total memory (the allocator refuses to grow past it);
- PyTorch: ``torch.cuda.set_per_process_memory_fraction`` with the same fraction.
"""
from __future__ import annotations

import importlib.util
import os

BACKENDS = ("tensorflow", "jax", "torch")


class BackendError(Exception):
    """The chosen backend is unknown or not installed."""


def installed_backends() -> list[str]:
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def default_backend() -> str:
    """TensorFlow (the default install's), else the first installed of JAX and PyTorch: on Python
    3.14, for which TensorFlow has no wheels, the install puts JAX in its place."""
    return next(iter(installed_backends()), "tensorflow")


def resolve_backend(name: str | None) -> str:
    """The backend to use: ``name``, else ``KERAS_BACKEND``, else the default; checked installed."""
    chosen = name or os.environ.get("KERAS_BACKEND") or default_backend()
    # A backend the user did not type (--backend) came from the environment: named as such.
    said = "" if name or not os.environ.get("KERAS_BACKEND") else " (from the environment's KERAS_BACKEND)"
    if chosen not in BACKENDS:
        raise BackendError(f"unknown backend {chosen!r}{said}; choose one of {', '.join(BACKENDS)}")
    if importlib.util.find_spec(chosen) is None:
        raise BackendError(f"backend {chosen!r}{said} is not installed (installed: "
                           f"{', '.join(installed_backends())}); see the README's GPU install section")
    return chosen


def chosen_backend(name: str | None) -> str | None:
    """The backend a run asks for: ``name`` (--backend), else ``KERAS_BACKEND``, checked
    installed; None when neither names one (auto: each plugin chooses its runtime)."""
    if not name and not os.environ.get("KERAS_BACKEND"):
        return None
    return resolve_backend(name)


def prepare_backend(backend: str, gpu_total_mb: int | None = None, budget_mb: int | None = None) -> None:
    """Set the environment a backend reads at import: call before Keras or the framework loads."""
    use_backend(backend)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "jax":
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if budget_mb and gpu_total_mb:
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{memory_fraction(budget_mb, gpu_total_mb):.4f}"


JAX_CACHE_BYTES = 512 << 20


def keep_jax_programs() -> None:
    """Keep JAX's compiled programs between runs, in extractor's cache folder: a JAX worker
    compiles each new input shape (MTCNN on a CPU: 10.5 s of model load and compiles in a run of
    the sample video's every third frame, 2.4 s once kept; about 15 s a GPU worker). Every
    program is kept (JAX keeps only those that took a second to compile, by default), at most
    512 MB, the least recently used dropped first, which JAX does only with ``filelock``
    installed: without it, none is kept. A user's own ``JAX_COMPILATION_CACHE_DIR`` is left as it is."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or importlib.util.find_spec("filelock") is None:
        return
    from extractor.models.model_files import cache_root

    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache_root() / "jax-programs")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(JAX_CACHE_BYTES))


def use_backend(backend: str) -> None:
    """Make ``backend`` the one Keras runs on in this process: set it before Keras is imported;
    once Keras runs on another backend it cannot change, which is an error, not a silent swap."""
    import sys

    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise BackendError(f"Keras already runs on {keras.backend.backend()!r} in this process; "
                               f"{backend!r} must be chosen before Keras is first imported")
        return
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        keep_jax_programs()


def memory_fraction(budget_mb: int, total_mb: int) -> float:
    return min(1.0, max(0.01, budget_mb / total_mb))


def limit_gpu_memory(backend: str, budget_mb: int | None, gpu_total_mb: int | None, threads: int | None) -> None:
    """Enforce the budget on the one visible GPU (and thread counts on the CPU) before first use."""
    if backend == "tensorflow":
        import tensorflow as tf

        if budget_mb:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=budget_mb)])
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "torch":
        import torch

        if budget_mb and gpu_total_mb and torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(memory_fraction(budget_mb, gpu_total_mb), 0)
        if threads:
            torch.set_num_threads(threads)
    # jax: everything is in the environment (prepare_backend)


def limit_onnxruntime_gpu_memory(budget_mb: int | None) -> None:
    """ONNX Runtime's CUDA arena limit for this worker (read when its session is made)."""
    from extractor.models.runners import ORT_GPU_BUDGET_VARIABLE

    if budget_mb:
        os.environ[ORT_GPU_BUDGET_VARIABLE] = str(budget_mb)


def cuda_visible() -> bool:
    """Whether this process may use an NVIDIA GPU, without importing any framework: the worker's
    device plan sets ``CUDA_VISIBLE_DEVICES``; elsewhere, whether nvidia-smi lists a GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return visible.strip() not in ("", "-1")
    from extractor.workers.devices import detect_gpus

    return bool(detect_gpus())


def gpu_visible(backend: str) -> bool:
    """Whether the backend sees a GPU in this process (after the plan set CUDA_VISIBLE_DEVICES)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import torch

    return torch.cuda.is_available()
