"""What a finished frame leaves on disk: aligned face PNGs (metadata inside) and its record.

The PNG carries its face's data in an iTXt chunk (keyword ``extractor``, JSON text), the same
dict the alignments file holds for that face, so a folder of faces can be re-associated with
its frames without the alignments file, as faceswap's PNG header allows (``png.py`` encodes).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

import cv2
import numpy as np

from extractor.alignments import (FORMAT_VERSION, AlignmentsLost, AlignmentsWriter, DamagedHeader, OutputError,
                                  frame_record, read_header, read_records, repair_tail, rewrite_header,
                                  rewrite_records)
from extractor.crops import DEFAULT_CENTERING, DEFAULT_SIZE, CropSpec
from extractor.faces import DetectedFace
from extractor.geometry import compose_affine, ltrb, transform_points
from extractor.faceswap_format import THUMB_SIZE, face_in_stored_frame, png_header, thumbnail
from extractor.media import ExtractMedia
from extractor.output_folder import FaceNames, OutputLock, check_writable
from extractor.orientation import exif_orientation, upright_to_stored
from extractor.png import encode_png, is_damaged_png, leading_text_chunks
from extractor.preview import ContactSheet, is_our_preview
from extractor.safe_write import lost_write

logger = logging.getLogger(__name__)

PNG_KEYWORD = "extractor"
FACESWAP_KEYWORD = "faceswap"  # faceswap reads its face PNGs' alignment data from this iTXt chunk


def draw_landmarks(image: np.ndarray, points: np.ndarray, colour=(0, 255, 0)) -> None:
    """Dots on the 68 landmarks (faceswap's --debug-landmarks look), in place."""
    radius = max(1, image.shape[0] // 128)
    for x, y in np.round(points).astype(int):
        cv2.circle(image, (int(x), int(y)), radius, colour, -1, cv2.LINE_AA)


def read_face_metadata(path: str | os.PathLike) -> dict:
    """The extractor metadata embedded in an aligned face PNG."""
    chunks = leading_text_chunks(path)  # the headers come before the pixels, which are not read
    if PNG_KEYWORD not in chunks:
        raise ValueError(f"{path}: no '{PNG_KEYWORD}' metadata in this PNG")
    return json.loads(chunks[PNG_KEYWORD])


@dataclass
class OutputSettings:
    output_dir: Path
    alignments_path: Path
    size: int = DEFAULT_SIZE
    coverage: float = 1.0  # faceswap's coverage ratio: the share of the crop kept (1.0: all of it)
    centering: str = DEFAULT_CENTERING  # 'head' (faceswap's extract), 'face', 'legacy' or 'arcface'
    save_faces: bool = True
    debug_landmarks: bool = False  # draw the landmarks on the saved faces
    preview_path: Path | None = None  # write a contact sheet of the run's faces here
    skip_existing: bool = False  # resume: keep the frames an earlier run finished, do the rest
    # faceswap's --skip-existing-faces: a resume that also looks again at the frames the earlier run
    # found no face in, where FINDING_SETTINGS may differ from the recorded ones.
    redo_faceless: bool = False
    overwrite: bool = False  # start again: drop an existing alignments file and the faces it lists
    min_quality: float = 0.0  # faces whose alignment quality is lower are left out (--min-quality)
    # faceswap's -u: a face gets a PNG only if its crop enlarged it at most 100 / min_scale times (a
    # face of at least min_scale % of the crop's side in the frame); its record is written all the same.
    min_scale: float = 0.0
    # What made the faces (size, coverage, models...): recorded in the alignments header, and a
    # resumed run must match it, or its faces would mix with different ones.
    made_with: dict = field(default_factory=dict)

    @property
    def crop(self) -> CropSpec:
        return CropSpec(self.centering, self.size, self.coverage)


@dataclass
class OutputCounts:
    frames: int = 0
    faces: int = 0
    frames_without_face: int = 0
    filtered_out: int = 0  # faces dropped by the identity filter (not saved, still counted)
    low_quality: int = 0  # faces left out by --min-quality
    without_png: int = 0  # faces in the alignments file whose crop --min-scale found too enlarged for a PNG


def _our_face(path: Path) -> bool:
    """Whether a PNG is a face extractor wrote (its ``extractor`` chunk): one a killed run left
    without its record, which the resumed run writes again."""
    try:
        return PNG_KEYWORD in leading_text_chunks(path)
    except (OSError, ValueError, IndexError, struct.error):  # not a PNG, or one cut short
        return False


def _settings_differences(recorded: dict, wanted: dict) -> list[str]:
    return [f"{key} {recorded.get(key)!r} (this run: {wanted.get(key)!r})"
            for key in sorted(set(recorded) | set(wanted)) if recorded.get(key) != wanted.get(key)]


# Settings that decide where faces are found, not how a found face is aligned, masked, cut or
# kept: --skip-existing-faces may change them (and the detector's plugin options) to look again
# at the frames an earlier run found no face in; the faces of one folder stay of one kind.
FINDING_SETTINGS = ("detector", "min_size", "max_size", "rotate", "track")


def _how_found_faces_are_made(made_with: dict) -> dict:
    """``made_with`` less what decides where faces are found (``FINDING_SETTINGS``)."""
    kept = {key: value for key, value in made_with.items() if key not in FINDING_SETTINGS + ("plugin_options",)}
    others = {plugin: options for plugin, options in made_with.get("plugin_options", {}).items()
              if not plugin.startswith("detect.")}
    return {**kept, **({"plugin_options": others} if others else {})}


@dataclass
class PreparedFrame:
    """What a finished frame becomes, before anything touches the disk."""

    record: dict
    pngs: list[bytes]  # one per entry of record["face_files"]
    filtered_out: int = 0  # faces the identity filter dropped
    previews: list = field(default_factory=list)  # (crop, points, face) for the contact sheet, if asked
    problems: list[str] = field(default_factory=list)  # faces dropped because they cannot be written
    low_quality: int = 0  # faces --min-quality left out


def _cut_as_stored(crop: CropSpec, image: np.ndarray, stored_face: DetectedFace,
                   to_stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``crop`` of a face as faceswap cuts it from the frame as stored (``stored_face``: the face
    in stored pixels; ``to_stored``: upright to stored pixels), cut from the upright ``image``
    through the composed matrix, so the stored frame is never made; and that upright-to-crop
    matrix."""
    to_crop = crop.matrix(stored_face.landmarks)
    upright_to_crop = compose_affine(to_crop, to_stored)
    return crop.cut(image, upright_to_crop, crop.interpolation(to_crop)), upright_to_crop


class FramePreparer:
    """A finished frame's alignments record and face PNG bytes (pixels, extractor's and faceswap's
    headers). Pure computation, no disk: the Ray engine runs it on the workers, the other
    engines just before writing."""

    def __init__(self, settings: OutputSettings, face_names: FaceNames, face_filter=None, want_previews=False):
        self.settings = settings
        self.face_names = face_names
        self.face_filter = face_filter
        self.want_previews = want_previews

    def prepare(self, media: ExtractMedia) -> PreparedFrame:
        name, image, faces = media.filename, media.image, media.detected_faces
        filtered = 0
        if self.face_filter is not None:
            kept = [face for face in faces if self.face_filter.accepts(face)]
            filtered, faces = len(faces) - len(kept), kept
        steady = [face for face in faces if face.quality is None or face.quality >= self.settings.min_quality]
        low_quality, faces = len(faces) - len(steady), steady
        finite = [face.all_finite() for face in faces]
        problems = [f"{name}: face {index} dropped: its box, landmarks or masks are not finite numbers"
                    for index, ok in enumerate(finite) if not ok]
        faces = [face for face, ok in zip(faces, finite) if ok]
        files = {index: self.face_names(name, index) for index, face in enumerate(faces)
                 if self.settings.save_faces and self._sharp_enough(face)}
        record = frame_record(name, media.frame_index, media.source, image.shape, faces, list(files.values()))
        orientation = (media.orientation or exif_orientation(media.source)) if faces else 1
        if orientation != 1:
            record["orientation"] = orientation  # coordinates stay upright; faceswap's are as stored
        prepared = PreparedFrame(record, [], filtered, low_quality=low_quality, problems=problems)
        for face_index, face in enumerate(faces):
            png = self._face_png(record, face_index, image, face, prepared.previews, files.get(face_index))
            if png is not None:
                prepared.pngs.append(png)
        return prepared

    def _sharp_enough(self, face: DetectedFace) -> bool:
        """faceswap's -u (--min-scale): whether the face's crop enlarges it at most 100 / min_scale
        times, i.e. the face spans at least min_scale % of the PNG's side in the frame (turning
        the frame, as its EXIF orientation does, changes no scale)."""
        if not self.settings.min_scale:
            return True
        to_crop = self.settings.crop.matrix(face.landmarks)
        return float(np.hypot(*to_crop[0, :2])) * self.settings.min_scale <= 100

    def _face_png(self, record: dict, face_index: int, image: np.ndarray, face: DetectedFace,
                  previews: list, file_name: str | None) -> bytes | None:
        """The face PNG named ``file_name``: faceswap's crop of the frame as faceswap reads it (as
        stored: a photo's EXIF orientation is not applied), with faceswap's header and extractor's
        own. Without a name (no face files, or a face --min-scale leaves out) None: the record still
        gets its thumbnail, and the contact sheet its crop, but no face is cut at full size for nothing."""
        crop, name = self.settings.crop, record["frame"]
        orientation = record.get("orientation", 1)
        stored_face = face_in_stored_frame(face, orientation, image.shape)
        to_stored = upright_to_stored(orientation, image.shape)
        cut = file_name is not None or self.want_previews
        pixels, upright_to_crop = _cut_as_stored(crop, image, stored_face, to_stored) if cut else (None, None)
        thumb = self._thumbnail(pixels, image, stored_face, to_stored)
        record["faces"][face_index]["thumb"] = base64.b64encode(thumb).decode("ascii")
        if not cut:
            return None
        if self.want_previews or self.settings.debug_landmarks:
            points = transform_points(face.landmarks, upright_to_crop)
            if self.want_previews:
                previews.append((pixels.copy() if self.settings.debug_landmarks else pixels, points, face,
                                 upright_to_crop))
            if self.settings.debug_landmarks:
                draw_landmarks(pixels, points)
        if file_name is None:
            return None
        meta = {"frame": name, "face_index": face_index, "source": record["source"],
                "aligned": {"centering": crop.centering, "size": crop.size, "coverage": crop.coverage,
                            "matrix": np.round(upright_to_crop, 6).tolist()},
                "face": record["faces"][face_index]}
        header = str(png_header(record, face_index, stored_face, file_name))
        # faceswap's chunk first: its reader takes the first chunk with its keyword.
        return encode_png(pixels, [(FACESWAP_KEYWORD, header), (PNG_KEYWORD, json.dumps(meta))])

    def _thumbnail(self, pixels: np.ndarray | None, image: np.ndarray, stored_face: DetectedFace,
                   to_stored: np.ndarray) -> bytes:
        """faceswap's thumbnail, made from its 'head' crop at the face size. With no face cut
        (``pixels`` None: no face files) the 'head' crop is cut at the frame's own resolution (at
        most the face size) and shrunk the same way: a warp straight to 96 px would alias."""
        if pixels is None:
            to_thumb = CropSpec("head", THUMB_SIZE).matrix(stored_face.landmarks)
            side = int(np.clip(np.ceil(THUMB_SIZE / np.hypot(*to_thumb[0, :2])), THUMB_SIZE, self.settings.size))
            crop = CropSpec("head", side)
            to_crop = crop.matrix(stored_face.landmarks)
            # Shrunk to 96 px, this crop's pixel grid lands where the face-size crop's would.
            to_crop[:, 2] -= 0.5 - 0.5 * side / self.settings.size
            pixels = crop.cut(image, compose_affine(to_crop, to_stored), crop.interpolation(to_crop))
        elif self.settings.centering != "head" or self.settings.coverage != 1.0:
            pixels = _cut_as_stored(CropSpec("head", self.settings.size), image, stored_face, to_stored)[0]
        return thumbnail(pixels)


class EarlierFrame(NamedTuple):
    """What a resume keeps of each record of the run it resumes."""
    frame: str
    has_faces: bool
    face_files: tuple[str, ...]


class FrameWriter:
    """Writes each finished frame: its face PNGs first, then its alignments record.

    The record goes last so that a record on disk always means its faces are on disk too.
    """

    def __init__(self, settings: OutputSettings, face_filter=None, face_names: FaceNames | None = None,
                 keys: list[str] | None = None, video: Path | None = None):
        self.settings = settings
        self.face_names = face_names or FaceNames(None)
        self._ours: set[str] = set()  # face files of the run being resumed (listed in its records)
        self.next_track_id = 0  # the first track id this run gives (after a resumed run's)
        self.tracks = None  # tracking.TrackLabeller for a tracked video: track ids, steady landmarks
        self.neighbours = None  # neighbours.NeighbourCheck for a video: its doubtful faces confirmed or dropped
        self._earlier_faces: dict[int, tuple[str, list]] = {}  # a resumed run's frame index -> (frame, its faces)
        self.preparer = FramePreparer(settings, self.face_names, face_filter, want_previews=bool(settings.preview_path))
        self._made_folders = check_writable(settings)
        self.locks = self._lock_outputs()
        self.looked_again = 0  # frames an earlier run found no face in, done again (--skip-existing-faces)
        self.damaged_faces: dict[str, list[Path]] = {}  # frame -> its earlier face PNGs not whole: done again
        try:
            self.done = self._earlier_frames()
            self._refuse_another_inputs(keys, video)
            if settings.save_faces:
                self._refuse_foreign_faces(keys or [], video)
            preview = settings.preview_path
            if preview and preview.parent.exists() and not preview.parent.is_dir():
                raise OutputError(f"{preview.parent}: is a file, where --preview puts its folder (for {preview.name}): "
                                  "move it away or choose another -o")
            if preview and preview.exists() and not is_our_preview(preview) and not lost_write(preview):
                raise OutputError(f"{preview}: exists and is not a contact sheet of ours; it would be "
                                  "written over: move it away or choose another -o")
            if self.done:
                self._drop_frames_to_redo()
            self.alignments = AlignmentsWriter(settings.alignments_path, made_with=settings.made_with)
        except BaseException:
            self._remove_locks_and_folders_made()  # a refused run leaves nothing of its own
            self._release_locks()
            raise
        self.counts = OutputCounts()
        self.problems: list[str] = []  # faces dropped at writing, one line each (for the summary)
        self.preview = ContactSheet() if settings.preview_path else None

    def _lock_outputs(self) -> list[OutputLock]:
        """The alignments file's lock, and the face folder's where faces (or a preview) go there:
        runs without -o on two videos of one folder write two alignments files, side by side."""
        locks = []
        try:
            if self.settings.save_faces or self.settings.preview_path:
                locks.append(OutputLock.for_folder(self.settings.output_dir))
            locks.append(OutputLock.for_alignments(self.settings.alignments_path))
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        return locks

    def _release_locks(self) -> None:
        for lock in self.locks:
            lock.release()

    def _earlier_frames(self) -> set[str]:
        """Frames an earlier run wrote to this alignments file, per --skip-existing/--overwrite.

        A file that is not an extractor alignments file is refused whatever the flags."""
        path = self.settings.alignments_path
        if not path.exists() or path.stat().st_size == 0:
            return set()
        try:
            header = read_header(path)
        except DamagedHeader:
            if not (self.settings.skip_existing or self.settings.overwrite):
                raise
            logger.warning("%s: damaged header line written again from this run's settings", path)
            rewrite_header(path, self.settings.made_with)
            header = read_header(path)
        if self.settings.overwrite:
            self._remove_faces_of(path)
            path.unlink()
            return set()
        repair_tail(path)  # a record torn by a kill is reported and dropped once, here
        records, last_track = [], -1  # what a resume needs of each record (a long video's are not all kept)
        for record in read_records(path):
            records.append(EarlierFrame(record["frame"], bool(record["faces"]), tuple(record.get("face_files", ()))))
            self._earlier_faces[int(record.get("index", -1))] = (record["frame"], [
                (face["box"], face["score"]) for face in record["faces"] if "box" in face and "score" in face])
            last_track = max([last_track] + [face.get("track", -1) for face in record["faces"]])
        frames = {record.frame for record in records}
        self._earlier = (header, records)  # for _drop_frames_to_redo
        self.next_track_id = last_track + 1  # a resumed video's new tracks are numbered after the earlier run's
        self._ours = {name for record in records for name in record.face_files}
        if frames and not self.settings.skip_existing:
            raise OutputError(f"{path} already holds {len(frames)} frames: add --skip-existing to resume "
                              "that run, or --overwrite to start again")
        if header.get("version") != FORMAT_VERSION:
            raise OutputError(f"{path} was written by an older extractor (format {header.get('version')}), whose "
                              "frame keys differ: --overwrite to start again, or choose another output")
        recorded, wanted = header.get("made_with", {}), self.settings.made_with
        if self.settings.redo_faceless:
            differences = _settings_differences(_how_found_faces_are_made(recorded), _how_found_faces_are_made(wanted))
            if frames and differences:
                raise OutputError(f"{path} was made with other settings: {'; '.join(differences)}. Only how faces "
                                  "are found (detector, its options, --min-size, --max-size, --rotate, --track) may "
                                  "change with --skip-existing-faces: the frames' faces would mix with different "
                                  "ones: run with the recorded settings, or --overwrite to start again")
            return frames
        differences = _settings_differences(recorded, wanted)
        if frames and differences:
            raise OutputError(f"{path} was made with other settings: {'; '.join(differences)}. Resuming would mix "
                              "different faces: run with the recorded settings, or --overwrite to start again")
        return frames

    def _drop_frames_to_redo(self) -> None:
        """Frames of the earlier run done again, their records leaving the file (every frame keeps
        one record): those with a face PNG on disk that is not whole (empty or cut short: the
        machine stopped before it reached the disk, while its record did), and, with
        --skip-existing-faces, those it found no face in; then the header records this run's
        settings, those of the earlier passes beside them. A face PNG that is gone was deleted
        (a curated folder): its frame stays done, as faceswap's resume leaves it."""
        header, records = self._earlier
        self.damaged_faces = damaged = {record.frame: paths for record in records
                                        if (paths := self._damaged_faces_of(record))}
        redo_faceless = self.settings.redo_faceless
        kept = [record for record in records
                if record.frame not in damaged and (record.has_faces or not redo_faceless)]
        self.looked_again = sum(not record.has_faces for record in records) if redo_faceless else 0
        self.done = {record.frame for record in kept}
        recorded, wanted = header.get("made_with", {}), self.settings.made_with
        earlier = list(header.get("earlier_made_with", []))
        if redo_faceless and recorded != wanted:
            earlier.append(recorded)
        if damaged:
            paths = [path for frame_paths in damaged.values() for path in frame_paths]
            for path in paths:  # first: a face PNG that no record lists is refused as another's
                path.unlink(missing_ok=True)
            logger.warning("%s%s: %d face PNG(s) of the earlier run not whole (empty or cut short: the machine "
                           "stopped before they reached the disk?); their %d frame(s) are extracted again",
                           paths[0], ", ..." if len(paths) > 1 else "", len(paths), len(damaged))
        if len(kept) < len(records) or (redo_faceless and recorded != wanted):
            rewrite_records(self.settings.alignments_path, wanted if redo_faceless else recorded,
                            lambda record: record["frame"] in self.done, earlier)

    def _damaged_faces_of(self, record: EarlierFrame) -> list[Path]:
        """The face PNGs of an earlier run's record that are on disk but not whole: cut short,
        empty or zeros. A file there that is none of these (another image under the name) is
        not ours to remove: its frame stays done."""
        paths = [self.settings.output_dir / PurePosixPath(name).name for name in record.face_files]
        return [path for path in paths if path.exists() and is_damaged_png(path)]

    def _refuse_another_inputs(self, keys: list[str] | None, video: Path | None) -> None:
        """A resume goes on the same input's frames: an alignments file none of whose frames is a
        frame of this input (another video's, another folder's photos) is refused, not mixed in."""
        if not self.done or (keys is None and video is None):
            return
        from extractor.sources import video_frame_index

        ours = set(keys or [])
        if any(video_frame_index(video, key) is not None if video is not None else key in ours for key in self.done):
            return
        raise OutputError(f"{self.settings.alignments_path} holds the frames of another input "
                          f"({', '.join(sorted(self.done)[:2])}{', ...' if len(self.done) > 2 else ''}), none of "
                          f"this one's: choose another -o (or --alignments), or --overwrite to start again")

    def _refuse_foreign_faces(self, keys: list[str], video: Path | None) -> None:
        """Never write over a file that is not ours: a PNG already in the face folder under a name
        this run may give a face (``<stem>_<n>.png`` of one of its inputs), and not listed by the
        run being resumed, is refused before any work (a user's own ``photo_0.png``)."""
        stems = {self.face_names(key, 0)[:-len("_0.png")] for key in keys}
        video_name = re.compile(rf"{re.escape(video.stem)}_\d{{6}}$") if video is not None else None
        for path in sorted(self.settings.output_dir.glob("*.png")):
            stem, _, number = path.stem.rpartition("_")
            if not number.isdigit() or path.name in self._ours:
                continue
            if (stem in stems or (video_name is not None and video_name.match(stem))) and not _our_face(path) \
                    and not lost_write(path):
                raise OutputError(f"{path}: already in the face folder and not a face of this run (or of the run "
                                  "it resumes); it would be written over: move it away or choose another -o")

    def _remove_faces_of(self, path: Path) -> None:
        """--overwrite: delete the face files the old run wrote (listed in its records)."""
        removed = 0
        for record in read_records(path):
            for name in record.get("face_files", []):  # only what it wrote: none with --no-faces
                face = self.settings.output_dir / PurePosixPath(name).name  # never outside the folder
                if face.suffix == ".png" and face.is_file():
                    face.unlink()
                    removed += 1
        if removed:
            logger.info("--overwrite: removed %d face file(s) of the previous run", removed)

    def earlier_boxes(self, index: int, sure_from: float) -> list | None:
        """The boxes ([left, top, right, bottom]) of the faces scored ``sure_from`` or more that the
        run being resumed wrote for frame ``index``; None where it did not (or does it again)."""
        frame, faces = self._earlier_faces.get(index, (None, []))
        if frame is None or frame not in self.done:
            return None
        return [ltrb(box) for box, score in faces if score >= sure_from]

    def in_order(self, media: ExtractMedia, done: Callable[[], None] | None, let_go=None) -> list:
        """The frames to write now, (frame, done) in input order, given the next finished frame:
        that frame itself, and where a video's doubtful faces wait on the next frame
        (``neighbours``; ``let_go``: see ``NeighbourCheck.push``), the frame held before it."""
        return self.neighbours.push(media, done, let_go) if self.neighbours is not None else [(media, done)]

    def last_in_order(self) -> list:
        """The end of the input: the frame still held back, if any, decided (``in_order``)."""
        return self.neighbours.flush() if self.neighbours is not None else []

    def label_tracks(self, media: ExtractMedia) -> None:
        """A tracked video's frame: its faces' track ids and steadied landmarks. Called for every
        frame in input order, before it is prepared."""
        if self.tracks is not None:
            self.tracks.label(media.frame_index, media.detected_faces, media.image, media.time)

    def write(self, media: ExtractMedia) -> dict:
        """Write a finished frame (its faces first, then its record); returns the record."""
        self.label_tracks(media)
        return self.commit(self.preparer.prepare(media))

    def commit(self, prepared: PreparedFrame) -> dict:
        """Write a prepared frame: its face PNGs, then its record (so a record on disk always
        means its faces are on disk too); returns the record."""
        record = prepared.record
        written: list[Path] = []
        try:
            for name, png in zip(record.get("face_files", []), prepared.pngs):
                self._store(self.settings.output_dir / name, png)
                written.append(self.settings.output_dir / name)
            self.alignments.append(record)
        except OutputError as exc:
            for face in written:  # the frame is rolled back whole: no face without its record
                face.unlink(missing_ok=True)
            if isinstance(exc, AlignmentsLost):
                raise
            if (why := self.alignments.lost()) is not None:  # a face not written because the folder went
                raise AlignmentsLost(why) from exc
            raise OutputError(f"{exc}; the run stopped at frame {record['frame']}, and the {self.counts.frames} "
                              f"frames finished before it are intact in {self.settings.alignments_path}") from exc
        for problem in prepared.problems:
            logger.warning(problem)
            self.problems.append(problem)
        if self.preview is not None:
            for crop, points, face, to_crop in prepared.previews:
                self.preview.add(crop, points, face, to_crop)
        self.counts.frames += 1
        self.counts.faces += len(record["faces"])
        self.counts.frames_without_face += not record["faces"]
        self.counts.filtered_out += prepared.filtered_out
        self.counts.low_quality += prepared.low_quality
        if self.settings.save_faces:
            self.counts.without_png += len(record["faces"]) - len(record.get("face_files", []))
        return record

    @staticmethod
    def _store(path: Path, png: bytes) -> None:
        tmp = path.with_suffix(".png.tmp")
        try:
            tmp.write_bytes(png)
            os.replace(tmp, path)  # never a half-written face under its final name
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc

    def close(self) -> None:
        if self.neighbours is not None and (self.neighbours.kept or self.neighbours.dropped):
            logger.info("doubtful faces (scored under the detector's threshold): %d kept where the frame before or "
                        "after has a face there, %d dropped", self.neighbours.kept, self.neighbours.dropped)
        try:
            self.alignments.close()
            if self.preview is not None and self.preview.count:
                self._save_preview()
            if not self.done and not self.alignments.records and self.alignments.created:
                self._remove_what_this_run_made()
        finally:
            self._release_locks()

    def _save_preview(self) -> None:
        """The contact sheet, last: where it cannot be written (a full disk) the run's one line says
        so, and that the faces and the alignments file, already closed, are whole."""
        path = self.settings.preview_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.preview.save(path)
        except OSError as exc:
            raise OutputError(f"{path}: the contact sheet cannot be written ({exc.strerror or exc}); the faces and "
                              f"{self.settings.alignments_path.name} are complete") from None

    def _remove_what_this_run_made(self) -> None:
        """A run that wrote no frame (its one input unreadable, refused, interrupted at once)
        leaves nothing behind: not an alignments file holding only its header (a ``--batch``
        input's folder of it), nor the folders and lock files it made. The locks go while held,
        so no other run can take this output in between; a folder is removed only if empty."""
        self.settings.alignments_path.unlink(missing_ok=True)
        self._remove_locks_and_folders_made()

    def _remove_locks_and_folders_made(self) -> None:
        """The lock files and folders this run made, the locks still held (no other run takes the
        output in between); a folder only if empty."""
        for lock in self.locks:
            if lock.created:
                lock.path.unlink(missing_ok=True)
        for folder in self._made_folders:
            try:
                folder.rmdir()
            except OSError:  # something else is in it (a face PNG of a frame whose record failed)
                pass
