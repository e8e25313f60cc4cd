"""Runtime chatter (TensorFlow, absl, LiteRT's native INFO lines) goes to the log file only.

The user's terminal shows extractor's own lines; what the frameworks print is kept at DEBUG,
which ``--logfile`` records. Applied in the CLI and in every worker process (workers do not
inherit the coordinator's logging set-up: they start from a fork server, or by spawn).
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile

RUNTIME_LOGGERS = ("tensorflow", "absl", "h5py", "PIL", "jax", "keras")
logger = logging.getLogger("extractor.runtime")


def quiet_runtime_loggers() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in RUNTIME_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_to_log(what: str):
    """Send what native code writes to stderr (fd 2) during the block to the log at DEBUG."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                logger.debug("%s: %s", what, text)


def traceback_hint() -> str:
    """Where the user finds a traceback: the --logfile in use, or how to get one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return f"the traceback is in {handler.baseFilename}"
    return "run again with --logfile FILE for the traceback"
