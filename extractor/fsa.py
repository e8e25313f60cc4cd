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
