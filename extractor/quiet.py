"""Runtime chatter (TensorFlow, absl, LiteRT's native INFO lines) goes to the log file only.

The user's terminal shows extractor's own lines; what the frameworks print is kept at DEBUG,
which ``--logfile`` records. Applied in the CLI and in every worker process (workers do not
inherit the coordinator's logging set-up: they start from a fork server, or by spawn).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading

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


class _KeepRecords(logging.Handler):
    def __init__(self, level: int, records: list[logging.LogRecord]):
        super().__init__(level)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def records_kept(level: int = logging.INFO):
    """The log records of ``level`` and above made during the block, in the list it yields: for a
    process whose own log nobody reads (a Ray actor), to send them where they are read."""
    records: list[logging.LogRecord] = []
    handler, root = _KeepRecords(level, records), logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(min(before or logging.WARNING, level))  # records under the process's level are kept too
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


@contextlib.contextmanager
def start_up_quietly(what: str):
    """A model's load in this process: what the frameworks' native code prints goes to the log
    only (``native_stderr_to_log``); extractor's own records of the block, which that holds back
    too, are given again after it. Yields the list of those records."""
    with records_kept() as kept:
        with native_stderr_to_log(what):
            yield kept
    for record in kept:
        logging.getLogger(record.name).handle(record)


@contextlib.contextmanager
def python_warnings_to_log(package: str):
    """During the block, Python warnings raised by ``package``'s own code go to the log at DEBUG
    (Ray Data's advice on tuning its own pipeline); any other warning shows as it would."""
    import warnings

    folder = os.sep + package + os.sep
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if folder in filename:
                logger.debug("%s: %s: %s (%s:%d)", package, category.__name__, message, filename, lineno)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


@contextlib.contextmanager
def native_lines_to_log(pattern: re.Pattern, what: str):
    """During the block, lines written to stderr (fd 2) that match ``pattern`` go to the log at
    DEBUG; everything else (our own lines, progress bars) passes through as it comes.

    For a library's native logger that writes to stderr from its own threads for as long as the
    block lasts (Ray's core worker in the driver), where ``native_stderr_to_log`` would hold back
    our own output too."""
    read_fd, write_fd = os.pipe()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        pending = b""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if pattern.search(text):
                        logger.debug("%s: %s", what, text)
                    else:
                        os.write(saved, line + b"\n")
                if pending and not pending.startswith(b"["):  # a progress bar's \r update: show it now
                    os.write(saved, pending)
                    pending = b""
        if pending:
            os.write(saved, pending)

    thread = threading.Thread(target=pump, name="extractor-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer goes: the pump reads to its end and stops
        thread.join(timeout=5)
        os.close(saved)


class _ToLog(logging.Handler):
    """A library's log records, sent to the log file only (DEBUG), under ``what``."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def emit(self, record: logging.LogRecord) -> None:
        logger.debug("%s: %s", self.what, self.format(record))


def library_log_to_file(name: str, what: str) -> None:
    """Logger ``name``'s terminal handlers (a library's own, to stderr or stdout) replaced by one that
    sends its records to the log file: its errors and their tracebacks there, where extractor's
    one line on the terminal says what failed. Its file handlers stay."""
    library = logging.getLogger(name)
    for handler in list(library.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            library.removeHandler(handler)
    if not any(isinstance(handler, _ToLog) for handler in library.handlers):
        library.addHandler(_ToLog(what))


def traceback_hint() -> str:
    """Where the user finds a traceback: the --logfile in use, or how to get one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return f"the traceback is in {handler.baseFilename}"
    return "run again with --logfile FILE for the traceback"
