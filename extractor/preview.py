"""The contact sheet (``--preview``): a grid of the run's faces with landmarks and mask outlines.

Memory stays bounded however long the run: it keeps at most ``2 * cells`` thumbnails, and when
full it drops every other one and doubles its stride, so the sheet samples the whole run evenly.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from extractor.faces import DetectedFace
from extractor.geometry import compose_affine, invert_affine
from extractor.regular_files import open_regular

PREVIEW_KEYWORD = "extractor-preview"  # the contact sheet's PNG text chunk: what a later run may replace
LANDMARK_COLOUR = (0, 255, 0)  # BGR green dots
MASK_COLOUR = (255, 0, 255)  # BGR magenta outline


class ContactSheet:
    def __init__(self, cells: int = 48, thumb: int = 128):
        self.cells = cells
        self.thumb = thumb
        self.stride = 1
        self.seen = 0
        self.thumbs: list[np.ndarray] = []

    @property
    def count(self) -> int:
        return len(self.thumbs)

    def add(self, crop: np.ndarray, aligned_points: np.ndarray, face: DetectedFace, to_crop: np.ndarray) -> None:
        """Offer one aligned face (``to_crop``: frame to crop pixels); kept if it falls on the
        current sampling stride."""
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        scale = self.thumb / crop.shape[0]
        thumb = cv2.resize(crop, (self.thumb, self.thumb), interpolation=cv2.INTER_AREA)
        if face.masks:
            mask = next(iter(face.masks.values()))
            # The stored mask lives in its own aligned space: bring it to this crop's space.
            mask_to_crop = compose_affine(to_crop * scale, invert_affine(mask.affine))
            warped = cv2.warpAffine(mask.data, mask_to_crop, (self.thumb, self.thumb))
            contours, _ = cv2.findContours((warped > 127).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(thumb, contours, -1, MASK_COLOUR, 1, cv2.LINE_AA)
        for x, y in np.round(aligned_points * scale).astype(int):
            cv2.circle(thumb, (int(x), int(y)), 1, LANDMARK_COLOUR, -1)
        if face.quality is not None:  # the alignment quality, as --min-quality reads it
            for colour, width in (((0, 0, 0), 2), ((255, 255, 255), 1)):  # white on a black outline
                cv2.putText(thumb, f"{face.quality:.2f}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, width,
                            cv2.LINE_AA)
        self.thumbs.append(thumb)
        if len(self.thumbs) >= 2 * self.cells:
            self.thumbs = self.thumbs[::2]
            self.stride *= 2

    def image(self) -> np.ndarray:
        """The grid: up to ``cells`` thumbnails, evenly chosen, row by row."""
        picks = np.unique(np.linspace(0, len(self.thumbs) - 1, min(self.cells, len(self.thumbs))).round())
        chosen = [self.thumbs[int(i)] for i in picks]
        columns = min(8, len(chosen))
        rows = math.ceil(len(chosen) / columns)
        sheet = np.zeros((rows * self.thumb, columns * self.thumb, 3), np.uint8)
        for i, thumb in enumerate(chosen):
            row, col = divmod(i, columns)
            sheet[row * self.thumb:(row + 1) * self.thumb, col * self.thumb:(col + 1) * self.thumb] = thumb
        return sheet

    def save(self, path: Path) -> None:
        """The sheet as a PNG marked as ours (a later run may replace it, nothing else), written
        beside and renamed over once on the disk (a power cut leaves no empty sheet)."""
        from extractor.png import encode_png

        from extractor.safe_write import replace_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, encode_png(self.image(), [(PREVIEW_KEYWORD, "extractor contact sheet")]))


def is_our_preview(path: Path) -> bool:
    """Whether the file is a contact sheet extractor wrote (its text chunk)."""
    from extractor.png import text_chunks

    try:
        with open_regular(path) as handle:
            return PREVIEW_KEYWORD in text_chunks(handle.read(4096))
    except (OSError, ValueError, IndexError):
        return False
