"""Deep images Pillow cannot read, or reads wrongly, decoded as faceswap decodes them: OpenEXR
frames (VFX plates, renders), TIFFs of 32-bit float colour (scientific and VFX tools) and colour
JPEG 2000 (whose 16-bit whites Pillow turns black: its 8-bit rounding wraps past 255).

faceswap reads every image through OpenCV, unchanged, then scales integers by their type's range
and clips floats to 0-1 before making them 8 bits (no display transform): extractor does the
same (``faceswap_8bit``), so its crops of such a frame are the pixels faceswap cuts from it. The
OpenEXR package (the Academy Software Foundation's bindings) reads EXR files, which OpenCV's
wheels carry no codec for; OpenCV reads the TIFFs and JPEG 2000. Sizes come from the headers, so
that --max-pixels is checked before any decoding.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings

import numpy as np

from extractor.quiet import native_lines_to_log

logger = logging.getLogger(__name__)

# What OpenEXR's C library writes to stderr about a damaged file; its Python binding prints its
# own "Warning: ..." line to stdout. The error raised says it once, with the file's name.
LIBRARY_LINES = re.compile(r"\(EXR_ERR_")


class DeepImageError(Exception):
    """A deep image that cannot be used; the message says what is wrong (not the file's name)."""


def is_exr(path) -> bool:
    return str(path).lower().endswith(".exr")


def is_tiff(path) -> bool:
    return str(path).lower().endswith((".tif", ".tiff"))


def deep_image_size(path: str) -> tuple[int, int]:
    """(width, height) of an EXR or a TIFF, from its header alone."""
    if is_exr(path):
        return exr_size(path)
    size = tiff_size(path)
    if size is None:
        raise DeepImageError("not an image Pillow or OpenCV can read (unknown or corrupt format)")
    return size


def read_deep_image(path: str) -> np.ndarray:
    """An EXR or a TIFF Pillow cannot read, as 8-bit BGR."""
    return read_exr(path) if is_exr(path) else read_with_opencv(path, "a TIFF neither Pillow nor OpenCV can decode")


def exr_size(path: str) -> tuple[int, int]:
    """(width, height) of the image, from the header alone (its data window). Paths go to the
    library as bytes: a file name that is not UTF-8 cannot be passed as text."""
    import OpenEXR

    try:
        header = OpenEXR.File(os.fsencode(path), header_only=True).header()
        low, high = header["dataWindow"]
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise DeepImageError(f"not an OpenEXR file it can read ({' '.join(str(exc).split())})") from None
    return int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)


def read_exr(path: str) -> np.ndarray:
    """The image as 8-bit BGR: R, G, B channels (or Y, grey), each clipped to 0-1, times 255,
    truncated (faceswap's ``read_image``). Alpha and other channels are left out."""
    import OpenEXR

    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), native_lines_to_log(LIBRARY_LINES, "openexr"):
            channels = OpenEXR.File(os.fsencode(path), separate_channels=True).channels()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise DeepImageError("cannot decode OpenEXR file, cut short or damaged "
                             f"({' '.join(str(exc).split())})") from None
    finally:
        if said.getvalue().strip():
            logger.debug("openexr: %s", said.getvalue().strip())
    names = [name for name in ("B", "G", "R") if name in channels]
    if len(names) != 3:
        names = ["Y"] * 3 if "Y" in channels else []
    if not names:
        raise DeepImageError(f"no R, G, B or Y channel to show (channels: {', '.join(sorted(channels)) or 'none'})")
    planes = [np.asarray(channels[name].pixels) for name in names]
    if any(plane.shape != planes[0].shape or plane.ndim != 2 for plane in planes):
        raise DeepImageError("its colour channels are sampled at different sizes (subsampled chroma is not read)")
    return faceswap_8bit(np.stack(planes, axis=-1))


def faceswap_8bit(image: np.ndarray) -> np.ndarray:
    """A deep image (16-bit or 32-bit integers, floats) as 8 bits the way faceswap's
    ``read_image`` makes them: integers scaled by their type's range, floats clipped to 0-1,
    then times 255 and truncated."""
    if np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:
        return (image.astype(np.float32) / np.iinfo(image.dtype).max * 255.0).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    return image.astype(np.uint8)


def tiff_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first directory (its header only), None when it is none."""
    from PIL import TiffImagePlugin

    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged header: the decode names the file once
            head = file.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):
                return None
            directory = TiffImagePlugin.ImageFileDirectory_v2(head)
            file.seek(directory.next)
            directory.load(file)
        return int(directory[256]), int(directory[257])
    except (OSError, KeyError, ValueError, TypeError, SyntaxError):
        return None


def read_with_opencv(path: str, refusal: str) -> np.ndarray:
    """An image through OpenCV, unchanged (as faceswap reads it), as 8-bit BGR: alpha left out,
    grey made colour. ``refusal`` is the error where OpenCV cannot decode it."""
    import cv2

    # OpenCV prints its codecs' complaints about a damaged file to stderr; the error raised says it once.
    level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None or image.ndim not in (2, 3):
        raise DeepImageError(refusal)
    image = faceswap_8bit(image)
    if image.ndim == 3 and image.shape[2] >= 3:
        return np.ascontiguousarray(image[..., :3])
    return cv2.cvtColor(image if image.ndim == 2 else np.ascontiguousarray(image[..., 0]), cv2.COLOR_GRAY2BGR)
