"""Faces deleted from the face folder leave the alignments file too (faceswap's alignments tool,
its ``remove-faces`` job).

faceswap users sort a run's faces by hand: false detections, other people and bad crops are
deleted from the face folder, and the alignments must then match it, or faceswap's convert swaps
the faces that were thrown away. Here a face leaves its frame's record when the run wrote its PNG
and no PNG in the folder is it any more; the faces left in the frame are numbered again from 0,
as faceswap numbers them, their PNGs' headers (faceswap's and extractor's) saying the new number
and, where a file still has the name the run gave it, renamed to match. Faces the run wrote no
PNG for (``--min-scale``, ``--no-faces``) stay.

Each PNG is told by its header, not its name (faceswap's sort tool renames files): the frame, and
the face's landmarks in extractor's header matched against the record's (faceswap's header where
extractor's is damaged), so a job cut short by a crash is finished by running it again. A PNG of
the run's face size with no header left to read (re-saved by an image editor, damaged on disk)
is, under the name the run gave a face, that face: kept, never taken for deleted. The alignments
file is written first (whole or not at all), then the PNGs; an ``.fsa`` extractor wrote beside it
is written again.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extractor.alignments import DamagedHeader, OutputError, read_header, read_records, rewrite_records_as
from extractor.output import FACESWAP_KEYWORD, PNG_KEYWORD
from extractor.output_folder import OutputLock
from extractor.png import leading_text_chunks, png_size, text_chunks, with_texts
from extractor.safe_write import replace_file

logger = logging.getLogger(__name__)
SAME_POINT = 0.01  # px: a header's landmarks are the record's (both come from one face, rounded alike)
RUN_NAME = re.compile(r"^(?P<stem>.*)_(?P<index>\d+)\.png$")  # output_folder.FaceNames: <stem>_<face index>.png


@dataclass
class FacePng:
    """A face PNG of the folder, as its headers tell it."""

    path: Path
    frame: str
    landmarks: np.ndarray | None  # extractor's header's (float32); None where only faceswap's header is left
    header_index: int  # -1: no header can be read (re-saved by an editor, damaged): known by its name only


@dataclass
class Outcome:
    removed: int = 0  # faces that left the alignments file
    frames: int = 0  # frames that lost faces
    renumbered: list[tuple[FacePng, int, str]] = field(default_factory=list)  # (png, new index, new name)
    unmatched: list[Path] = field(default_factory=list)  # PNGs in the folder that are no face of the file (left)
    by_name: list[Path] = field(default_factory=list)  # PNGs without a readable header, kept as faces by their names


def read_face_pngs(folder: Path) -> tuple[list[FacePng], list[Path]]:
    """The folder's face PNGs (top level, as the run wrote them), and the PNGs without a face header."""
    faces, others = [], []
    for path in sorted(folder.glob("*.png")):
        try:
            texts = leading_text_chunks(path)
        except (OSError, ValueError, IndexError, UnicodeDecodeError, struct.error, zlib.error):
            others.append(path)
            continue
        face = next(filter(None, (told(path, texts) for told in (_by_our_header, _by_faceswaps_header))), None)
        if face is None or not isinstance(face.frame, str) or face.header_index < 0:
            others.append(path)
        else:
            faces.append(face)
    return faces, others


HEADER_ERRORS = (ValueError, KeyError, TypeError, SyntaxError, RecursionError, MemoryError)  # not a header of ours


def _by_our_header(path: Path, texts: dict[str, str]) -> FacePng | None:
    """The face extractor's header tells (its frame, landmarks and number); None where it is missing or damaged."""
    try:
        ours = json.loads(texts[PNG_KEYWORD])
        return FacePng(path, ours["frame"], np.asarray(ours["face"]["landmarks"], np.float32), int(ours["face_index"]))
    except HEADER_ERRORS:
        return None


