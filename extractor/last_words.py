"""A run that is ended without a word still says where its finished frames are.

Some ends leave the process no chance to speak: Ray ends its driver with exit status 1 and
nothing said when the Ray node it runs on stops (``ray stop`` in another terminal, its raylet
killed or out of memory), and the kernel's out-of-memory killer or a ``kill -9`` ends any
process at once. The frames written before are kept (records are written whole), but the user
is left without the line that says so and how to go on.

So each run starts a small watcher process that holds the read end of a pipe whose write end
only the run holds. A run that ends through Python (finished, failed with its error line,
interrupted) tells it so first; where the pipe closes without that (the kernel closed it with
the process), the watcher says what happened, where the frames are and how to resume. It
starts in about 10 ms (a bare interpreter: ``-I -S``), ignores the terminal's signals (Ctrl-C
reaches the whole process group; the run answers it itself) and ends with the run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ENDED = b"ended"

# The watcher: reads until the pipe closes; speaks only where the run did not say it ended.
WATCHER = r"""# extractor-last-words
import os, signal, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
pipe, what, alignments = int(sys.argv[1]), sys.argv[2], sys.argv[3]
said = b""
while chunk := os.read(pipe, 64):
    said += chunk
if not said.endswith(b"ended"):
    kept = (f"frames finished so far are in {alignments}; the same command with --skip-existing goes on from them"
            if os.path.exists(alignments) else "no frame was finished")
    try:
        os.write(2, f"Error: {what}: {kept}\n".encode())
    except OSError:
        pass  # no terminal left to tell
"""

_pipe: int | None = None  # the write end of the running run's watcher, if any


@contextmanager
def said_if_cut_short(what: str, alignments: Path):
    """For the length of the block, a watcher that says ``what`` and where the finished frames
    are (``alignments``, if it exists by then) should the process end without leaving it."""
    global _pipe
    if os.name != "posix":  # a pipe end cannot be handed to a child there (pass_fds): no watcher
        yield
        return
    read_end, write_end = os.pipe()  # neither is inherited by other children (PEP 446)
    try:
        watcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHER, str(read_end), what, str(alignments)],
                                   pass_fds=(read_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    except OSError:  # no process can be started (a process limit): the run goes on without one
        os.close(read_end)
        os.close(write_end)
        yield
        return
    os.close(read_end)
    previous, _pipe = _pipe, write_end
    try:
        yield
    finally:
        ending_on_purpose()
        _pipe = previous
        os.close(write_end)
        watcher.wait()


def ending_on_purpose() -> None:
    """Tells the running run's watcher that the run ends having said why: at the end of every
    run, and before an ``os._exit`` that has printed its own error line."""
    if _pipe is not None:
        try:
            os.write(_pipe, ENDED)
        except OSError:
            pass
