"""dlib's 68-point predictor run in numpy (``extractor.models.dlib_ert``) against dlib itself, on
real faces: the points must be dlib's, exactly, for every crop either pass of the aligner makes."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from conftest import DATA, VIDEO
from extractor.models.dlib_ert import ShapePredictor, cache_folder, convert, installed_model, read_dlib_model
from extractor.plugins.align.crop import pose_from_detection, pose_from_landmarks
from extractor.plugins.base import Batch
from extractor.plugins.registry import create
from extractor.sources import InputSource


@pytest.fixture(scope="session")
def numpy_trees() -> ShapePredictor:
    convert(installed_model())  # already done by `make install`: returns at once
    return ShapePredictor.load(installed_model())


@pytest.fixture(scope="session")
def real_crops(detect_stage) -> np.ndarray:
    """The aligner's crops of every face of ../shared/data's photos and of 14 video frames: the
    first pass (placed from CenterFace's points) and the refined pass (placed from landmarks)."""
    aligner = create("align", "dlib68", detector="centerface")
    aligner.load()
    images = [cv2.imread(str(path)) for path in sorted(DATA.glob("*/*.jpg")) + sorted(DATA.glob("*/*.png"))]
    images += [frame.image for frame in InputSource(VIDEO, every_n=20)]
    crops = []
    for image in (image for image in images if image is not None):
        faces = detect_stage.run([image])[0]
        if not faces:
            continue
        batch = Batch([image] * len(faces), faces)
        for poses in ([pose_from_detection(face, "centerface") for face in faces], None):
            batch.feed = poses or [pose_from_landmarks(face.landmarks) for face in faces]
            aligner.pre_process(batch)
            crops += batch.feed[0]
            aligner.predict(batch)
            aligner.post_process(batch)
    return np.stack(crops)


def test_numpy_trees_give_dlibs_points_exactly(numpy_trees, real_crops):
    import dlib

    aligner = create("align", "dlib68")
    aligner.load()
    predictor, box = dlib.shape_predictor(str(installed_model())), aligner.box  # the box the aligner uses
    expected = np.stack([[(p.x, p.y) for p in predictor(np.ascontiguousarray(crop), dlib.rectangle(*box)).parts()]
                         for crop in real_crops])
    assert len(real_crops) >= 140
    # In batches of several sizes: a face's points must not depend on its batch neighbours.
    for size in (1, 5, 16):
        found = np.concatenate([numpy_trees(real_crops[i:i + size], box) for i in range(0, len(real_crops), size)])
        differing = int((found != expected).any(axis=(1, 2)).sum())
        assert differing == 0, f"batches of {size}: {differing} of {len(found)} faces differ from dlib's"


def test_aligner_without_the_converted_model_runs_dlib_with_the_same_points(real_crops, tmp_path, monkeypatch):
    """No cache (a user who did not run `make install`): dlib itself runs, same points."""
    converted = create("align", "dlib68")
    converted.load()
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path))
    fallback = create("align", "dlib68")
    fallback.load()
    assert converted.trees is not None and fallback.trees is None
    assert fallback.runtime_label(None, False) == "dlib"
    points = []
    for aligner in (converted, fallback):
        batch = Batch([], feed=(list(real_crops[:12]), None))
        aligner.predict(batch)
        points.append(np.stack(batch.prediction))
    assert np.array_equal(*points)


def test_cache_is_keyed_to_the_model_file(tmp_path, monkeypatch):
    """A model file that changes (size or time) gets a new cache folder, never stale arrays."""
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.dat"
    model.write_bytes(b"\x01\x01")
    before = cache_folder(model)
    model.write_bytes(b"\x01\x01\x00")
    assert cache_folder(model) != before and cache_folder(model).parent == tmp_path / "cache"
    os.utime(model, ns=(1, 1))
    assert cache_folder(model).name.endswith("-1-v1")


def test_a_file_that_is_not_a_complete_predictor_is_refused_by_name(tmp_path):
    truncated = tmp_path / "cut.dat"
    truncated.write_bytes(installed_model().read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.dat.*not a complete dlib shape predictor"):
        read_dlib_model(truncated)
    other_version = tmp_path / "v2.dat"
    other_version.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="version is not 1"):
        read_dlib_model(other_version)


def test_an_unreadable_cache_falls_back_to_dlib(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path))
    folder = cache_folder(installed_model())
    folder.mkdir()
    for name in ("leaves", "anchors"):
        (folder / f"{name}.npy").write_bytes(b"not an array")
    (folder / "done").touch()
    assert ShapePredictor.load(installed_model()) is None
    assert "unreadable" in caplog.text and str(folder) in caplog.text
