"""faceswap's ``.fsa`` alignments files, read safely.

An ``.fsa`` is a zlib-compressed pickle (faceswap's "compressed" serializer) of
``{frame: {"faces": [{x, y, w, h, landmarks_xy, mask, identity, thumb}], "video_meta": {}}}``
plus a ``__meta__`` entry. A pickle can run any code when loaded, and users pass these files
around, so they are read with an unpickler that only rebuilds plain containers and numpy arrays
and refuses every other global with an error that names it. Nothing in the file runs.
"""
from __future__ import annotations

import io
import logging
import json
import pickle
import zlib
from pathlib import Path, PurePath

import numpy as np

from extractor.faces import DetectedFace
from extractor.geometry import invert_affine
from extractor.orientation import exif_orientation, move_box, move_landmarks, upright_to_stored
from extractor.regular_files import read_regular


logger = logging.getLogger(__name__)


class UnsafeFileError(Exception):
    """The file asks the unpickler for something other than plain data; nothing was run."""


# (module, name) pairs a faceswap alignments pickle legitimately needs: numpy arrays, dtypes,
# scalars, and a few plain builtins. Everything else is refused. Pickle protocol 5 (Python 3.14's
# default) stores an array as its bytes and numpy's ``_frombuffer``, which makes no object array;
# protocol 2 stores bytes as ``_codecs.encode`` of a string (an encoding, nothing run).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data))
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafeFileError(f"{self.source}: refused to load '{module}.{name}': an alignments file holds "
                              "only data, and this name could run code (file not loaded)")


def safe_loads(data: bytes, source: str = "<bytes>"):
    """Unpickle plain data only (containers, numbers, strings, bytes, numpy arrays)."""
    try:
        return _RestrictedUnpickler(data, source).load()
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UnsafeFileError(f"{source}: not a faceswap alignments file (an .fsa, or faceswap 1.x's pickle or "
                              f"JSON): not a readable pickle ({exc})") from None


# An alignments file holds boxes, landmarks, small masks and thumbnails: about 3 KB a face, so 2 GB
# is some 700,000 faces. More than that, once decompressed, is a zlib bomb, stopped at the limit.
MAX_ALIGNMENTS_BYTES = 2 << 30
INFLATE_PIECE = 16 << 20


def _inflate(raw: bytes, path: Path) -> bytes:
    """zlib data decompressed, measured first in small pieces so that a zlib bomb is refused
    without ever holding more than ``INFLATE_PIECE`` of it; data that is not zlib (faceswap's
    plain pickle serializer) as it is."""
    inflater, size = zlib.decompressobj(), 0
    try:
        piece = inflater.decompress(raw, INFLATE_PIECE)
        while piece:
            size += len(piece)
            if size > MAX_ALIGNMENTS_BYTES:
                raise UnsafeFileError(f"{path}: decompresses to over {MAX_ALIGNMENTS_BYTES >> 20} MB (a zlib "
                                      "bomb?); file not loaded")
            piece = inflater.decompress(inflater.unconsumed_tail, INFLATE_PIECE)
    except zlib.error:
        return raw
    if not inflater.eof:
        raise UnsafeFileError(f"{path}: its compressed data is cut short (a damaged or partly copied .fsa); file not "
                              "loaded")
    return zlib.decompress(raw)


def read_fsa(path: str | Path) -> dict:
    """The content of a faceswap alignments file, without running anything it contains: the
    ``.fsa`` (zlib-compressed pickle, faceswap 2.x), or the plain pickle and JSON files of its
    other serializers (1.x ``alignments.p`` / ``alignments.json``)."""
    path = Path(path)
    if path.stat().st_size > MAX_ALIGNMENTS_BYTES:
        raise UnsafeFileError(f"{path}: {path.stat().st_size} bytes, over the {MAX_ALIGNMENTS_BYTES >> 20} MB an "
                              "alignments file may hold (file not loaded)")
    raw = read_regular(path)
    if not raw.strip():
        raise UnsafeFileError(f"{path}: an empty file, not a faceswap alignments file")
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UnsafeFileError(f"{path}: not readable JSON ({exc})") from None
    else:
        raw = _inflate(raw, path)
        data = safe_loads(raw, str(path))
    if not isinstance(data, dict):
        raise UnsafeFileError(f"{path}: not a faceswap alignments file (top level is {type(data).__name__})")
    return data


