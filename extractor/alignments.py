"""The alignments file: one JSON line per finished frame, appended as frames finish.

Why this format: appending a line is cheap and never rewrites what is already on disk, so an
interrupted run keeps every finished frame; JSON needs no pickle to read (safe on untrusted
files); each line carries a CRC-32 of its record, so a line torn by a kill in mid-write is
detected and dropped instead of poisoning the file.

Line layout: ``{"crc32": <int>, "record": {...}}`` where the CRC is over the record serialised
with sorted keys and no spaces (``canonical``).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from extractor.faces import DetectedFace
from extractor.regular_files import open_regular
from extractor.safe_write import replace_file

logger = logging.getLogger(__name__)
FORMAT = "extractor-alignments"
# 2: frames keyed as faceswap keys them (file name with extension), face file names in each
# record, and the settings that made the faces in the header.
FORMAT_VERSION = 2


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def frame_record(name: str, index: int, source: str, shape, faces: list[DetectedFace],
                 face_files: list[str] | None = None) -> dict:
    """The record of one frame: where it came from, its size, all its faces and their files."""
    record = {"frame": name, "index": int(index), "source": source,
              "image_shape": [int(v) for v in shape], "faces": [face.to_dict() for face in faces]}
    if face_files is not None:
        record["face_files"] = face_files
    return record


@dataclass
class TornRecord:
    line_number: int
    reason: str


class OutputError(Exception):
    """Output cannot be written (unwritable folder, full disk); the message names the file."""


class AlignmentsLost(OutputError):
    """The alignments file being written lost its name mid-run (deleted, moved, its folder too)."""


class DamagedHeader(OutputError):
    """An extractor alignments file whose header line is damaged (its records may be intact)."""


LOOKS_LIKE = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8", "a JPEG image"),
              (b"\x78", "compressed data (a faceswap .fsa?)"),
              (b"\x80", "a pickle (a faceswap .fsa?)"), (b"{", "JSON of another tool"), (b"[", "JSON of another tool"))


def _what_it_looks_like(head: bytes) -> str:
    if not head.strip():
        return "an empty file"
    return next((kind for magic, kind in LOOKS_LIKE if head.startswith(magic)), "its first line is not ours")


def read_header(path: Path) -> dict:
    """The header of an existing, non-empty alignments file; ``OutputError`` (naming the file and
    what it seems to be) for anything that is not an extractor alignments file, before any
    byte of it is changed."""
    try:
        with open_regular(path) as handle:
            first = handle.readline(1 << 16)
    except OSError as exc:
        raise OutputError(f"{path}: cannot read the existing alignments file ({exc.strerror or exc})") from None
    try:
        wrapper = json.loads(first)
        header = wrapper["record"]["header"]
        if not _valid_line(first.rstrip(b"\n")) or header["format"] != FORMAT or \
                not isinstance(header.get("made_with", {}), dict):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        if FORMAT.encode() in first[:256]:  # ours, damaged: say so, and how to go on
            raise DamagedHeader(f"{path}: the header line of this extractor alignments file is damaged (it fails "
                                "its checksum or does not parse); the frame records after it are checked one by one: "
                                "add --skip-existing to resume (the header is written again from this run's "
                                "settings), or --overwrite to start again") from None
        raise OutputError(f"{path}: this file is not an extractor alignments file ({_what_it_looks_like(first)}); "
                          "it was left untouched: choose another --alignments path") from None
    return header


def _line(record: dict) -> bytes:
    body = canonical(record)
    return f'{{"crc32":{zlib.crc32(body.encode())},"record":{body}}}\n'.encode()


def _header(made_with: dict | None, earlier: list[dict] | None = None) -> dict:
    header = {"format": FORMAT, "version": FORMAT_VERSION, "made_with": made_with or {}}
    if earlier:  # what made the frames of earlier passes, where --skip-existing-faces changed it
        header["earlier_made_with"] = earlier
    return {"header": header}


def _replace_contents(path: Path, chunks: Iterable[bytes]) -> None:
    """``path`` holds the bytes of ``chunks`` (``safe_write.replace_file``: written as they come,
    so a long video's file is not held in memory)."""
    try:
        replace_file(path, chunks)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written again ({exc.strerror or exc}); it was left as it was") from exc


def _blocks(handle, limit: int | None = None, size: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes from where ``handle`` stands, a block at a time (``limit`` bytes at most)."""
    while limit is None or limit > 0:
        block = handle.read(size if limit is None else min(size, limit))
        if not block:
            return
        if limit is not None:
            limit -= len(block)
        yield block


def rewrite_header(path: Path, made_with: dict) -> None:
    """Replace a damaged first line with a new header (this run's settings); the records after
    it stay byte for byte."""
    with open(path, "rb") as handle:
        handle.readline()
        _replace_contents(path, itertools.chain([_line(_header(made_with))], _blocks(handle)))


def rewrite_records(path: Path, made_with: dict, keep: Callable[[dict], bool],
                    earlier: list[dict] | None = None) -> None:
    """The alignments file holding only its records that ``keep``, under a header of
    ``made_with`` (and the settings of ``earlier`` passes): a resume drops the records of the
    frames it does again, so that every frame keeps one record. Read and written a record at a
    time (its bad lines were reported when the resume read it)."""
    records = (_line(record) for record in read_records(path, quiet=True) if keep(record))
    _replace_contents(path, itertools.chain([_line(_header(made_with, earlier))], records))


def rewrite_records_as(path: Path, records: Iterable[dict]) -> None:
    """The alignments file holding ``records`` instead of its own, under its own header (a damaged
    header line kept as it is, for a resume to write again from its run's settings)."""
    try:
        first = _line({"header": read_header(path)})
    except DamagedHeader:
        with open_regular(path) as handle:
            first = handle.readline(1 << 16).rstrip(b"\n") + b"\n"
    _replace_contents(path, itertools.chain([first], (_line(record) for record in records)))


def _intact(line: bytes, wrapper: dict) -> bool:
    """Whether a parsed line's record is as it was written: its CRC-32 over the record's text as
    the line holds it (the canonical text ``_line`` writes: no JSON written again, the cost of
    reading a long video's file), else over the record written canonically again."""
    head = b'{"crc32":%d,"record":' % wrapper["crc32"] if type(wrapper["crc32"]) is int else None
    body = line.rstrip(b"\r\n")
    if head and body.startswith(head) and body.endswith(b"}") and zlib.crc32(body[len(head):-1]) == wrapper["crc32"]:
        return True
    return zlib.crc32(canonical(wrapper["record"]).encode()) == wrapper["crc32"]


def _valid_line(line: bytes) -> bool:
    try:
        return _intact(line, json.loads(line))
    except (ValueError, KeyError, TypeError):
        return False


def repair_tail(path: Path) -> list[TornRecord]:
    """Cut a torn tail (a record half-written when a run was killed) off an alignments file.

    Returns what was dropped. Only the tail can be torn in an append-only file; a bad line in
    the middle is left for ``read_records`` to skip and report. Reads back from the end only as
    far as the last whole record: a long video's file is not read whole.
    """
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start, last_whole = size, None
        while start > 0 and last_whole is None:  # back a block at a time, to the last line that passes its check
            start = max(0, start - (1 << 20))
            handle.seek(start)
            lines = handle.read(size - start).split(b"\n")
            # (a block's first piece may be the end of a line begun before it: read whole, or at the start)
            last_whole = next((index for index in range(len(lines) - 1, 0 if start else -1, -1)
                               if lines[index] and _valid_line(lines[index])), None)
        if size == 0:
            return []
        good_end = 0 if last_whole is None else min(size, start + len(b"\n".join(lines[:last_whole + 1])) + 1)
        if good_end == size:
            return []
        first_after = 0 if last_whole is None else last_whole + 1
        torn = [index for index in range(len(lines) - 1, first_after - 1, -1) if lines[index]]
        handle.seek(0)
        lines_before = sum(block.count(b"\n") for block in _blocks(handle, limit=start))
    with open(path, "r+b") as handle:
        handle.truncate(good_end)
    dropped = [TornRecord(lines_before + index + 1, "incomplete or failed its checksum") for index in torn]
    for record in dropped:
        logger.warning("%s line %d: torn record (%s); dropped", path, record.line_number, record.reason)
    return dropped


class AlignmentsWriter:
    """Appends frame records with plain ``os.write`` (no hidden buffer), fsyncing every
    ``sync_every`` records. A failed write is rolled back to the last whole record."""

    def __init__(self, path: str | os.PathLike, sync_every: int = 16, made_with: dict | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            read_header(self.path)  # never append to (or repair) a file that is not ours
        repair_tail(self.path)
        self.created = not self.path.exists()  # by this writer (FrameWriter removes it if no record follows)
        self.records = 0  # frame records appended by this writer
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._good_size = os.fstat(self._fd).st_size
        self._sync_every = sync_every
        self._pending = 0
        self.lost_at_close: str | None = None
        if self._good_size == 0:
            self._write(_header(made_with))

    def _write(self, record: dict) -> None:
        data = _line(record)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._pending += 1
            if self._pending >= self._sync_every:
                os.fsync(self._fd)
                self._pending = 0
                self._check_still_named()
        except OSError as exc:
            try:  # leave no torn record behind
                os.ftruncate(self._fd, self._good_size)
            except OSError:
                pass  # the next run drops the torn tail
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        self._good_size += len(data)

    def append(self, record: dict) -> None:
        self._write(record)
        self.records += 1

    def lost(self) -> str | None:
        """Why the file being written is no longer at ``path`` (it or its folder deleted, moved or
        replaced while the run went on), else None: records written after that reach no file that
        anyone can open, so the run must stop rather than finish with nothing saved."""
        try:
            named = os.stat(self.path)
        except OSError:
            named = None
        own = os.fstat(self._fd)
        if named is not None and (named.st_dev, named.st_ino) == (own.st_dev, own.st_ino):
            return None
        if not self.path.parent.is_dir():
            return (f"{self.path.parent}: the output folder was deleted or moved during the run; the run stopped "
                    "(what it had written went with the folder)")
        return (f"{self.path}: the alignments file was deleted, moved or replaced during the run; the run stopped "
                "(the frames still to come would have reached no file)")

    def _check_still_named(self) -> None:
        why = self.lost()
        if why is not None:
            raise AlignmentsLost(why)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError:
            pass
        self.lost_at_close = self.lost()  # the last records, after the last check, may have reached no file
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_frame_record(record) -> bool:
    """Whether a record has the shape a run and a resume read: a frame name, a list of faces (each
    a dict, its track id a whole number if any) and, if listed, face file names."""
    if not isinstance(record, dict) or not isinstance(record.get("frame"), str):
        return False
    faces, files = record.get("faces"), record.get("face_files", [])
    return (isinstance(faces, list) and all(isinstance(face, dict) and type(face.get("track", 0)) is int
                                            for face in faces)
            and isinstance(files, list) and all(isinstance(name, str) for name in files))


def read_records(path: str | os.PathLike, torn: list[TornRecord] | None = None,
                 quiet: bool = False) -> Iterator[dict]:
    """Frame records of an alignments file in order; bad lines are logged (unless ``quiet``: said
    already) and reported in ``torn``."""
    with open(path, "rb") as handle:  # bytes: a byte that is not UTF-8 (a bad sector) spoils its line only
        for number, line in enumerate(handle, start=1):
            problem = None
            try:
                wrapper = json.loads(line)
                record = wrapper["record"]
                if not _intact(line, wrapper):
                    problem = "checksum mismatch"
                elif "header" not in record and not is_frame_record(record):
                    problem = "not a frame record (its frame, faces or face files are of the wrong kind)"
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable line ({exc.__class__.__name__})"
            if problem:
                if not quiet:
                    logger.warning("%s line %d: %s; record dropped", path, number, problem)
                if torn is not None:
                    torn.append(TornRecord(number, problem))
                continue
            if "header" in record:
                continue
            yield record


def faces_of(record: dict) -> list[DetectedFace]:
    return [DetectedFace.from_dict(face) for face in record["faces"]]
