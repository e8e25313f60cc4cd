"""Input: an image folder or a video file, decoded to 8-bit BGR frames in a fixed order.

Decoding problems never stop the run: each bad input becomes a ``SkippedInput`` that names the
file and the problem, and the caller reports it and moves on.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from extractor.images import DEFAULT_MAX_PIXELS, InputError, image_size, read_image
from extractor.media import ExtractMedia
from extractor.regular_files import not_regular_text

logger = logging.getLogger(__name__)

# OpenEXR (VFX plates, which faceswap reads too) through extractor/deep_images.py.
# Renders and game captures come as Targa (.tga), JPEG 2000 also as bare codestreams (.j2k) and
# .jpf/.jpx, and some tools write QOI or PCX; 3D cameras store .mpo (a JPEG, its first eye read),
# older systems .dib, SGI (.sgi, .rgb, .bw) and Sun raster (.ras) images, scanners' bitmaps .pbm,
# and an animated PNG may be named .apng (its first frame): Pillow reads them all.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                    ".pnm", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".j2c", ".jpc", ".jpf", ".jpx", ".gif", ".exr",
                    ".tga", ".qoi", ".pcx", ".mpo", ".dib", ".sgi", ".rgb", ".bw", ".ras", ".pbm", ".apng"}
# faceswap's video extensions, what phones (.3gp) and camcorders (.mts, .m2ts, .mod, .tod, .dv) write,
# broadcast and editing files (.mxf, .y4m, .qt), older web and DivX files, raw H.264/H.265 streams.
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".vob",
                    ".mts", ".m2ts", ".3gp", ".ogv", ".mod", ".tod", ".dv", ".mxf", ".y4m", ".qt", ".m2v", ".divx",
                    ".asf", ".rm", ".rmvb", ".f4v", ".ogm", ".mjpeg", ".mjpg", ".h264", ".264", ".h265", ".265",
                    ".hevc"}
# Alignments files (faceswap's .fsa, extractor's .jsonl) sit beside the frames they describe, where
# faceswap's extract and convert put and look for them: never inputs, passed over quietly.
ALIGNMENTS_EXTENSIONS = {".fsa", ".jsonl"}
# Camera RAW files: no reader here (nor in faceswap); the camera's JPEG of the shot, where it sits
# beside the RAW file, is the photo read.
RAW_EXTENSIONS = {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
                  ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".mrw", ".mos", ".raw"}
# Files that describe a photo beside it: edits (Lightroom's .xmp, an iPhone's .aae, RawTherapee's
# .pp3, DxO's .dop), a camera's thumbnail (.thm), Google Takeout's .json.
SIDECAR_EXTENSIONS = {".xmp", ".aae", ".pp3", ".dop", ".thm", ".json"}
# And a video: subtitles (a.srt, a.en.srt), a media library's .nfo, a camera's .thm or .xml.
VIDEO_SIDECAR_EXTENSIONS = {".srt", ".ass", ".ssa", ".vtt", ".sub", ".idx", ".nfo", ".thm", ".xml", ".xmp", ".json"}
# What operating systems leave in folders of photos (hidden files, starting with a dot, aside).
SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"}
RAW_REFUSAL = "a camera RAW file, not decoded here: convert it to JPEG, PNG or TIFF first"
# Pictures of kinds no reader here (nor faceswap's) decodes: named as what they are, not as unknown files.
UNREAD_PICTURES = {".jxl": "a JPEG XL image", ".psd": "a Photoshop document", ".psb": "a Photoshop document",
                   ".xcf": "a GIMP image", ".kra": "a Krita image", ".svg": "a vector drawing (SVG)",
                   ".svgz": "a vector drawing (SVG)"}


def unread_picture(path: Path) -> str | None:
    """Why a picture of a kind not decoded here is not read, and what to do; None for other files."""
    kind = UNREAD_PICTURES.get(path.suffix.lower())
    return f"{kind}, not decoded here: export it as JPEG, PNG or TIFF first" if kind else None
SAMPLE_STEP = 10  # a video with few key frames is sampled every this many frames from its start


@dataclass
class SkippedInput:
    """An input that produced no frame, and why."""

    source: str
    reason: str


def is_video_file(path: Path) -> bool:
    """Whether ``path`` is a video input (a file with a video extension), as a run reads it."""
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def stat_if_there(path: Path) -> os.stat_result | None:
    """``path``'s status, None where nothing is there; OSError where it cannot be told (a name
    over the file system's length, a folder that may not be entered). Path.exists() says False
    for those too on Python 3.14, which would report a name too long as a missing input."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def not_regular(path: Path) -> str:
    """What an entry that is neither a regular file nor a folder is, for the line that skips it:
    reading a named pipe waits for a writer forever, and a device such as /dev/zero never ends."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return f"{path}: cannot be read ({error.strerror or error})"
    return f"{path}: {not_regular_text(mode)}"


def list_images(folder: Path, recursive: bool = False, face_folder: Path | None = None,
                _seen: dict[Path, Path] | None = None) -> tuple[list[Path], list[SkippedInput]]:
    """Image files of ``folder`` (and its sub-folders if ``recursive``) in name order, and the
    other entries (skipped, with a reason: sub-folders are named, never passed over silently).
    Sub-folders reached through symbolic links are searched too, each real folder once: a link
    back up the tree would otherwise never end; the run's ``face_folder``, which a link may reach,
    never (its faces are not inputs)."""
    seen = {folder.resolve(): folder} if _seen is None else _seen  # real folder -> the path it was searched as
    images, skipped = [], []
    entries = sorted(folder.iterdir())
    companion = companions_of(entries, IMAGE_EXTENSIONS, SIDECAR_EXTENSIONS | RAW_EXTENSIONS)
    for path in entries:
        if path.name.startswith(".") or (path.suffix.lower() in ALIGNMENTS_EXTENSIONS and path.is_file()):
            continue  # hidden files and folders, alignments files: not inputs
        if companion(path):
            continue  # a sidecar or RAW file of a photo read, a system file: passed over quietly
        if path.is_dir():
            if not recursive:
                skipped.append(SkippedInput(str(path), f"{path}: sub-folder not searched (add --recursive)"))
            elif face_folder is not None and path.resolve() == face_folder.resolve():
                skipped.append(SkippedInput(str(path), f"{path}: this run's face folder, not searched"))
            elif path.resolve() in seen:
                skipped.append(SkippedInput(str(path), f"{path}: the same folder as {seen[path.resolve()]}, "
                                                       "searched once"))
            else:
                seen[path.resolve()] = path
                more, more_skipped = list_images(path, recursive, face_folder, seen)
                images += more
                skipped += more_skipped
        elif path.is_symlink() and not path.exists():
            skipped.append(SkippedInput(str(path), f"{path}: broken symbolic link"))
        elif not path.is_file():
            skipped.append(SkippedInput(str(path), not_regular(path)))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(path)
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            skipped.append(SkippedInput(str(path), f"{path}: a video, not read with a folder's images: extract it "
                                                   f"on its own (-i {path}; --batch: each video of a folder)"))
        elif path.suffix.lower() in RAW_EXTENSIONS:
            skipped.append(SkippedInput(str(path), f"{path}: {RAW_REFUSAL}, or keep the camera's JPEG of it beside it"))
        elif why := unread_picture(path):
            skipped.append(SkippedInput(str(path), f"{path}: {why}"))
        else:
            skipped.append(SkippedInput(str(path), f"{path}: not an image file (unknown extension)"))
    return images, skipped


def companions_of(entries: list[Path], main: set[str], sidecars: set[str]):
    """Whether an entry of a folder goes with the photos (or videos: ``main``, their extensions)
    in it, and so is passed over quietly: a folder of 5,000 photos exported with their 5,000
    Google Takeout .json files, or shot RAW + JPEG, gave 5,000 skip lines. A companion is a file
    named after one of them plus a suffix (``a.jpg.json``), a file of one of the ``sidecars``
    extensions named after one's stem (``a.xmp``, ``a.nef`` beside ``a.jpg``; ``a.en.srt`` beside
    ``a.mp4``), or an operating system's file (``Thumbs.db``, ``desktop.ini``)."""
    mains = [path for path in entries if path.suffix.lower() in main]
    names, stems = {path.name.casefold() for path in mains}, {path.stem.casefold() for path in mains}

    def companion(path: Path) -> bool:
        if not path.is_file():
            return False
        name = path.name.casefold()
        if name in SYSTEM_FILES:
            return True
        if path.suffix.lower() in main:
            return False
        parts = name.split(".")
        named_after = {".".join(parts[:end]) for end in range(1, len(parts))}  # a.en.srt: a, a.en
        return path.stem.casefold() in names or (path.suffix.lower() in sidecars and bool(named_after & stems))

    return companion


