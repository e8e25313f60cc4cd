"""Where a run writes, made safe before any work starts: the folders writable, file names within
what the file system takes and apart where inputs share a stem or differ only in case, one run
per output (a lock), and never a face folder among the user's inputs.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import stat
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from extractor.alignments import OutputError
from extractor.regular_files import not_regular_text
from extractor.safe_write import scratch_path
from extractor.sources import not_regular, stat_if_there

if TYPE_CHECKING:
    from extractor.output import OutputSettings

logger = logging.getLogger(__name__)


def check_writable(settings: OutputSettings) -> list[Path]:
    """Refuse an output that cannot be written before any work starts (probe file per folder);
    the folders it made for the output, deepest first (removed again if the run writes nothing)."""
    # A long video's name + "_alignments.jsonl" (faceswap's place, without -o), and the files kept
    # beside it (its lock, a scratch copy when it is written again), within the file system's names.
    name, limit = os.fsencode(settings.alignments_path.name), name_max(settings.alignments_path.parent)
    beside = len(os.fsencode(scratch_path(settings.alignments_path).name)) - len(name)
    if len(name) + beside > limit:
        raise OutputError(f"{settings.alignments_path}: a file name of {len(name)} bytes, over the {limit - beside} "
                          f"its file system allows ({limit}, less the files kept beside it): name the alignments "
                          "file with -p/--alignments")
    try:
        there = stat_if_there(settings.alignments_path)
        is_folder = there is not None and stat.S_ISDIR(there.st_mode)
    except OSError as exc:  # a folder name too long, a folder that may not be entered...
        raise OutputError(f"{settings.alignments_path}: cannot be written ({exc.strerror or exc})") from None
    if is_folder:
        raise OutputError(f"{settings.alignments_path}: is a folder; -p/--alignments names the alignments file "
                          f"(as {settings.alignments_path / 'alignments.jsonl'})")
    if there is not None and not stat.S_ISREG(there.st_mode):
        # /dev/null took every record and lost them; a pipe or /dev/stdout hung or failed: the file
        # is read back (a resume, --skip-existing, the .fsa written at the end) and synced to disk.
        raise OutputError(f"{not_regular(settings.alignments_path)}: the alignments file is read back (by a resume, "
                          "by export); name a file with -p/--alignments")
    made: set[Path] = set()
    for folder in {settings.output_dir, settings.alignments_path.parent}:
        try:
            if folder.exists() and not folder.is_dir():
                what = ("-o names the folder the faces go to" if folder == settings.output_dir
                        else "the folder of the alignments file -p/--alignments names")
                raise OutputError(f"{folder}: is a file, not a folder ({what})")
            made.update(_missing_folders(folder))
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".extractor-write-test-{os.getpid()}"
            with open(probe, "wb") as handle:
                handle.write(b"probe")
                handle.flush()
                os.fsync(handle.fileno())
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"{folder}: output folder cannot be written ({exc.strerror or exc})") from None
    return sorted(made, key=lambda folder: len(folder.parts), reverse=True)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or of its nearest existing
    parent) takes; 255 where it does not say."""
    try:
        folder = next((parent for parent in (folder.absolute(), *folder.absolute().parents) if parent.exists()))
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, StopIteration):
        return 255


MAX_STEM_BYTES = 160  # face file stems longer than this are shortened (file systems allow 255 bytes)