# --- importing (--import-alignments) ----------------------------------------------------------

FACESWAP_VIDEO_EXTENSIONS = {".avi", ".flv", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv", ".ts", ".vob"}


def fsa_frames(content: dict) -> dict:
    """The frames of an alignments file as faceswap 2.4 lays them out, ``{key: {"faces": [...]}}``
    with ``landmarks_xy``, whatever version wrote it: 2.x wraps frames in ``__data__``; 1.x kept
    them at the top level, as lists of faces, with ``landmarksXY`` (what faceswap's updater
    converts)."""
    frames = content["__data__"] if "__data__" in content else {k: v for k, v in content.items() if k != "__meta__"}
    if not isinstance(frames, dict):
        raise ValueError(f"its frames are a {type(frames).__name__}, not a table of frames")
    out = {}
    for key, frame in frames.items():
        frame = {"faces": frame} if isinstance(frame, list) else frame
        if isinstance(frame, dict):
            for face in frame.get("faces") or []:
                if isinstance(face, dict) and "landmarksXY" in face and "landmarks_xy" not in face:
                    face["landmarks_xy"] = face.pop("landmarksXY")
        out[str(key)] = frame
    return out


def rename_video_keys(frames: dict, video: Path) -> dict:
    """faceswap's rule for a video's keys (alignments before 2.4 ended them in ``.png``): when
    every key has one extension that is not the video's, the keys of this video's frames
    (``<video stem>_<number>``) take the video's extension."""
    if video.suffix.lower() not in FACESWAP_VIDEO_EXTENSIONS:
        return frames
    extensions = {PurePath(key).suffix for key in frames}
    if len(extensions) != 1 or video.suffix in extensions:
        return frames
    renamed = {}
    for key, frame in frames.items():
        stem = PurePath(key).stem
        renamed[f"{stem}{video.suffix}" if stem.rsplit("_", 1)[0] == video.stem else key] = frame
    return renamed


def _face_from(face) -> DetectedFace:
    """One faceswap face as a ``DetectedFace`` (box, and landmarks when it has them); ValueError,
    KeyError or TypeError when it is not a usable face."""
    box = [float(face[k]) for k in ("x", "y", "w", "h")]
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0 or np.abs(box).max() > 1e6:
        raise ValueError(f"box {box} is not a finite box of positive size")
    detected = DetectedFace(*box)
    points = face.get("landmarks_xy")
    if points is not None and len(points):
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (68, 2) or not np.isfinite(points).all() or np.abs(points).max() > 1e6:
            raise ValueError(f"landmarks of shape {points.shape} are not 68 finite points")
        if np.ptp(points, axis=0).min() < 1:
            raise ValueError("landmarks collapse onto a line or a point")
        detected.landmarks = points
    return detected


def extractor_file_faces(path: str | Path) -> tuple[dict[str, list], list[str]] | None:
    """Faces of extractor's own alignments file (a run's ``.jsonl``: its faces re-cut at another
    size or centering, or aligned again), as ``imported_faces`` gives a faceswap file's: in each
    frame's stored pixels (the records' are upright); None where ``path`` is not such a file."""
    from extractor.alignments import DamagedHeader, OutputError, read_header, read_records
    from extractor.faceswap_format import face_in_stored_frame

    try:
        read_header(path)
    except DamagedHeader:
        pass  # ours: its records are checked one by one
    except OutputError:
        return None
    out, problems = {}, []
    for record in read_records(path):
        faces = []
        for index, face in enumerate(record["faces"]):
            try:
                left, top, width, height = face["box"]
                upright = _face_from({"x": left, "y": top, "w": width, "h": height,
                                      "landmarks_xy": face.get("landmarks")})
                faces.append(face_in_stored_frame(upright, record.get("orientation", 1), record["image_shape"]))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                problems.append(f"{path}: frame {record['frame']!r} face {index} skipped ({exc})")
        out[record["frame"]] = faces
    return out, problems


def imported_faces(path: str | Path, video: Path | None = None) -> tuple[dict[str, list], list[str]]:
    """Faces of a faceswap alignments file by frame key (keys of a video's frames mapped as
    faceswap maps them), as ``DetectedFace`` with box and landmarks in the frame's stored pixels
    (masks are recomputed by the run), and one line per face that cannot be used (skipped, not
    fatal). extractor's own alignments file is read too (``extractor_file_faces``)."""
    ours = extractor_file_faces(path)
    if ours is not None:
        return ours
    try:
        frames = fsa_frames(read_fsa(path))
    except ValueError as exc:
        raise UnsafeFileError(f"{path}: not a faceswap alignments file ({exc})") from None
    except OSError as exc:  # unreadable, or a named pipe or a device
        raise UnsafeFileError(f"{path}: cannot read the alignments file to import ({exc.strerror or exc})") from None
    if video is not None:
        frames = rename_video_keys(frames, video)
    out, problems = {}, []
    for key, frame in frames.items():
        faces = []
        listed = (frame.get("faces") or []) if isinstance(frame, dict) else None
        if not isinstance(listed, list):
            what = (f"its faces are a {type(listed).__name__}" if isinstance(frame, dict)
                    else f"a {type(frame).__name__}")
            problems.append(f"{path}: frame {key!r} skipped ({what}, not a list of faces)")
            continue
        for index, face in enumerate(listed):
            try:
                faces.append(_face_from(face))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{path}: frame {key!r} face {index} skipped ({exc})")
        out[key] = faces
    return out, problems


def face_to_upright(face: DetectedFace, orientation: int, stored_size: tuple[int, int]) -> DetectedFace:
    """A face read from faceswap (stored pixels of a photo of ``stored_size`` (width, height))
    in extractor's upright pixels."""
    width, height = stored_size
    upright_shape = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
    back = invert_affine(upright_to_stored(orientation, upright_shape))
    moved = DetectedFace(*move_box((face.left, face.top, face.width, face.height), back), face.score)
    if face.landmarks is not None:
        moved.landmarks = move_landmarks(face.landmarks, orientation, back)
    return moved


def match_frames(faces: dict[str, list], path: Path, frame_keys: set[str], images: dict[str, Path]) -> dict[str, list]:
    """The imported frames that are frames of this input, their faces in upright pixels (a photo
    with an EXIF orientation is turned as extractor decodes it). Keys that match no frame are
    reported (how many, the first few); none matching at all is an error, never 0 faces."""
    from PIL import Image

    from extractor.sources import InputError

    unmatched = [key for key in faces if key not in frame_keys]
    if len(unmatched) == len(faces):
        raise InputError(f"{path}: none of its {len(faces)} frame key(s) is a frame of this input (first: "
                         f"{', '.join(unmatched[:3]) or 'none'}); faceswap keys an image by its file name and a video "
                         "frame as <video name>_<frame number, 6 digits><video extension>")
    if unmatched:
        logger.warning("%s: %d of its %d frame keys match no frame of this input (first: %s); their faces are not "
                       "imported", path, len(unmatched), len(faces), ", ".join(unmatched[:3]))
    matched = {}
    for key, frame_faces in faces.items():
        if key not in frame_keys:
            continue
        orientation = exif_orientation(str(images[key])) if key in images and frame_faces else 1
        if orientation != 1:
            with Image.open(images[key]) as image:
                frame_faces = [face_to_upright(face, orientation, image.size) for face in frame_faces]
        matched[key] = frame_faces
    return matched