def video_frame_key(video: Path, index: int) -> str:
    """faceswap's key of a video frame: ``<video stem>_<frame number from 1, 6 digits><video
    extension>`` (alignments version 2.4; earlier versions ended keys in ``.png``, which
    faceswap's loader still converts)."""
    return f"{video.stem}_{index + 1:06d}{video.suffix}"


def video_frame_index(video: Path, key: str) -> int | None:
    """The frame index (from 0) that ``key`` names in ``video``, or None when it is no key of it."""
    number = key[len(video.stem) + 1:len(key) - len(video.suffix)]
    if number.isdigit() and int(number) > 0 and key == video_frame_key(video, int(number) - 1):
        return int(number) - 1
    return None


class InputSource:
    """Frames of an image folder or a video file, in order, every ``every_n``-th frame."""

    def __init__(self, path: str | os.PathLike, every_n: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS,
                 done: set[str] | frozenset[str] = frozenset(), recursive: bool = False,
                 face_folder: Path | None = None):
        self.path = Path(path)
        self.recursive = recursive
        self.face_folder = face_folder  # the run's, which a linked sub-folder may reach: never searched
        self.done = done  # frame names finished by an earlier run (--skip-existing): not decoded
        if every_n < 1:
            raise ValueError("--extract-every-n must be 1 or more")
        self.every_n = every_n
        self.max_pixels = max_pixels
        try:
            exists = stat_if_there(self.path) is not None
        except OSError as exc:  # a name over the file system's length, a folder that may not be entered
            raise InputError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        if not exists:
            scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):/", str(self.path))
            if scheme:  # (a path keeps one slash of "://")
                raise InputError(f"{scheme.group(1)}://{str(self.path)[len(scheme.group(0)):]}: a URL; extractor "
                                 "reads files and folders: download the video first")
            if any(wildcard in self.path.name for wildcard in "*?["):  # a pattern the shell did not expand
                raise InputError(f"{self.path}: no such file; -i takes a folder (every image in it is read: "
                                 f"-i {self.path.parent}), an image or a video, not a pattern")
            raise InputError(f"{self.path}: input does not exist"
                             + (" (standard input is not read: give a file)" if str(self.path) == "-" else ""))
        if not self.path.is_file() and not self.path.is_dir():
            raise InputError(f"{not_regular(self.path)}: give a video file, an image or a folder")
        self.is_video = is_video_file(self.path)
        self._samples: dict[int, list[np.ndarray]] = {}  # sample_frames, by count
        if self.path.is_file() and not self.is_video and self.path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise InputError(f"{self.path}: {_what_else(self.path)}")

    def estimate_frames(self) -> int | None:
        """Frames this source will yield (for progress and ETA), from headers and listings."""
        if self.is_video:
            count = self.video_frame_count()
            return max(0, -(-count // self.every_n) - len(self.done)) if count > 0 else None
        return len(self.wanted_images())

    def video_frame_count(self) -> int:
        """Frames of the video as its header announces them (0 when it does not say or the file
        does not open)."""
        import av

        try:
            with av.open(str(self.path)) as container:
                return max(0, int(video_stream(container, self.path).frames or 0))
        except (av.error.FFmpegError, OSError, InputError):
            return 0

    def video_turn(self) -> int:
        """Degrees (0, 90, 180, 270) to turn the video's stored frames clockwise to see them as
        players show them: phones store a portrait video's frames on their side, with a display
        rotation. Frames are kept as stored (FFmpeg's frames, and faceswap's: its alignments are
        in their coordinates); only the detector looks at them turned upright. 0 when unsaid.

        The display matrix's rotation (``frame.rotation``, FFmpeg's ``av_display_rotation_get``)
        is counter-clockwise: players turn the frame clockwise by its negative (FFmpeg's
        ``-autorotate``, OpenCV's ``CAP_PROP_ORIENTATION_AUTO``). An iPhone's portrait video says
        -90: its frames are turned 90 degrees clockwise to stand."""
        return self._shown_as.turn

    def pixel_aspect(self) -> Fraction:
        """The video's sample aspect ratio: how much wider than tall players show a stored pixel
        (a DVD's 16:9 picture: 32:27); 1 for square pixels, and where the file does not say."""
        return self._shown_as.pixel_aspect

    def video_transfer(self) -> str | None:
        """"pq" or "hlg" for an HDR video (its frames' transfer characteristic: HDR10's, a phone's
        HDR video's), else None."""
        return self._shown_as.transfer

    def video_interlaced(self) -> bool:
        """Whether the video's frames are interlaced (two fields a field apart in time: a DVD's,
        1080i broadcast, DV), as its decoder flags its first frame or its header says."""
        return self._shown_as.interlaced

    @cached_property
    def _shown_as(self) -> VideoLook:
        """How players show the video, read once from its header and first frame (a frame over
        --max-pixels is not decoded here: it is refused when read): ``video_turn``,
        ``pixel_aspect``, ``video_transfer``, ``video_interlaced``. What cannot be read is taken
        as unsaid."""
        import av

        from extractor.hdr import TRANSFERS

        turn, aspect, transfer, interlaced = 0, Fraction(1), None, False
        try:
            with av.open(str(self.path)) as container:
                stream = video_stream(container, self.path)
                ratio = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
                aspect = Fraction(ratio) if ratio and ratio > 0 else Fraction(1)
                transfer = TRANSFERS.get(int(stream.codec_context.color_trc or 0))
                interlaced = int(getattr(stream.codec_context, "field_order", 0) or 0) in INTERLACED_FIELD_ORDERS
                if stream.codec_context.width * stream.codec_context.height <= self.max_pixels:
                    frame = next(container.decode(stream), None)
                    if frame is not None:
                        turn = display_turn(frame)
                        transfer = TRANSFERS.get(int(frame.color_trc or 0), transfer)
                        interlaced = interlaced or bool(frame.interlaced_frame)
        except (av.error.FFmpegError, OSError, InputError, ValueError, TypeError, ZeroDivisionError):
            pass
        return VideoLook(turn, aspect, transfer, interlaced)

    def video_size(self) -> tuple[int, int] | None:
        """(height, width) of the video's frames as its header says; None when it does not open."""
        import av

        try:
            with av.open(str(self.path)) as container:
                context = video_stream(container, self.path).codec_context
                return context.height, context.width
        except (av.error.FFmpegError, OSError, InputError):
            return None

    def video_seconds(self) -> float:
        """How long the video lasts, from its header (0 when it does not say or does not open)."""
        import av

        try:
            with av.open(str(self.path)) as container:
                return _seconds(container, video_stream(container, self.path))
        except (av.error.FFmpegError, OSError, InputError):
            return 0.0

    def sample_frames(self, count: int) -> list[np.ndarray]:
        """Up to ``count`` different frames spread over the video (the key frame at or before
        each of ``count`` evenly spaced times: one frame decoded each, however long the video
        and its key frame interval; from the start where the file cannot seek), to judge the
        whole video by. Empty when nothing decodes or the frames are over --max-pixels. Decoded
        once for every judge that asks (``upright``, ``small_faces``)."""
        if count not in self._samples:
            self._samples[count] = self._decode_samples(count)
        return self._samples[count]

    def _decode_samples(self, count: int) -> list[np.ndarray]:
        import av

        frames: dict[int | None, np.ndarray] = {}
        try:
            with av.open(str(self.path)) as container:
                stream = video_stream(container, self.path)
                if stream.codec_context.width * stream.codec_context.height > self.max_pixels:
                    return []
                duration = _seconds(container, stream)
                if duration <= 0:
                    return [frame.to_ndarray(format="bgr24")
                            for frame, _ in zip(container.decode(stream), range(count))]
                start = float((stream.start_time or 0) * stream.time_base)
                for position in range(count):
                    container.seek(int((start + duration * (position + 0.5) / count) / stream.time_base),
                                   stream=stream)
                    frame = next(container.decode(stream), None)
                    if frame is not None and frame.pts not in frames:
                        frames[frame.pts] = frame.to_ndarray(format="bgr24")
                if len(frames) < count:  # few key frames: every SAMPLE_STEP-th frame from the start too
                    container.seek(int(start / stream.time_base), stream=stream)
                    for number, frame in zip(range(SAMPLE_STEP * count), container.decode(stream)):
                        if len(frames) == count:
                            break
                        if number % SAMPLE_STEP == 0 and frame.pts not in frames:
                            frames[frame.pts] = frame.to_ndarray(format="bgr24")
        except (av.error.FFmpegError, OSError, InputError, ValueError):
            pass
        return list(frames.values())

    def video_fps(self) -> float:
        """The video's frame rate (its stream's average; 30 when it does not say)."""
        import av

        try:
            with av.open(str(self.path)) as container:
                rate = video_stream(container, self.path).average_rate
                return float(rate) if rate else 30.0
        except (av.error.FFmpegError, OSError, InputError, ZeroDivisionError):
            return 30.0

    @cached_property
    def _listing(self) -> tuple[list[Path], list[SkippedInput]]:
        """The folder listed once (paths, entries that are not inputs): a run asks for it several
        times, and a big folder on a network drive is slow to list."""
        if self.is_video:
            return [], []
        return ([self.path], []) if self.path.is_file() else list_images(self.path, self.recursive,
                                                                         self.face_folder)

    def listing_problems(self) -> list[SkippedInput]:
        """Entries of an image folder that are not inputs (non-images, sub-folders...), with why."""
        return self._listing[1]

    def image_paths(self) -> list[Path]:
        return self._listing[0]

    def wanted_images(self) -> list[tuple[int, Path, str]]:
        """(index, path, key) of the images this run decodes: every n-th, not done before."""
        keyed = ((index, path, self.image_key(path)) for index, path in enumerate(self.image_paths())
                 if index % self.every_n == 0)
        return [(index, path, key) for index, path, key in keyed if key not in self.done]

    def image_key(self, path: Path) -> str:
        """faceswap's key of an image frame: its file name (with the extension, so ``face.jpg``
        and ``face.png`` stay two frames); under --recursive, its path below the input folder."""
        return path.name if self.path.is_file() else path.relative_to(self.path).as_posix()

    def frame_keys(self) -> list[str] | None:
        """Every frame key of an image input (None for a video, whose keys cannot collide)."""
        return None if self.is_video else [self.image_key(p) for p in self.image_paths()]

    @cached_property
    def _frame_sizes(self) -> list[int]:
        """Bytes of each decoded frame, read from headers only (a video: its one frame size)."""
        if self.is_video:  # through PyAV, as the frames are read (OpenCV's FFmpeg prints its errors)
            size = self.video_size()
            return [size[0] * size[1] * 3] if size else []  # else refused with its reason when read
        sizes = []
        for path in self.image_paths()[::self.every_n]:
            size = image_size(path)
            if size is None:
                continue  # reported when the frame is decoded
            width, height = size
            if width * height <= self.max_pixels:
                sizes.append(width * height * 3)
        return sizes

    def frame_bytes(self) -> tuple[int, int]:
        """Bytes of a usual frame (three in four are no larger) and of the largest, read from
        headers only: the frame pool's slots hold the first, and a larger frame takes several."""
        sizes = sorted(self._frame_sizes) or [1]
        return max(sizes[(len(sizes) - 1) * 3 // 4], 1), max(sizes[-1], 1)

    def __iter__(self) -> Iterator[ExtractMedia | SkippedInput]:
        if self.is_video:
            yield from self.video_frames()
        else:
            yield from self._image_frames()

    def _image_frames(self) -> Iterator[ExtractMedia | SkippedInput]:
        yield from self.listing_problems()
        for index, path, key in self.wanted_images():
            try:
                image, warning = read_image(path, self.max_pixels)
            except InputError as exc:
                yield SkippedInput(str(path), str(exc))
                continue
            yield ExtractMedia(key, image, frame_index=index, source=str(path.absolute()), warning=warning)

    def video_frames(self, start: int = 0, stop: int | None = None,
                     bounds: tuple[int, int | None] | None = None) -> Iterator[ExtractMedia | SkippedInput]:
        """The video's frames in order, decoded by FFmpeg (PyAV), numbered as FFmpeg and faceswap
        number them: by their place among the frames that decode. Nothing is invented: a damaged
        packet that does not decode is skipped and reported (with how many frames it cost),
        decoding goes on past it, and a file cut short ends where its frames end (reported
        against what its header announced).

        A range (the Ray engine reads a video as ranges): ``start``/``stop`` frame numbers and
        ``bounds``, the presentation time stamps of its first frame and of the next range's
        (from ``video_timeline``): the range seeks to its key frame and numbers frames from
        ``start``, which equals the whole decode's numbering for a video whose frames all decode."""
        import av

        av.logging.set_level(None)  # FFmpeg's own lines stay quiet: damage is reported here, once
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            yield SkippedInput(str(self.path), f"{self.path}: cannot open video (not a video, or cut off before its "
                               f"index: {exc})")
            return
        try:
            stream = video_stream(container, self.path)
        except InputError as exc:
            container.close()
            yield SkippedInput(str(self.path), str(exc))
            return
        with container:
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > self.max_pixels:
                yield SkippedInput(str(self.path), f"{self.path}: frames of {width}x{height} = {width * height} "
                                   f"pixels, over the --max-pixels limit of {self.max_pixels}")
                return
            announced = int(stream.frames or 0)
            first_pts, end_pts = bounds if bounds is not None else (None, None)
            if first_pts is not None:
                container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            index, damaged, oversized = start - 1, 0, False
            source = str(self.path.absolute())  # what every frame records, looked up once
            note = other_stream_note(container, stream, self.path) if start == 0 else None  # said once a video
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    damaged += 1
                    continue
                for frame in frames:
                    if first_pts is not None and frame.pts is not None and frame.pts < first_pts:
                        continue  # before the range: decoded from its key frame on
                    if end_pts is not None and frame.pts is not None and frame.pts >= end_pts:
                        return
                    index += 1
                    if stop is not None and index >= stop:
                        return
                    name = video_frame_key(self.path, index)
                    if index % self.every_n or name in self.done:
                        continue
                    if frame.width * frame.height > self.max_pixels:  # the header said less (or nothing)
                        if not oversized:  # said once
                            oversized = True
                            yield SkippedInput(str(self.path), f"{self.path}: frame {name} is {frame.width}x"
                                               f"{frame.height}, over the --max-pixels limit of {self.max_pixels}: "
                                               "skipped, as is every later frame over it")
                        continue
                    yield ExtractMedia(name, frame.to_ndarray(format="bgr24"), frame_index=index, source=source,
                                       warning=note, time=frame.time)
                    note = None
        decoded = index + 1 - start
        if bounds is not None:
            return
        if decoded == 0:  # not one frame: never a silent empty run
            yield SkippedInput(str(self.path), f"{self.path}: no video frame decodes (not a video, or one with "
                               "no frames)")
        elif damaged:
            yield SkippedInput(str(self.path), f"{self.path}: {damaged} damaged packet(s): unreadable frame(s) "
                               f"skipped; {decoded} frames decoded"
                               f"{f' of the {announced} its header announces' if announced else ''}, numbered "
                               "in the order they decode, the frames after the damage read")
        elif announced and decoded < announced:
            yield SkippedInput(str(self.path), f"{self.path}: video ended after {decoded} frames of the {announced} "
                               "its header announces (file cut off?)")


def _what_else(path: Path) -> str:
    """Why a file given as the input, with no image or video extension, is not read, and what
    it looks like: a video or an image under another name (a download saved without its
    extension) is told to take the one it needs. Its extension decides, as faceswap's does and
    as every engine and resume must agree."""
    if path.suffix.lower() in RAW_EXTENSIONS:
        return RAW_REFUSAL
    if why := unread_picture(path):
        return why
    import av
    from PIL import Image

    try:
        with av.open(str(path)) as container:
            if container.streams.video and container.streams.video[0].frames != 1 and \
                    container.format.name not in ("image2", "png_pipe", "jpeg_pipe", "webp_pipe"):
                return (f"a video ({container.format.long_name or container.format.name}) without a video "
                        "extension: rename it with one, such as .mp4")
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    try:
        with Image.open(path) as image:
            return f"a {image.format} image without an image extension: rename it with one, such as .jpg"
    except (OSError, ValueError):
        return "not a folder, a video or an image"


def _seconds(container, stream) -> float:
    """A video stream's duration as its header says, else the container's (0: unsaid)."""
    return float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6


def video_stream(container, path: Path):
    """The video stream of an opened container that holds its moving pictures: FFmpeg's own pick
    (its "best": the default stream, then one of several frames), never a still picture stored
    with it (cover art, a thumbnail: FFmpeg lists it as a video stream of one frame, and it may
    come first). A file of sound (or subtitles) alone is named as such rather than as a broken video."""
    import av

    streams = list(container.streams.video)
    others = ", ".join(sorted({stream.type for stream in container.streams if stream.type != "video"}) or ["none"])
    if not streams:
        raise InputError(f"{path}: holds no video stream (its streams: {others})")
    moving = [stream for stream in streams if not stream.disposition & av.stream.Disposition.attached_pic]
    if not moving:  # a song (or a podcast) with its cover: one picture, no video
        raise InputError(f"{path}: holds no video, only a still picture stored with it (cover art; its other "
                         f"streams: {others})")
    best = container.streams.best("video")
    return next((stream for stream in moving if best is not None and stream.index == best.index), moving[0])


class VideoLook(NamedTuple):
    """How players show a video's decoded frames (``InputSource._shown_as``)."""

    turn: int  # degrees clockwise that stand them up (``video_turn``)
    pixel_aspect: Fraction  # a stored pixel's width over its height as shown
    transfer: str | None  # "pq" or "hlg" for an HDR video
    interlaced: bool


INTERLACED_FIELD_ORDERS = (2, 3, 4, 5)  # FFmpeg's AVFieldOrder: TT, BB, TB, BT (1: progressive, 0: unknown)


def display_turn(frame) -> int:
    """Degrees (0, 90, 180, 270) to turn a decoded frame clockwise so that what stands in the
    picture players show stands in it: minus its display matrix's counter-clockwise rotation
    (``frame.rotation``). A mirrored matrix (a front camera's: a negative determinant) is one
    FFmpeg's ``-autorotate`` mirrors by as well as turns, and a mirror leaves a face standing;
    but its rotation reads 180 degrees off where the matrix only mirrors left to right (180 read
    for none) or mirrors top to bottom (0 read for a face upside down). Quarter turns read right."""
    import av

    turn = -int(round(getattr(frame, "rotation", 0) or 0)) % 360 // 90 * 90
    try:
        matrix = next((np.frombuffer(bytes(data), np.int32) for data in frame.side_data
                       if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and len(bytes(data)) == 36), None)
    except ValueError:  # side data of a kind this PyAV does not name (a newer FFmpeg's): taken as no mirror
        matrix = None
    mirrored = matrix is not None and int(matrix[0]) * int(matrix[4]) - int(matrix[1]) * int(matrix[3]) < 0
    return (turn + 180) % 360 if mirrored and turn in (0, 180) else turn


STILL_CODECS = {"mjpeg", "png", "bmp", "gif", "webp", "tiff"}  # a picture stored as a track: cover art, a thumbnail


def other_stream_note(container, stream, path: Path) -> str | None:
    """One line where ``stream`` (``video_stream``'s pick) is not the file's first video stream:
    which one is read, and that faceswap's own tools read the first."""
    import av

    first = container.streams.video[0]
    if stream.index == first.index:
        return None

    def described(chosen) -> str:
        context = chosen.codec_context
        return f"#{chosen.index} ({context.name} {context.width}x{context.height})"
    still = (first.disposition & av.stream.Disposition.attached_pic or first.frames == 1
             or first.codec_context.name in STILL_CODECS)
    return (f"{path}: holds {len(container.streams.video)} video streams; its frames are read from "
            f"{described(stream)}, the one FFmpeg plays, not from the first, {described(first)}"
            f"{', a still picture' if still else ''}; faceswap's own tools read the first")



def _packet_times(path: Path) -> list[int | None]:
    """The presentation time stamps of a video's packets, in the order they are stored (None for
    a packet without one; FFmpeg's flushing packet, empty, left out)."""
    import av

    with av.open(str(path)) as container:
        stream = video_stream(container, path)
        return [packet.pts for packet in container.demux(stream) if packet.size]


def video_timeline(path: Path) -> list[int]:
    """The presentation time stamps of a video's frames in order, read from its packets (no
    decoding): where each range of frames starts, for readers that seek."""
    return sorted(pts for pts in _packet_times(path) if pts is not None)


REORDER_PACKETS = 64  # how far a stored packet may stand from its place in time (B-frames: a few)


def seekable_timeline(path: Path) -> list[int] | None:
    """``video_timeline``, or None when the time stamps are not one timeline that a seek can
    find a frame in: clips joined end to end, a recorded stream that restarted its clock (time
    stamps repeat, or go back further than frame reordering explains), or a raw H.264 or H.265
    stream, whose packets carry no time stamp at all."""
    stored = _packet_times(path)
    if stored and all(pts is None for pts in stored):
        return None
    stored = [pts for pts in stored if pts is not None]
    timeline = sorted(stored)
    if len(set(timeline)) < len(timeline):
        return None
    place = {pts: position for position, pts in enumerate(timeline)}
    if any(abs(place[pts] - position) > REORDER_PACKETS for position, pts in enumerate(stored)):
        return None
    return timeline