def _by_faceswaps_header(path: Path, texts: dict[str, str]) -> FacePng | None:
    """The face faceswap's header tells (its frame and number); None where it is missing or damaged."""
    try:
        source = ast.literal_eval(texts[FACESWAP_KEYWORD])["source"]
        return FacePng(path, source["source_filename"], None, int(source["face_index"]))
    except HEADER_ERRORS:
        return None


def written_indices(record: dict) -> dict[int, str]:
    """Face index -> the PNG name the run gave it, for the faces of ``record`` it wrote."""
    named = (RUN_NAME.match(name) for name in record.get("face_files", []))
    return {int(match["index"]): match.string for match in named if match}


def _which_face(png: FacePng, faces: list[dict]) -> int | None:
    """The index of the record's face ``png`` shows: by its landmarks, else by its header's number."""
    if png.landmarks is None:
        return png.header_index if png.header_index < len(faces) else None
    for index, face in enumerate(faces):
        points = np.asarray(face.get("landmarks", ()), float)
        if points.shape == png.landmarks.shape and np.abs(points - png.landmarks).max() < SAME_POINT:
            return index
    return None


def by_frame(pngs: list[FacePng]) -> dict[str, list[FacePng]]:
    grouped: dict[str, list[FacePng]] = {}
    for png in pngs:
        grouped.setdefault(png.frame, []).append(png)
    return grouped


def plan_record(record: dict, pngs: list[FacePng], outcome: Outcome, matched: set[Path],
                headerless: dict[str, Path] | None = None) -> dict:
    """``record`` with the faces deleted from the folder left out and the rest numbered again (the
    record itself where nothing changes); what its PNGs need goes into ``outcome``, the PNGs that
    are its faces into ``matched``. ``pngs``: the folder's PNGs of its frame; ``headerless``: the
    folder's PNGs whose headers cannot be read, by name. Such a file under the name the run gave
    a face is that face: a face the user kept is never taken out because an image editor that
    re-saved it dropped its headers, or the disk damaged them."""
    faces, written = record["faces"], written_indices(record)
    shown: dict[int, FacePng] = {}
    for png in pngs:
        index = _which_face(png, faces)
        if index is not None and index not in shown:
            shown[index] = png
            matched.add(png.path)
    for index, name in written.items():
        path = (headerless or {}).get(name)
        if index not in shown and path is not None:
            shown[index] = FacePng(path, record["frame"], None, -1)
            matched.add(path)
            outcome.by_name.append(path)
    kept = [index for index in range(len(faces)) if index not in written or index in shown]
    new_files = []
    for new_index, old_index in enumerate(kept):
        if old_index not in written:
            continue
        name = RUN_NAME.sub(rf"\g<stem>_{new_index}.png", written[old_index])
        new_files.append(name)
        png = shown[old_index]
        target = _name_for(png, name)
        if (png.header_index >= 0 and png.header_index != new_index) or target != png.path.name:
            outcome.renumbered.append((png, new_index, target))
    if len(kept) == len(faces) and new_files == record.get("face_files", []):
        return record  # as it was (its PNGs may still need their headers mended)
    outcome.removed += len(faces) - len(kept)
    outcome.frames += len(faces) > len(kept)
    return {**record, "faces": [faces[index] for index in kept],
            **({"face_files": new_files} if "face_files" in record else {})}


def _name_for(png: FacePng, run_name: str) -> str:
    """The file name a face should have: the run's (``run_name``) where the file
    still has a name of the run's kind for its frame; a name the user gave it (a sort) is kept."""
    stem = RUN_NAME.match(run_name)["stem"]
    current = RUN_NAME.match(png.path.name)
    return run_name if current and current["stem"] == stem else png.path.name


def _renumbered_texts(data: bytes, index: int, name: str) -> dict[str, str]:
    """A face PNG's headers (``data``: the file) saying its new number and name."""
    found, texts = text_chunks(data), {}
    if FACESWAP_KEYWORD in found:
        header = ast.literal_eval(found[FACESWAP_KEYWORD])
        header["source"].update(face_index=index, original_filename=name)
        texts[FACESWAP_KEYWORD] = str(header)
    if PNG_KEYWORD in found:
        try:
            texts[PNG_KEYWORD] = json.dumps({**json.loads(found[PNG_KEYWORD]), "face_index": index})
        except HEADER_ERRORS:
            pass  # damaged (the face was known by faceswap's header): left as it is
    return texts


