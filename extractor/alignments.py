"""The alignments file: one JSON line per finished frame, appended as frames finish.

Why this format: appending a line is cheap and never rewrites what is already on disk, so an
interrupted run keeps every finished frame; JSON needs no pickle to read (safe on untrusted
files); each line carries a CRC-32 of its record, so a line torn by a kill in mid-write is
detected and dropped instead of poisoning the file.

Line layout: ``{"crc32": <int>, "record": {...}}`` where the CRC is over the record serialised
with sorted keys and no spaces (``canonical``).
"""
from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from extractor.faces import DetectedFace

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def frame_record(name: str, index: int, source: str, shape, faces: list[DetectedFace]) -> dict:
    """The record of one frame: where it came from, its size and all its faces."""
    return {"frame": name, "index": int(index), "source": source,
            "image_shape": [int(v) for v in shape], "faces": [face.to_dict() for face in faces]}


@dataclass
class TornRecord:
    line_number: int
    reason: str


class AlignmentsWriter:
    """Appends frame records; each line is flushed (and fsynced every ``sync_every`` lines)."""

    def __init__(self, path: str | os.PathLike, sync_every: int = 16):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._sync_every = sync_every
        self._pending = 0
        if self._file.tell() == 0:
            self._write({"header": {"format": "extractor-alignments", "version": FORMAT_VERSION}})

    def _write(self, record: dict) -> None:
        body = canonical(record)
        self._file.write(f'{{"crc32":{zlib.crc32(body.encode())},"record":{body}}}\n')
        self._file.flush()
        self._pending += 1
        if self._pending >= self._sync_every:
            os.fsync(self._file.fileno())
            self._pending = 0

    def append(self, record: dict) -> None:
        self._write(record)

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_records(path: str | os.PathLike, torn: list[TornRecord] | None = None) -> Iterator[dict]:
    """Frame records of an alignments file in order; bad lines are reported in ``torn``."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            problem = None
            try:
                wrapper = json.loads(line)
                record = wrapper["record"]
                if zlib.crc32(canonical(record).encode()) != wrapper["crc32"]:
                    problem = "checksum mismatch"
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable line ({exc.__class__.__name__})"
            if problem:
                logger.warning("%s line %d: %s; record dropped", path, number, problem)
                if torn is not None:
                    torn.append(TornRecord(number, problem))
                continue
            if "header" in record:
                continue
            yield record


def load_alignments(path: str | os.PathLike) -> dict[str, dict]:
    """All frame records keyed by frame name (a later record of a frame replaces an earlier one)."""
    return {record["frame"]: record for record in read_records(path)}


def faces_of(record: dict) -> list[DetectedFace]:
    return [DetectedFace.from_dict(face) for face in record["faces"]]
