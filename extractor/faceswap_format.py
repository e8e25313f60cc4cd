"""What faceswap reads from extractor: its face dicts, the face PNG header and ``.fsa`` files.

Written as faceswap 2.x writes them itself (alignments version 2.4), so that its tools load them
as they are and never rewrite them on first load (their updater fires on numpy arrays, missing
keys or versions before 2.3): every array is a list, each face has its 96 px JPEG thumbnail, and
a video's frames carry ``video_meta`` (presentation time stamps and key frames, which faceswap's
manual tool would otherwise rescan the video for).

Coordinates are in the pixels faceswap reads a frame in: photos as stored, without EXIF
orientation (``orientation.py``); extractor's own records stay upright.
"""
from __future__ import annotations

import base64
import binascii
import logging
import pickle
import zlib
from pathlib import Path

import cv2
import numpy as np

from extractor.crops import MASK_CROP, faceswap_mask_interpolator
from extractor.faces import DetectedFace, Mask
from extractor.geometry import compose_affine, invert_affine
from extractor.orientation import MIRRORED, move_box, move_landmarks, stored_shape, upright_to_stored
from extractor.regular_files import open_regular
from extractor.safe_write import replace_file

logger = logging.getLogger(__name__)

FSA_VERSION = 2.4
WRITTEN_BY = "extractor"
THUMB_SIZE, THUMB_QUALITY = 96, 60  # faceswap's thumbnails: 96 px JPEG at quality 60
# extractor's maskers by the names faceswap knows them. Its landmark masks keep their names
# (faceswap rebuilds those from the landmarks when it loads a file); the mesh hull goes under
# 'custom_face', the mask type faceswap's training and convert select for a mask made elsewhere.
FACESWAP_MASK_NAMES = {"components": "components", "extended": "extended", "mesh-hull": "custom_face"}


def is_video_record(record: dict) -> bool:
    from extractor.sources import VIDEO_EXTENSIONS

    return Path(record["source"]).suffix.lower() in VIDEO_EXTENSIONS


def thumbnail(head_crop: np.ndarray) -> bytes:
    """faceswap's thumbnail of a face: its 'head' crop resized to 96 px, JPEG quality 60."""
    size = head_crop.shape[0]
    if size != THUMB_SIZE:
        interpolation = cv2.INTER_AREA if size > THUMB_SIZE else cv2.INTER_CUBIC
        head_crop = cv2.resize(head_crop, (THUMB_SIZE, THUMB_SIZE), interpolation=interpolation)
    return cv2.imencode(".jpg", head_crop, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])[1].tobytes()


def _mask_to_stored(mask: Mask, orientation: int, to_stored: np.ndarray, stored_landmarks: np.ndarray) -> Mask:
    """The mask for the stored frame. A turn only changes the matrix; a mirror also mirrors the
    face's crop, so the mask is redrawn in the crop faceswap cuts from the stored frame."""
    if orientation not in MIRRORED:
        return Mask(mask.data, compose_affine(mask.affine, invert_affine(to_stored)), mask.centering)
    affine = MASK_CROP.matrix(stored_landmarks)
    ours_to_theirs = compose_affine(affine, to_stored, invert_affine(mask.affine))
    data = cv2.warpAffine(mask.data, ours_to_theirs, (mask.stored_size, mask.stored_size), flags=cv2.INTER_LINEAR)
    return Mask(data, affine, mask.centering)


def face_in_stored_frame(face: DetectedFace, orientation: int, upright_shape) -> DetectedFace:
    """``face`` with its box, landmarks and masks in the frame's stored pixels (orientation 1:
    the face itself)."""
    if orientation in (0, 1, None):
        return face
    to_stored = upright_to_stored(orientation, upright_shape)
    landmarks = move_landmarks(face.landmarks, orientation, to_stored)
    moved = DetectedFace(*move_box((face.left, face.top, face.width, face.height), to_stored), face.score,
                         landmarks=landmarks, identity=face.identity)
    moved.masks = {name: _mask_to_stored(mask, orientation, to_stored, landmarks) for name, mask in face.masks.items()}
    return moved


def faceswap_mask(mask: Mask) -> dict:
    """faceswap's stored mask: zlib bytes, 3x3 frame-to-mask matrix, interpolator back to the
    frame, size and centering."""
    return {"mask": mask.packed(), "affine_matrix": np.vstack([mask.affine, [0.0, 0.0, 1.0]]).tolist(),
            "interpolator": faceswap_mask_interpolator(mask.affine), "stored_size": mask.stored_size,
            "stored_centering": mask.centering}


def faceswap_face(face: DetectedFace, thumb: bytes | None = None, with_thumb: bool = True) -> dict:
    """A face in faceswap's alignments layout (its ``FileAlignments``; without ``thumb`` for a PNG
    header, its ``PNGAlignments``), lists and not arrays, in the order faceswap writes the keys."""
    out = {"x": int(round(face.left)), "y": int(round(face.top)),
           "w": int(round(face.width)), "h": int(round(face.height)),
           "landmarks_xy": np.asarray(face.landmarks, np.float32).tolist(),
           "mask": {FACESWAP_MASK_NAMES.get(name, name): faceswap_mask(mask) for name, mask in face.masks.items()},
           "identity": {name: np.asarray(vector, np.float32).tolist() for name, vector in face.identity.items()}}
    if with_thumb:
        out["thumb"] = None if thumb is None else np.frombuffer(thumb, np.uint8).tolist()
    return out


