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
import sys

ENDED = b"ended"
# Seconds a finished run waits for its watcher to end: at once, but where a process forked from
# the run still holds the pipe (the watcher then ends with that one, quiet).
WATCHER_WAIT = 5.0

_pipe: int | None = None  # the write end of the running run's watcher, if any


class CutShortWatch:
    """For the length of a ``with`` block, a watcher that says ``what`` and where the finished
    frames are (``alignments``, if it exists by then) should the process end without leaving the
    block. A class, not a contextlib generator: the watcher runs this file by a bare interpreter,
    which then imports nothing it does not use."""

    def __init__(self, what: str, alignments: os.PathLike | str):
        self.what, self.alignments = what, str(alignments)
        self.watcher, self.pipe, self.previous = None, None, None

    def __enter__(self):
        global _pipe
        if os.name != "posix":  # a pipe end cannot be handed to a child there (pass_fds): no watcher
            return self
        import subprocess

        from extractor.workers.limits import OUT_OF_MEMORY, oom_kill_file

        # The out-of-memory killer may end this process rather than a worker: said as such where
        # the cgroup's count of its kills rose during the run (read here and by the watcher alike).
        counter = oom_kill_file()
        kills = oom_kills_now(str(counter)) if counter is not None else None
        oom = [str(counter), str(kills), f"the run was killed by {OUT_OF_MEMORY}"] if kills is not None else []
        read_end, write_end = os.pipe()  # neither is inherited by other children (PEP 446)
        try:
            self.watcher = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(read_end), self.what,
                                             self.alignments, *oom], pass_fds=(read_end,), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL)
        except OSError:  # no process can be started (a process limit): the run goes on without one
            os.close(write_end)
            return self
        finally:
            os.close(read_end)
        self.pipe, self.previous, _pipe = write_end, _pipe, write_end
        return self

    def __exit__(self, *exc) -> None:
        global _pipe
        import subprocess

        if self.watcher is None:
            return
        ending_on_purpose()
        _pipe = self.previous
        os.close(self.pipe)
        try:  # it ends at once, unless a process forked from this one still holds the pipe: then later, quiet
            self.watcher.wait(timeout=WATCHER_WAIT)
        except subprocess.TimeoutExpired:  # it has been told: it ends on its own
            pass


def ending_on_purpose() -> None:
    """Tells the running run's watcher that the run ends having said why: at the end of every
    run, and before an ``os._exit`` that has printed its own error line."""
    if _pipe is not None:
        try:
            os.write(_pipe, ENDED)
        except OSError:
            pass


def oom_kills_now(counter: str) -> int | None:
    """The ``oom_kill`` count of a cgroup's ``memory.events`` or ``memory.oom_control`` file."""
    try:
        with open(counter) as lines:
            for line in lines:
                name, _, value = line.strip().partition(" ")
                if name == "oom_kill" and value.isdigit():
                    return int(value)
    except OSError:
        pass
    return None


def watch(pipe: int, what: str, alignments: str, counter: str = "", kills_at_start: str = "",
          out_of_memory: str = "") -> None:
    """The watcher: reads until the pipe closes; speaks only where the run did not say it ended,
    saying ``out_of_memory`` where the cgroup's ``counter`` of OOM kills rose since the start."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):  # the run answers the terminal's signals
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    said = b""
    while chunk := os.read(pipe, 64):
        said += chunk
    if not said.endswith(ENDED):
        now = oom_kills_now(counter) if counter else None
        if now is not None and kills_at_start.isdigit() and now > int(kills_at_start):
            what = out_of_memory
        kept = (f"frames finished so far are in {alignments}; the same command with --skip-existing goes on from them"
                if os.path.exists(alignments) else "no frame was finished")
        try:
            os.write(2, f"Error: {what}: {kept}\n".encode())
        except OSError:
            pass  # no terminal left to tell


if __name__ == "__main__":
    watch(int(sys.argv[1]), *sys.argv[2:])
