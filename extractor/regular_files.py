"""Opening for reading a file extractor finds in a folder or would write over (a face PNG's name,
the contact sheet, an ``.fsa`` target, an alignments file): never a named pipe or a device.

Why: ``open(path, "rb")`` on a named pipe waits for a writer for ever, and a device such as
/dev/zero never ends, so a check that a file is one of extractor's own hung the whole run where a
pipe stood under such a name. The file is opened without waiting and judged by what was opened.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotRegularFile(OSError):
    """The path names something other than a regular file; ``strerror`` says what."""

    def __str__(self) -> str:
        return self.strerror


def not_regular_text(mode: int) -> str:
    """What a file of this mode is, for a line that refuses it: "a named pipe, not a regular file"."""
    kind = next((name for test, name in KINDS if test(mode)), "")
    return f"{kind}, not a regular file" if kind else "not a regular file"


def open_regular(path) -> BinaryIO:
    """``path`` opened for reading in binary, or ``NotRegularFile`` (an OSError) where it is not a
    regular file; the other OSErrors of ``open`` as they come."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # a pipe opens at once, with or without a writer
    descriptor = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, not_regular_text(mode), str(path))
        if nonblocking:
            import fcntl

            fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~nonblocking)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular(path) -> bytes:
    """The bytes of the regular file at ``path`` (``open_regular``'s refusals)."""
    with open_regular(path) as handle:
        return handle.read()
