"""Model files: those installed packages ship (found without importing the package), and the
files derived from them once, kept so that a run never derives them again.

Derived files live under ``$EXTRACTOR_CACHE``, else ``$XDG_CACHE_HOME/extractor``, else ``~/.cache/extractor`` (no home:
the temporary folder). Each derived file or folder is named after its model file's name, size
and modification time, and the format of what is derived: a changed or reinstalled model, or a
new format, gets a new name, never a stale copy. Writes are atomic (written beside, then
renamed): runs deriving at the same time leave one complete copy.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed: run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise RuntimeError(f"model file {path} is missing from package {package!r}")
    return path


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
