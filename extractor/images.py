"""Image files decoded to 8-bit BGR: every format a photo comes in, read as faceswap reads it.

Pillow reads the common formats, HEIC/AVIF (phones) through pillow-heif, OpenEXR and the TIFFs
Pillow cannot through ``deep_images``; colour JPEG 2000 and a CMYK JPEG's colours come from OpenCV,
whose pixels faceswap reads; the EXIF orientation is applied; a header that claims more
pixels than --max-pixels is refused before decoding. An image that cannot be used raises
``InputError`` naming the file; one that can, in part, comes with a warning.
"""
from __future__ import annotations

import io
import os
import stat
import warnings
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import MAX_TEXT_CHUNK
from pillow_heif import register_heif_opener

from extractor.deep_images import (DeepImageError, deep_image_size, is_exr, is_tiff, read_deep_image, read_with_opencv,
                                   tiff_size)
from extractor.regular_files import not_regular_text

# Phones save photos as HEIC (iPhones by default) and AVIF; the web gives .jfif, .avif and .gif
# files. Pillow reads AVIF, JPEG 2000 and GIF itself, and HEIF through pillow-heif's opener,
# which applies the file's own rotation (irot/imir) and resets its EXIF orientation to 1, so
# exif_transpose below never turns a photo twice.
register_heif_opener()
# Pixels a frame may have (checked on the header, before decoding): 250 MP holds every camera's
# full-size photo (200 MP phones, 16320 x 12240; 151 MP and "100 MP" medium format, which is 102)
# while bounding what one frame can cost (750 MB per decoded copy); a small file that claims more
# (a "decompression bomb") is refused.
DEFAULT_MAX_PIXELS = 250_000_000
# Our own --max-pixels guard runs on the header before any decoding, so Pillow's lower built-in
# bomb limit (which would refuse large but legitimate scans) is switched off.
Image.MAX_IMAGE_PIXELS = None


class InputError(Exception):
    """An input that cannot be used; the message names the file and the problem."""


