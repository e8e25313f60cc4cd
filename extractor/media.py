"""ExtractMedia: one frame travelling through the pipeline (faceswap's interface).

The image is whatever ndarray the caller hands in: a private array in a single-process run, a
zero-copy view of a shared-memory slot in the worker pool. Nothing here copies it unless asked.
"""
from __future__ import annotations

import copy

import cv2
import numpy as np

from extractor.faces import DetectedFace

_CONVERSIONS = {"RGB": cv2.COLOR_BGR2RGB, "GRAY": cv2.COLOR_BGR2GRAY}


def convert_colour(image: np.ndarray, colour_format: str) -> np.ndarray:
    """A BGR image in ``colour_format`` ("BGR", "RGB" or "GRAY"); BGR input is returned as is."""
    colour_format = colour_format.upper()
    if colour_format == "BGR":
        return image
    if colour_format not in _CONVERSIONS:
        raise ValueError(f"unknown colour format {colour_format!r}: use BGR, RGB or GRAY")
    return cv2.cvtColor(image, _CONVERSIONS[colour_format])


class ExtractMedia:
    """A frame (``filename``: its output name, BGR ``image``) and the faces found in it.

    What the input yields, what the single-process engine carries through its stages and what
    the coordinator writes; in the pool its ``image`` is a view of the frame's shared slot.
    """

    def __init__(self, filename: str, image: np.ndarray | None,
                 detected_faces: list[DetectedFace] | None = None, frame_index: int = 0,
                 source: str = "", warning: str | None = None, orientation: int | None = None,
                 time: float | None = None):
        self._filename = filename
        self._image = image
        self._image_shape = None if image is None else tuple(image.shape)
        self._detected_faces: list[DetectedFace] = list(detected_faces or [])
        self.frame_index = frame_index  # position in the input (frame number of a video)
        self.source = source  # the file it was decoded from, an absolute path (an export run elsewhere finds it)
        self.warning = warning  # a decoding problem worth telling the user (e.g. truncated)
        # The photo's EXIF orientation as its reader found it; None: read from ``source`` where the
        # outputs are made (the same machine, except on a Ray cluster without a shared file system).
        self.orientation = orientation
        # A video frame's presentation time (seconds; None for a photo): a variable-frame-rate
        # video's frames are not evenly spaced, and steadying a face's landmarks needs their spacing.
        self.time = time

    @property
    def filename(self) -> str:
        return self._filename

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            raise ValueError(f"{self._filename}: the image was removed from this ExtractMedia")
        return self._image

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of the frame, kept after ``remove_image`` so outputs can still use it."""
        return self._image_shape

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the frame."""
        return self._image_shape[:2]

    @property
    def detected_faces(self) -> list[DetectedFace]:
        return self._detected_faces

    def get_image_copy(self, colour_format: str = "BGR") -> np.ndarray:
        """A private copy of the image in ``colour_format`` ("BGR", "RGB" or "GRAY")."""
        converted = convert_colour(self.image, colour_format)
        return converted.copy() if converted is self._image else converted

    def add_detected_faces(self, faces: list[DetectedFace]) -> None:
        self._detected_faces.extend(faces)

    def remove_image(self) -> None:
        """Drop the pixels (e.g. once the frame is written) but keep its shape."""
        self._image = None

    def set_image(self, image: np.ndarray) -> None:
        self._image = image
        self._image_shape = tuple(image.shape)

    def with_own_pixels(self) -> ExtractMedia:
        """This frame, everything it carries kept, its pixels a private copy (e.g. out of a shared
        slot that must go back to the loader while the frame waits)."""
        held = copy.copy(self)
        held.set_image(self.image.copy())
        return held

    def __repr__(self) -> str:
        return (f"ExtractMedia({self._filename!r}, shape={self._image_shape}, "
                f"faces={len(self._detected_faces)})")
