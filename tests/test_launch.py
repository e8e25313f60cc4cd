"""The ``extractor`` entry point starts the pool's fork server before the CLI's imports when, and
only when, the command line asks for a pool run; a run that then fails leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from extractor.launch import starts_workers
from fault_scenarios import group_gone


@pytest.mark.parametrize("args, expected", [
    (["run", "-i", "in", "-o", "out"], True),
    (["--loglevel", "WARNING", "--config", "run", "run", "-i", "in", "-o", "out"], True),
    (["run", "-i", "in", "-o", "out", "--engine", "pool"], True),
    (["run", "-i", "in", "-o", "out", "--engine", "single"], False),
    (["run", "-i", "in", "-o", "out", "--engine=ray"], False),
    (["run", "-i", "in", "-o", "out", "--single-process"], False),
    (["run", "-i", "in", "-o", "out", "-P"], False),  # faceswap's --singleprocess
    (["run", "--help"], False),
    (["--config", "run", "plugins"], False),  # "run" here is the config file's name
    (["eval", "run"], False),
    (["--help"], False),
    ([], False),
])
def test_only_a_pool_run_starts_the_fork_server_early(args, expected):
    assert starts_workers(args) is expected


EARLY_START_PROBE = """
import sys
import multiprocessing.forkserver as forkserver
import extractor.workers.start as start
real = start.worker_context
def probe():
    print("cli imported first:", "extractor.cli" in sys.modules)
    return real()
start.worker_context = probe
sys.argv = ["extractor", "run", "-i", "/no/such/folder", "-o", "/no/out"]
from extractor.launch import main
try:
    main()
except SystemExit:
    print("server started:", forkserver._forkserver._forkserver_pid is not None)
"""


def test_the_fork_server_starts_before_the_cli_is_imported():
    done = subprocess.run([sys.executable, "-c", EARLY_START_PROBE], capture_output=True, text=True, timeout=120)
    assert "cli imported first: False" in done.stdout and "server started: True" in done.stdout, done.stdout


def test_a_run_that_fails_after_the_early_start_leaves_no_process():
    done = subprocess.Popen([sys.executable, "-m", "extractor", "run", "-i", "/no/such/folder", "-o", "/no/out"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 1 and "input does not exist" in stderr and "Traceback" not in stderr
    assert group_gone(done.pid, 10), "the fork server outlived the command"
