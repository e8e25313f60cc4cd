"""How the pool starts its worker processes: a fork server that has imported the common modules once.

(The design sketch says ``spawn`` because TensorFlow is not fork-safe. The fork server is a fresh
interpreter, not a fork of the coordinator, and never imports a framework: workers forked from it
are as clean as spawned ones, and still import TensorFlow only after their device plan.)

With ``spawn`` every worker is a fresh interpreter that imports numpy, OpenCV and extractor
again: about 0.5 s of CPU per worker, a twelfth of a 100-photo run on 2 cores. With
``forkserver`` one server process imports them once, and each worker is forked from that server:
a clean process all the same (none of the coordinator's threads, models or frameworks; each
worker still applies its device plan before its own framework loads), without the repeated
imports. The server lives as long as the process that started it, so in a long-lived process
(tests, a notebook) later runs start faster still; it ends with that process.

The server keeps the environment of the moment it started, so a worker first takes
the coordinator's environment of this run (``WorkerEnvironment``): exactly what ``spawn`` gives.
"""
from __future__ import annotations

import logging
import multiprocessing
import os

logger = logging.getLogger(__name__)

# Imported once in the server. Never a framework (TensorFlow, JAX, PyTorch, ONNX Runtime, dlib):
# TensorFlow is not fork-safe, and each worker loads only its own, after its device plan (a test
# holds this list to it). Not ``__main__`` either: a user's script may import anything at its top;
# each worker re-runs it as spawn would, and for the ``extractor`` command that is one import of
# ``extractor.cli``, preloaded here.
PRELOAD = ["numpy", "cv2", "extractor.cli", "extractor.workers.stage_worker", "extractor.stages",
           "extractor.plugins.registry"]


def worker_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context for stage workers: ``forkserver`` where the system has it and
    the server starts (it listens on a socket in the temporary folder: a ``TMPDIR`` path too long
    for a socket, or no writable one, leaves ``spawn``, slower to start but equal)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    try:
        forkserver.ensure_running()
    except OSError as exc:
        logger.info("workers start by spawn: no fork server (%s)", exc)
        return multiprocessing.get_context("spawn")
    return context


def leave_fork_server() -> None:
    """Close, in a worker, the fork server's "alive" pipe end that every forked child inherits
    (so that it could start processes of its own; a worker starts none). The server ends when
    the last holder of that end is gone: were the workers to keep it, a killed coordinator would
    leave the server alive, and the workers' parent-death signal (``lifeline``) would never come."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        os.close(alive)
        server._forkserver_alive_fd = None


class WorkerEnvironment:
    """The coordinator's environment variables at the start of a run, for its workers to take."""

    def __init__(self):
        self.variables = dict(os.environ)

    def apply(self) -> None:
        os.environ.clear()
        os.environ.update(self.variables)
