"""faceswap's ``.fsa`` alignments files, read safely.

An ``.fsa`` is a zlib-compressed pickle (faceswap's "compressed" serializer) of
``{frame: {"faces": [{x, y, w, h, landmarks_xy, mask, identity, thumb}], "video_meta": {}}}``
plus a ``__meta__`` entry. A pickle can run any code when loaded, and users pass these files
around, so they are read with an unpickler that only rebuilds plain containers and numpy arrays
and refuses every other global with an error that names it. Nothing in the file runs.
"""
from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path


class UnsafeFileError(Exception):
    """The file asks the unpickler for something other than plain data; nothing was run."""


# (module, name) pairs a faceswap alignments pickle legitimately needs: numpy arrays, dtypes,
# scalars, and a few plain builtins. Everything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
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
        raise UnsafeFileError(f"{source}: not a readable pickle ({exc})") from None


def read_fsa(path: str | Path) -> dict:
    """The content of a faceswap ``.fsa`` file, without running anything it contains."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass  # faceswap's uncompressed pickle serializer writes the same data without zlib
    data = safe_loads(raw, str(path))
    if not isinstance(data, dict):
        raise UnsafeFileError(f"{path}: not a faceswap alignments file (top level is {type(data).__name__})")
    return data


# --- importing (--import-alignments) ----------------------------------------------------------


def fsa_frames(content: dict) -> dict:
    """The frame dict of an ``.fsa``, whether it wraps frames in ``__data__`` (faceswap 2.x
    files) or keeps them at the top level next to ``__meta__`` (older writers)."""
    if "__data__" in content:
        return content["__data__"]
    return {key: value for key, value in content.items() if key != "__meta__"}


def imported_faces(path: str | Path) -> tuple[dict[str, list], list[str]]:
    """Faces of an ``.fsa`` by frame key, as ``DetectedFace`` with box and landmarks (masks are
    recomputed by the run), and one line per face that cannot be used (skipped, not fatal)."""
    import numpy as np

    from extractor.faces import DetectedFace

    out, problems = {}, []
    for key, frame in fsa_frames(read_fsa(path)).items():
        faces = []
        for index, face in enumerate(frame.get("faces", []) if isinstance(frame, dict) else []):
            try:
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
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{path}: frame {key!r} face {index} skipped ({exc})")
                continue
            faces.append(detected)
        out[str(key)] = faces
    return out, problems
