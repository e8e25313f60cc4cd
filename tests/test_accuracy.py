"""Detection and landmark accuracy of the real models on the annotated sets of ../shared/data."""
from __future__ import annotations

import pytest

from conftest import DATA
from extractor.evaluate import evaluate
from extractor.stages import AlignStage, DetectStage, StageConfig


@pytest.fixture(scope="session")
def default_report(data_dir, default_config, detect_stage, align_stage):
    return evaluate(data_dir, default_config, detect_stage, align_stage)


def test_recall_over_all_annotated_sets(default_report):
    assert default_report.ground_truth == 36
    assert default_report.recall >= 0.95, default_report.format()


def test_no_false_positive_on_exhaustive_set_and_no_face_images(default_report):
    assert default_report.counted_detections > 0  # the rule really counted something
    assert default_report.false_positives == 0, default_report.format()


def test_default_aligner_landmark_error(default_report):
    """Median NME <= 0.05 over all human-annotated faces, mean <= 0.08 over boxes >= 40 px."""
    summary = default_report.summary()
    assert summary["human_faces"] == 8 and summary["human_faces_missed"] == 0
    assert summary["nme_median_all"] <= 0.05, default_report.format()
    assert summary["nme_mean_ge40"] <= 0.08, default_report.format()


def test_face_mesh_aligner_maps_to_ibug_68(data_dir, detect_stage):
    """The 468->68 mapping was fitted on dlib_faces only; measured here on human faces."""
    config = StageConfig(aligner="face-mesh")
    report = evaluate(data_dir / "ibug_300vw", config, detect_stage, AlignStage(config))
    values = report.nme_values()
    assert len(values) == 2
    assert values.max() <= 0.08, report.format()


@pytest.mark.parametrize("detector", ["blazeface", "dlib-hog"])
def test_other_detectors_find_the_large_human_faces(data_dir, detector):
    config = StageConfig(detector=detector)
    report = evaluate(data_dir / "ibug_300vw", config, DetectStage(config), AlignStage(config))
    assert report.matched == report.ground_truth == 2
    assert report.nme_values().max() <= 0.05, report.format()


def test_edge_case_face_counts(default_report):
    counts = {name.split("/")[-1]: (expected, found) for name, expected, found in default_report.counts}
    for name in ("32bit.png", "hopper_orientation_6.jpg", "hopper_gray.jpg"):
        expected, found = counts[name]
        assert found == expected, (name, counts[name])
    # t1.jpg: 6 people (a painted portrait on the wall may count as a 7th).
    assert counts["t1.jpg"][1] in (6, 7)


TURNED = DATA.parent / "turned"


@pytest.fixture(scope="session")
def turned_report(default_config, detect_stage, align_stage):
    return evaluate(TURNED, default_config, detect_stage, align_stage)


def test_turned_faces_are_reported_by_yaw_bin_over_the_box_size(turned_report):
    """The 12 AFLW2000-3D faces fall in the bins their published yaw says (8, 2, 2), each with
    an NME over the box size, and the report prints the bins."""
    bins = turned_report.yaw_bins()
    assert [(label, count) for label, count, _ in bins] == [("0-30", 8), ("30-60", 2), ("60-90", 2)]
    assert all(value is not None and 0 < value < 1 for _, _, value in bins)
    assert "0-30:" in turned_report.format() and turned_report.summary()["nme_box_yaw_60_90"] is not None


def test_yaw_estimated_from_the_points_follows_the_published_yaw():
    """Sets without a yaw are binned by ``estimate_yaw``: within 15 degrees of the published
    (3DMM-fitted) yaw on every turned face with one, frontal faces under 30."""
    import json

    from extractor.evaluate import estimate_yaw

    entries = json.loads((TURNED / "aflw2000_3d" / "annotations.json").read_text())["images"]
    for entry in entries:
        face = entry["faces"][0]
        assert abs(estimate_yaw(face["landmarks68"]) - abs(face["yaw_reference_3dmm"])) <= 15, entry["file"]


def test_quality_score_ranks_faces_by_their_true_error(default_report, turned_report):
    """The aligner's quality score against the true NME over the box of every human-annotated
    face (../shared/data and ../shared/turned): the worse the points, the lower the score."""
    from extractor.evaluate import pooled_landmarks

    pooled = pooled_landmarks([default_report, turned_report])
    assert pooled["human_faces"] == 20 and pooled["quality_rank_correlation"] <= -0.5, pooled


def test_profiles_are_aligned_within_the_goal_and_frontal_faces_as_before(default_report, turned_report):
    """Turned faces (dlib68's turned passes): the AFLW2000-3D profiles (60-90 degrees) at most 7 %
    of the box (14.7 % with the frontal passes alone); frontal faces of both sets as before
    (2.5 % on ../shared/data, 3.8 % on ../shared/turned, under 30 degrees). takeo.ppm (225 px
    wide) is detected at its own size, not enlarged: 0.0352 -> 0.0360 for its face, 0.02539 ->
    0.02548 for the set; on 94 face crops so detected the median stays (docs/accuracy.md)."""
    turned = {label: value for label, _, value in turned_report.yaw_bins()}
    frontal = {label: value for label, _, value in default_report.yaw_bins()}
    assert turned["60-90"] <= 0.07, turned_report.format()
    assert turned["0-30"] <= 0.0380 and frontal["0-30"] <= 0.0255, (turned, frontal)