def short_hash(text: str) -> str:
    """Eight hex digits of ``text``, to tell apart names that would otherwise be one file."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


MARK_BYTES = 9  # what ``marked`` adds: "~" and an 8-character hash


def marked(name: str, key: str, max_bytes: int) -> str:
    """``name`` cut to leave room for ``~`` and a hash of ``key`` (what tells it apart), within
    ``max_bytes`` once encoded (a character cut in two is dropped)."""
    cut = name.encode("utf-8", "surrogateescape")[:max_bytes - MARK_BYTES].decode("utf-8", "ignore")
    return f"{cut}~{short_hash(key)}"


class FaceNames:
    """Face file names, unique per frame key and short enough for any file system.

    faceswap's convention: ``<frame stem>_<face index>.png`` (``face.jpg`` -> ``face_0.png``).
    Where two inputs share a stem (``face.jpg`` and ``face.png``, or ``a/x.jpg`` and ``b/x.jpg``),
    or one told apart only by case (``Face.jpg`` and ``face.jpg``: one file on a drive that ignores
    case, as exFAT, macOS and Windows do), each gets a hash of its whole key after the stem; an
    over-long stem is cut and hashed the same way. Names depend only on the input listing, so a
    resumed run names faces as the first did.
    """

    def __init__(self, keys: list[str] | None):
        counts = Counter(self._stem(key).casefold() for key in keys or [])
        self.clashing = {stem for stem, count in counts.items() if count > 1}

    @staticmethod
    def _stem(key: str) -> str:
        path = PurePosixPath(key)
        return "_".join(path.parent.parts + (path.stem,)) if path.parent.parts else path.stem

    def __call__(self, key: str, face_index: int) -> str:
        stem = self._stem(key)
        if stem.casefold() in self.clashing or len(stem.encode("utf-8", "surrogateescape")) > MAX_STEM_BYTES:
            stem = marked(stem, key, MAX_STEM_BYTES + MARK_BYTES)
        return f"{stem}_{face_index}.png"


NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}  # flock not supported here


class OutputLock:
    """One run per output: an exclusive ``flock`` on a hidden lock file, ``<folder>/.extractor.lock``
    for a face folder (``for_folder``), ``.<name>.lock`` beside an alignments file
    (``for_alignments``: two runs into one alignments file, with their own -o or none, would
    write every frame twice).

    The kernel drops the lock with the process, whatever ends it (kill -9 included), so a lock
    left by a dead run is never in the way; the file holds the owner's pid for the message. The
    (hidden, empty once released) file stays: unlinking it would let two runs lock two inodes.
    """

    def __init__(self, path: Path, what: str, kind: str, other: str):
        """``what``: the output as the user named it; ``kind``: "this folder" or "this alignments
        file", for the messages; ``other``: the flag that names another."""
        self.path = path
        self.created = not os.path.lexists(path)  # by this run: removed again if the run writes nothing
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
        mode = os.fstat(self._fd).st_mode
        if not stat.S_ISREG(mode):  # a named pipe or a device under the lock's name: never ours to use
            os.close(self._fd)
            self._fd = None
            raise OutputError(f"{path}: {not_regular_text(mode)}, where extractor keeps the lock of {kind}: "
                              "remove it, or choose another " + other)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise OutputError(f"{what}: another extractor run (pid {owner}) is writing into {kind}; wait for it, "
                              f"or choose another {other}") from None
        except OSError as error:
            if error.errno not in NO_LOCKS:
                raise
            # An NFS mount without its lock daemon, some FUSE and network file systems: the run goes
            # on, as faceswap's would, without the guard against a second run into this output.
            logger.warning("%s: its file system cannot lock files (%s); nothing stops a second run writing into "
                           "%s at the same time", what, error.strerror, kind)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    @classmethod
    def for_folder(cls, folder: Path) -> "OutputLock":
        return cls(folder / ".extractor.lock", str(folder), "this folder", "-o")

    @classmethod
    def for_alignments(cls, path: Path) -> "OutputLock":
        return cls(path.parent / f".{path.name}.lock", str(path), "this alignments file", "-p (or -o)")

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def check_outside_inputs(settings: OutputSettings, input_path: Path, recursive: bool) -> None:
    """Never write among the user's inputs: a face folder that is the input folder (or below it
    with --recursive) would mix face PNGs with the images, could overwrite them, and a resumed
    run would read its own faces as inputs."""
    source = input_path.resolve()
    if not source.is_dir() or not (settings.save_faces or settings.preview_path):
        return  # one image or a video: face names (<stem>_<n>.png) cannot be the input's; no image written
    output = settings.output_dir.resolve()
    if output == source or (recursive and source in output.parents):
        raise OutputError(f"{settings.output_dir}: the face folder is {'inside ' if output != source else ''}the "
                          f"input folder {input_path}; faces would mix with your images: choose another -o")