def _check_targets(folder: Path, renumbered: list[tuple[FacePng, int, str]]) -> None:
    """A new name taken by a file this job does not move (the user's own) stops it before any change."""
    moving = {png.path for png, _, _ in renumbered}
    for _, _, name in renumbered:
        target = folder / name
        if target.exists() and target not in moving:
            raise OutputError(f"{target}: already in the face folder and not a face this job numbers again; nothing "
                              "was changed: move it away and run the job again")


def _move_pngs(folder: Path, renumbered: list[tuple[FacePng, int, str]]) -> None:
    """Each PNG's new headers written beside it under a scratch name, then every one moved to its
    new name, then the old names that no face took any more removed."""
    moving = {png.path for png, _, _ in renumbered}
    scratch = []
    for png, index, name in renumbered:
        path = folder / f".{name}.{os.getpid()}.renumbered"
        data = png.path.read_bytes()
        # A file without a readable header keeps its bytes: only its name says its new number.
        replace_file(path, data if png.header_index < 0 else with_texts(data, _renumbered_texts(data, index, name)))
        scratch.append(path)
    for path, (_, _, name) in zip(scratch, renumbered):
        os.replace(path, folder / name)
    taken = {folder / name for _, _, name in renumbered}
    for path in moving - taken:
        path.unlink(missing_ok=True)


def remove_deleted_faces(alignments: Path, folder: Path) -> Outcome:
    """The job: ``alignments`` (extractor's .jsonl) made to match the face PNGs left in ``folder``.
    Its records are read as they come, twice (what changes, then the file written again): a long
    video's file is never held whole."""
    face_side = None  # the side of the run's face PNGs, from its settings
    try:
        face_side = read_header(alignments).get("made_with", {}).get("size")  # not ours: refused, untouched
    except DamagedHeader:  # ours, its first line damaged: its records are checked one by one, the line kept
        logger.warning("%s: its header line is damaged; its frame records are checked one by one and the line "
                       "kept as it is (a run resumed with --skip-existing writes it again)", alignments)
    locks = []
    try:
        locks.append(OutputLock.for_folder(folder))  # not while a run writes there
        locks.append(OutputLock.for_alignments(alignments))
        pngs, others = read_face_pngs(folder)
        # A PNG without a readable header is a face of the run's by its name only if it is the run's
        # face size: a picture of the user's own under a face's name is not taken for the face.
        grouped = by_frame(pngs)
        headerless = {path.name: path for path in others if face_side and png_size(path) == (face_side, face_side)}
        outcome, matched, changed, wrote_faces, ours_here = Outcome(), set(), False, False, False
        for record in read_records(alignments):
            planned = plan_record(record, grouped.get(record["frame"], []), outcome, matched, headerless)
            changed |= planned is not record
            wrote_faces |= bool(written_indices(record))
            ours_here |= record["frame"] in grouped or any(name in headerless for name in record.get("face_files", []))
        if wrote_faces and not ours_here:
            raise OutputError(f"{folder}: holds no face of {alignments}; every face would leave it: nothing was "
                              "changed (the run's face folder goes after --faces)")
        _check_targets(folder, outcome.renumbered)
        if changed:
            throwaway = Outcome()
            rewrite_records_as(alignments, (plan_record(record, grouped.get(record["frame"], []), throwaway, set(),
                                                        headerless)
                                            for record in read_records(alignments, quiet=True)))
        if outcome.renumbered:
            _move_pngs(folder, outcome.renumbered)
        outcome.unmatched = sorted([png.path for png in pngs if png.path not in matched]
                                   + [path for path in others if path not in matched])
        return outcome
    finally:
        for lock in locks:
            lock.release()
