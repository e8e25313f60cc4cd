"""The run's watcher (``extractor.last_words``) on its own, in real processes: it speaks where a
process ends without leaving the block through Python, and only then. Real runs ended so:
``tests/test_ray_cluster.py -k node_stops`` and ``make faults``' coordinator killed."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO

LINE = "Error: the test process was cut short: "


def _process(body: str, alignments) -> subprocess.CompletedProcess:
    script = ("import os, sys\n"
              "from extractor.last_words import ending_on_purpose, CutShortWatch\n"
              f"with CutShortWatch('the test process was cut short', {str(alignments)!r}):\n"
              + "".join(f"    {line}\n" for line in body.splitlines()))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_a_process_that_ends_at_once_is_said_with_where_its_frames_are(tmp_path):
    alignments = tmp_path / "alignments.jsonl"
    alignments.write_text("")
    ended = _process("os._exit(1)", alignments)
    assert ended.returncode == 1
    assert ended.stderr == (f"{LINE}frames finished so far are in {alignments}; the same command with "
                            "--skip-existing goes on from them\n")
    assert _process("os._exit(1)", tmp_path / "none.jsonl").stderr == f"{LINE}no frame was finished\n"


def test_a_run_that_ends_through_python_or_says_why_itself_is_not_reported(tmp_path):
    for body in ("pass", "raise SystemExit(3)", "raise KeyboardInterrupt",
                 "ending_on_purpose()\nsys.stderr.write('Error: said\\n')\nsys.stderr.flush()\nos._exit(1)"):
        ended = _process(body, tmp_path / "alignments.jsonl")
        assert LINE not in ended.stderr, (body, ended.stderr)


def test_a_forked_child_that_holds_the_pipe_does_not_hold_the_run_up(tmp_path):
    """A process forked inside the block keeps the pipe open after the run has ended: the run
    waits at most WATCHER_WAIT for its watcher, which then stays quiet (it was told)."""
    script = ("import os, time\n"
              "from extractor import last_words\n"
              "last_words.WATCHER_WAIT = 0.5\n"
              f"watch = last_words.CutShortWatch('the test process was cut short', {str(tmp_path / 'a.jsonl')!r})\n"
              "watch.__enter__()\n"
              "if os.fork() == 0:  # holds the pipe's write end for 3 s\n"
              "    time.sleep(3)\n"
              "    os._exit(0)\n"
              "start = time.monotonic()\n"
              "watch.__exit__(None, None, None)\n"
              "print(round(time.monotonic() - start, 1))\n")
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert float(ended.stdout) < 2, ended
    assert LINE not in ended.stderr


def test_without_a_process_to_start_the_run_goes_on(tmp_path, monkeypatch):
    from extractor import last_words

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with last_words.CutShortWatch("cut short", tmp_path / "alignments.jsonl"):
        ran = True
    assert ran and last_words._pipe is None
