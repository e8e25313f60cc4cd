"""PNG files for aligned faces: a fast lossless encoder that writes text chunks, and their reader.

Why an encoder of our own: every face is encoded on the writer's path (the coordinator, one
process for the whole run). OpenCV's (libpng and zlib, level 1, "up" filter, run-length) took
3.1 ms for a 256 px face here; the same PNG built with numpy (filter "up" on every row) and
deflated by ISA-L (the ``isal`` package, a zlib-compatible stream) takes 1.1 to 1.4 ms and is
smaller (66 kB against 72). Without ``isal`` the standard zlib makes the same format, slower.

Text chunks (iTXt, uncompressed UTF-8) are written before the image data: faceswap's reader
(``read_image_meta``: sort, training, the alignments tool) stops at the first IDAT chunk.
"""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from extractor.regular_files import open_regular
from extractor.safe_write import lost_write

try:
    from isal import isal_zlib as deflate
except ImportError:  # a platform without isal wheels: same files, slower
    deflate = zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: gray, RGB, RGBA
FILTER_UP = 2  # each byte minus the byte above it (the first row has zeros above)
DEFLATE_LEVEL = 1  # the fastest level that still matches runs; faces are noisy, higher gains little


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))  # without copying ``data`` (the image) into kind + data
    return b"".join([struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)])


def text_chunk(keyword: str, text: str) -> bytes:
    """An uncompressed iTXt chunk: keyword, no compression, no language, UTF-8 text."""
    return chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))


def encode_png(image: np.ndarray, texts: list[tuple[str, str]] | tuple = ()) -> bytes:
    """A lossless 8-bit PNG of a BGR (or gray, or BGRA) image, with ``(keyword, text)`` iTXt
    chunks, in order, before the pixels."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or 0 in image.shape[:2]:
        raise ValueError(f"encode_png takes a non-empty 8-bit image, got {image.dtype} {image.shape}")
    pixels = image[..., None] if image.ndim == 2 else image
    height, width, channels = pixels.shape
    if channels not in COLOUR_TYPES:
        raise ValueError(f"encode_png takes 1, 3 or 4 channels, got {channels}")
    if channels >= 3:  # OpenCV's BGR(A) -> PNG's RGB(A); cvtColor gives a contiguous copy in
        # 0.02 ms, where numpy's fancy index left a strided one whose reshape cost 0.7-1.2 ms a face
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA)
    flat = pixels.reshape(height, width * channels)
    rows = np.empty((height, 1 + width * channels), np.uint8)
    rows[:, 0] = FILTER_UP
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # uint8 arithmetic wraps, as PNG's filter does
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join([SIGNATURE, chunk(b"IHDR", header), *(text_chunk(keyword, text) for keyword, text in texts),
                     chunk(b"IDAT", deflate.compress(rows.tobytes(), DEFLATE_LEVEL)), chunk(b"IEND", b"")])


def _chunks(data: bytes):
    """(kind, start, end) of each chunk of a PNG file's bytes, up to IEND (``end``: after its CRC)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, pos, pos + 12 + length
        if kind == b"IEND":
            return
        pos += 12 + length


def text_chunks(data: bytes) -> dict[str, str]:
    """All iTXt chunks of a PNG file's bytes, keyword -> text."""
    out = {}
    for kind, start, end in _chunks(data):
        if kind == b"iTXt":
            keyword, _, rest = data[start + 8:end - 4].partition(b"\0")
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            out[keyword.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
    return out


MAX_HEADER_CHUNK = 1 << 24  # bytes: a face's headers take kilobytes


def leading_text_chunks(path) -> dict[str, str]:
    """The iTXt chunks before a PNG file's pixels (where faces carry their headers), read chunk by
    chunk: a folder of thousands of faces is read for its headers, not its pixels."""
    parts = []
    with open_regular(path) as handle:  # a named pipe under a face's name: refused, never waited on
        parts.append(handle.read(len(SIGNATURE)))
        while True:
            head = handle.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                break
            if length > MAX_HEADER_CHUNK:  # a damaged or hostile length: never read gigabytes for a header
                raise ValueError(f"a {kind.decode('latin-1')} chunk of {length} bytes before the pixels")
            parts.append(head + handle.read(length + 4))
    return text_chunks(b"".join(parts))


def png_size(path) -> tuple[int, int] | None:
    """(width, height) from a PNG file's first chunk (IHDR), read alone; None for a file that does
    not start as a PNG, or cannot be read (a named pipe: refused, never waited on)."""
    try:
        with open_regular(path) as handle:
            head = handle.read(len(SIGNATURE) + 16)
    except OSError:
        return None
    if len(head) < len(SIGNATURE) + 16 or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def with_texts(data: bytes, texts: dict[str, str]) -> bytes:
    """A PNG file's bytes with the iTXt chunks of ``texts``' keywords given those texts (each
    where it stood; pixels and every other chunk byte for byte)."""
    parts = [SIGNATURE]
    for kind, start, end in _chunks(data):
        keyword = data[start + 8:end - 4].partition(b"\0")[0].decode("latin-1") if kind == b"iTXt" else None
        parts.append(text_chunk(keyword, texts[keyword]) if keyword in texts else data[start:end])
    return b"".join(parts)


IEND_CHUNK = chunk(b"IEND", b"")


def is_damaged_png(path) -> bool:
    """Whether the file at ``path`` is a PNG the machine stopped writing (power lost before it
    reached the disk): one that starts as a PNG but lacks its closing chunk (cut short, its end
    zeros), or one that holds nothing (empty or zeros). Another file (an image of another kind)
    is not; nor is a file that cannot be read."""
    starts, ends = _png_ends(path)  # its first 8 and last 12 bytes: all a whole face costs
    if starts is None:
        return False
    return not ends if starts else lost_write(path)


def _png_ends(path) -> tuple[bool | None, bool | None]:
    """(starts with the PNG signature, ends with the IEND chunk); (None, None) when unreadable."""
    try:
        with open_regular(path) as handle:
            head = handle.read(len(SIGNATURE))
            size = handle.seek(0, 2)
            if size < len(SIGNATURE) + len(IEND_CHUNK):
                return head == SIGNATURE, False
            handle.seek(-len(IEND_CHUNK), 2)
            return head == SIGNATURE, handle.read() == IEND_CHUNK
    except OSError:
        return None, None