def to_bgr8(pil_image: Image.Image) -> np.ndarray:
    """Any Pillow image (gray, RGBA, palette, CMYK, 16-bit, float) as an 8-bit BGR array."""
    mode = pil_image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(pil_image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        if mode == "F":
            top = max(float(array.max()), 1.0)
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if mode in ("L", "1"):
        gray = np.asarray(pil_image.convert("L"))
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if mode != "RGB":
        pil_image = pil_image.convert("RGB")  # RGBA/LA/P drop alpha; CMYK/YCbCr/LAB convert
    return cv2.cvtColor(np.asarray(pil_image), cv2.COLOR_RGB2BGR)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """Decode an image file to 8-bit BGR with its EXIF orientation applied.

    Returns the image and a warning (or None). A truncated file that still decodes in part is
    returned with a warning; anything unusable raises ``InputError`` naming the file. Pillow's
    own warnings about the file's damaged metadata ("Corrupt EXIF data") become that warning,
    naming the file, instead of lines naming Pillow's source.
    """
    path = str(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, warning = _decode(path, max_pixels)
    damaged = []
    for caught_warning in caught:
        text = " ".join(str(caught_warning.message).split())
        if "corrupt" in text.lower() or "exif" in text.lower():
            damaged.append(text)
        else:  # not about this file's metadata: shown as it would have been
            warnings.warn_explicit(caught_warning.message, caught_warning.category, caught_warning.filename,
                                   caught_warning.lineno)
    if damaged:
        note = f"{path}: damaged metadata ({damaged[0]}); the pixels are read"
        warning = f"{warning}; {note}" if warning else note
    return image, warning


def _decode(path: str, max_pixels: int) -> tuple[np.ndarray, str | None]:
    try:
        there = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(there.st_mode):  # a named pipe (reading it waits for a writer for ever), a device
        raise InputError(f"{path}: {not_regular_text(there.st_mode)}")
    if there.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    if is_exr(path):
        return _read_deep(path, max_pixels), None
    try:
        with Image.open(path) as pil_image:
            check_pixels(path, *pil_image.size, max_pixels)
            if pil_image.format == "JPEG2000" and pil_image.mode in ("RGB", "RGBA"):
                return _jpeg2000(path), None
            # A camera's or phone's JPEG often carries more images after the photo (MPO: a preview,
            # an HDR gain map, a depth map, a stereo pair's other eye): the photo is the first.
            pages = getattr(pil_image, "n_frames", 1) if pil_image.format != "MPO" else 1
            warning = (f"{path}: holds {pages} images (an animation, a burst or a multi-page file); only the "
                       "first is used" if pages > 1 else None)
            try:
                pil_image.load()
            except OSError as exc:
                if "truncated" not in str(exc):
                    raise
                warning = f"{path}: truncated file ({exc}); using the part that decodes"
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                try:
                    with Image.open(path) as retry:
                        retry.load()
                        pil_image = retry.copy()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = False
            if pil_image.format == "JPEG" and pil_image.mode == "CMYK" and warning is None:
                pil_image = _cmyk_in_opencv_colours(path, pil_image)
            # In place: without an orientation to apply, the copying form copies the whole image.
            ImageOps.exif_transpose(pil_image, in_place=True)
            return to_bgr8(pil_image), warning
    except InputError:
        raise
    except UnidentifiedImageError:
        if is_tiff(path):
            return _read_deep(path, max_pixels), None
        # Pillow refuses a PNG whose metadata chunk's checksum is wrong; libpng passes over it.
        return _png_pixels_only(path, max_pixels, "a damaged metadata chunk (its checksum is wrong)",
                                "not an image Pillow can read (unknown or corrupt format)")
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: {exc}") from None
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        if "MAX_TEXT" not in str(exc) and "text chunks" not in str(exc):
            raise InputError(f"{path}: cannot decode image ({' '.join(str(exc).split())})") from None
        too_large = f"a metadata chunk (text or colour profile) unpacks to over {MAX_TEXT_CHUNK // 2**20} MB"
        return _png_pixels_only(path, max_pixels, too_large,
                                "cannot decode image (its metadata is too large to unpack)")
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot decode image ({' '.join(str(exc).split())})") from None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks (a lower-case first letter) that still count: transparency and EXIF orientation.
PNG_ANCILLARY_KEPT = (b"tRNS", b"eXIf")


def _png_pixels_only(path: str, max_pixels: int, damage: str, refusal: str) -> tuple[np.ndarray, str]:
    """A PNG Pillow refuses for a metadata chunk (``damage``: one whose compressed text or colour
    profile unpacks too large, a zlib bomb or a photo's oversized profile; one whose checksum is
    wrong) that OpenCV, which faceswap reads with, passes over: read by Pillow from its bytes
    without its other ancillary chunks (text, profile, gamma...), then, if that fails, without any,
    with a warning. ``InputError`` (``refusal``) where it is no PNG or its pixels cannot be read."""
    with open(path, "rb") as file:
        data = file.read() if file.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE else b""  # a PNG only
    chunks, position = [], 0
    while position + 8 <= len(data):
        end = min(len(data), position + 12 + int.from_bytes(data[position:position + 4], "big"))
        chunks.append((data[position + 4:position + 8], data[position:end]))
        position = end
    for kept_ancillary in (PNG_ANCILLARY_KEPT, ()) if chunks else ():
        kept = [chunk for kind, chunk in chunks if kind[:1].isupper() or kind in kept_ancillary]
        try:
            with Image.open(io.BytesIO(PNG_SIGNATURE + b"".join(kept))) as pil_image:
                check_pixels(path, *pil_image.size, max_pixels)
                ImageOps.exif_transpose(pil_image, in_place=True)
                return to_bgr8(pil_image), f"{path}: {damage}; the pixels are read without it"
        except (OSError, ValueError, SyntaxError):
            continue
    raise InputError(f"{path}: {refusal}") from None


@contextmanager
def opened_quietly(path: str | os.PathLike) -> Iterator[Image.Image]:
    """``Image.open`` for a header read (size, orientation) without Pillow's warnings about damaged
    metadata: the decode (``read_image``) names the file once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as pil_image:
            yield pil_image


def check_pixels(path: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image whose header claims more pixels than --max-pixels, before decoding it."""
    if width * height > max_pixels:
        raise InputError(f"{path}: header says {width}x{height} = {width * height} pixels, "
                         f"over the --max-pixels limit of {max_pixels}")


def _read_deep(path: str, max_pixels: int) -> np.ndarray:
    """An OpenEXR frame or a TIFF Pillow cannot read (``deep_images``), its size checked first."""
    try:
        check_pixels(path, *deep_image_size(path), max_pixels)
        return read_deep_image(path)
    except DeepImageError as exc:
        raise InputError(f"{path}: {exc}") from None


def _cmyk_in_opencv_colours(path: str, pil_image: Image.Image) -> Image.Image:
    """A CMYK JPEG (print and stock photos) in the colours OpenCV gives it, as faceswap reads it
    (Pillow's own conversion to RGB is a level or two darker), its EXIF kept for the orientation."""
    try:
        bgr = read_with_opencv(path, "a CMYK JPEG OpenCV cannot decode")
    except DeepImageError:
        return pil_image
    if bgr.shape[:2] != pil_image.size[::-1]:
        return pil_image
    recoloured = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # as stored: the orientation comes after
    if "exif" in pil_image.info:
        recoloured.info["exif"] = pil_image.info["exif"]
    return recoloured


def _jpeg2000(path: str) -> np.ndarray:
    """Colour JPEG 2000 through OpenCV, as faceswap reads it: Pillow makes 16 bits into 8 with a
    rounding that wraps, its whites (from 65408 of 65535) read black."""
    try:
        return read_with_opencv(path, "cannot decode JPEG 2000 image (cut short or damaged)")
    except DeepImageError as exc:
        raise InputError(f"{path}: {exc}") from None


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of an image from its header, None when it cannot be read (the decode
    reports why)."""
    try:
        if is_exr(path):
            return deep_image_size(str(path))
        with opened_quietly(path) as pil_image:
            return pil_image.size
    except UnidentifiedImageError:
        return tiff_size(str(path)) if is_tiff(path) else None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, DeepImageError):
        return None