def png_header(record: dict, face_index: int, face: DetectedFace, filename: str) -> dict:
    """faceswap's PNG header of one face (``face`` already in the stored frame): its alignments
    and where it came from. faceswap writes ``str(dict)`` and reads it with ``literal_eval``."""
    return {"alignments": faceswap_face(face, with_thumb=False),
            "source": {"alignments_version": FSA_VERSION, "original_filename": filename,
                       "face_index": face_index, "source_filename": record["frame"],
                       "source_is_video": is_video_record(record),
                       "source_frame_dims": stored_shape(record.get("orientation", 1), record["image_shape"])}}


def video_meta(path: str | Path) -> list[dict] | None:
    """faceswap's ``video_meta`` of every frame of a video, in frame order: the presentation time
    stamp (stream time base) and whether it is a key frame. Read from the container's packets,
    without decoding; None (with a warning) when the video cannot be read."""
    import av

    from extractor.sources import InputError, video_stream

    try:
        with av.open(str(path)) as container:
            stream = video_stream(container, Path(path))
            packets = sorted((packet.pts, bool(packet.is_keyframe)) for packet in container.demux(stream)
                             if packet.pts is not None)
    except (OSError, av.error.FFmpegError, InputError) as exc:
        logger.warning("%s: video not readable for faceswap's video_meta (%s); faceswap will scan it itself", path, exc)
        return None
    return [{"pts_time": int(pts), "keyframe": key} for pts, key in packets]


def records_to_fsa(records, problems: list[str] | None = None) -> dict:
    """faceswap's alignments data (``__meta__`` + ``__data__``) from extractor records. A video's
    file lists every frame of the video, each with its ``video_meta``, as faceswap's extract does
    (frames not extracted, e.g. under --extract-every-n, with no faces). A face that cannot be
    read is left out, with one line in ``problems``."""
    from extractor.sources import video_frame_key

    data, videos = {}, {}
    for record in records:
        orientation = record.get("orientation", 1)
        faces = []
        for index, face in enumerate(record["faces"]):
            try:
                moved = face_in_stored_frame(DetectedFace.from_dict(face), orientation, record["image_shape"])
                faces.append(faceswap_face(moved, base64.b64decode(face["thumb"]) if face.get("thumb") else None))
            except (KeyError, TypeError, ValueError, IndexError, binascii.Error, zlib.error) as exc:
                if problems is not None:
                    problems.append(f"frame {record['frame']!r} face {index} left out of the .fsa "
                                    f"({type(exc).__name__}: {exc})")
        data[record["frame"]] = {"faces": faces, "video_meta": {}}
        if is_video_record(record):
            videos.setdefault(record["source"], []).append(record["index"])
    for source, indices in videos.items():
        meta = video_meta(source)
        if meta is None:
            continue
        if len(meta) <= max(indices):
            logger.warning("%s: %d frames in the container, but frame %d was extracted; video_meta left out",
                           source, len(meta), max(indices) + 1)
            continue
        for index, frame_meta in enumerate(meta):
            key = video_frame_key(Path(source), index)
            data.setdefault(key, {"faces": [], "video_meta": {}})["video_meta"] = frame_meta
    if videos:  # frame order: video keys sort by frame number
        data = dict(sorted(data.items()))
    # faceswap reads only "version" here; "written_by" lets a later export replace this file.
    return {"__meta__": {"version": FSA_VERSION, "written_by": WRITTEN_BY}, "__data__": data}


def written_by_extractor(path: Path) -> bool:
    """Whether the ``.fsa`` at ``path`` is one extractor wrote: its ``__meta__``, pickled before
    the frames, names extractor (faceswap's own saves, its manual tool's included, drop the
    name). Read from the file's first bytes only: a long video's file takes seconds to minutes and
    gigabytes to load whole, before a resume could start."""
    try:
        with open_regular(path) as handle:
            start = zlib.decompressobj().decompress(handle.read(1 << 16), 1 << 12)
    except (OSError, zlib.error):
        return False
    frames_at = start.find(b"__data__")
    meta = start[:max(frames_at, 0)]
    return b"__meta__" in meta and b"written_by" in meta and WRITTEN_BY.encode() in meta


def check_export_target(path: Path, source: Path) -> None:
    """An export writes a new file, or replaces an ``.fsa`` an earlier export wrote; never the
    alignments it reads, a photo or anything else (OutputError naming the file)."""
    from extractor.alignments import OutputError

    if path.resolve() == source.resolve():
        raise OutputError(f"{path}: is the alignments file being exported; choose another -o")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; -o names the .fsa file to write")
    if path.exists():
        if not written_by_extractor(path):
            raise OutputError(f"{path}: exists and is not an .fsa that extractor exported; it was left untouched: "
                              "choose another -o, or remove it first")


def write_fsa(records, path: str | Path) -> tuple[int, list[str]]:
    """Write records as a faceswap ``.fsa`` (zlib-compressed pickle), whole or not at all (a
    temporary file, on the disk before it is renamed over the old one: a power cut leaves the
    old file or the new, never an empty one); returns the frame count and the faces left out."""
    problems: list[str] = []
    content = records_to_fsa(records, problems)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # protocol 4: what faceswap writes on the Pythons it runs on (3.14's default, 5, stores arrays
    # otherwise), so a file made on any Python is the same bytes
    replace_file(path, zlib.compress(pickle.dumps(content, protocol=4)))
    return len(content["__data__"]), problems
