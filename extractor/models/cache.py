"""Where files derived from an installed model file are kept, so that a run never derives them again.

``$EXTRACTOR_CACHE``, else ``$XDG_CACHE_HOME/extractor``, else ``~/.cache/extractor`` (no home:
the temporary folder). Each derived file or folder is named after its model file's name, size
and modification time, and the format of what is derived: a changed or reinstalled model, or a
new format, gets a new name, never a stale copy. Writes are atomic (written beside, then
renamed): runs deriving at the same time leave one complete copy.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or _home() / ".cache") / "extractor"
    return Path(os.environ.get("EXTRACTOR_CACHE") or default)


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:  # no HOME and no password entry (some containers)
        return Path(tempfile.gettempdir()) / f"extractor-{os.getuid()}"


def derived_path(model: Path, version: int, suffix: str = "") -> Path:
    """``<model name>-<size>-<modification ns>-v<version><suffix>`` under the cache root."""
    stat = Path(model).stat()
    return cache_root() / f"{Path(model).stem}-{stat.st_size}-{stat.st_mtime_ns}-v{version}{suffix}"


def write_atomically(target: Path, data: bytes) -> None:
    """``data`` to ``target`` through a scratch file renamed over it; raises OSError when the
    cache cannot be written (the caller then goes on without it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
