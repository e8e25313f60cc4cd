"""Replacing a file whole: its new bytes written beside it, on the disk, then renamed over it.

Why: a kill leaves the old file or the new one, each whole, and a power cut cannot leave an
empty file under the name (the rename reaches the disk only after the bytes it names). For the
files extractor writes whole: a rewritten alignments file, faceswap's ``.fsa``, the contact sheet.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from extractor.regular_files import open_regular


def scratch_path(target: Path) -> Path:
    """Where ``replace_file`` writes ``target``'s new bytes before renaming them over it."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def replace_file(target: Path, chunks: bytes | Iterable[bytes]) -> None:
    """``target`` holds ``chunks`` (bytes, or pieces written as they come: a long file need not be
    in memory). Raises OSError, the old file left as it was and no scratch file behind."""
    scratch = scratch_path(target)
    try:
        with open(scratch, "wb") as handle:
            for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def lost_write(path: Path) -> bool:
    """Whether a file holds nothing: empty or zeros, what a file whose bytes had not reached the
    disk looks like after a power cut. Nothing of anyone's is lost when it is written over.
    False when it cannot be read."""
    try:
        with open_regular(path) as handle:
            return not any(block.strip(b"\0") for block in iter(lambda: handle.read(1 << 16), b""))
    except OSError:
        return False
