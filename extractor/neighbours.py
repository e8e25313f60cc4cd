"""A video's doubtful faces, kept where the frame before or after has a face there.

CenterFace scores some real faces of a dim or soft video just under its threshold on one frame
and over it on the next: a face that flickers in and out. For a video (not tracked, not
imported) the detect stage passes on the spots it scored from ``confirm_from`` (0.4) up to its
threshold (0.5) as faces too; where frames are written, in input order, each such face is kept
only where a face scored over the threshold overlaps it (IoU >= 0.5) on the frame before or the
frame after, else dropped before anything of it is written. On the sample video this keeps 40
faces (6 %) that the threshold alone loses, every one a face by the look of it; on clips whose
every face is boxed it adds no face and prolongs one false detection by two frames
(docs/accuracy.md, ``python tools/neighbour_frames.py``).

A frame with doubtful faces is held back until the next one is known. A frame's neighbours that
an earlier run wrote (a resumed run) are read from its alignments file, so a resumed run keeps
the same faces as one that was never stopped; a frame held when a run stops is not written, and
the resumed run does it again.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from extractor.geometry import iou, ltrb
from extractor.media import ExtractMedia

CONFIRMS = 0.5  # IoU with a sure face of a neighbouring frame that keeps a doubtful face


class HeldFrame(NamedTuple):
    media: ExtractMedia
    done: Callable[[], None]  # what the engine does once the frame is written (free its pixels)


class NeighbourCheck:
    """Frames in input order in (``push``), the same frames out in that order, each without the
    doubtful faces (scored under ``sure_from``) that no sure face of a neighbouring frame
    confirms; a frame with such faces comes out once the next frame is in (or at ``flush``).
    ``step``: frames from one frame of the run to the next (--extract-every-n);
    ``earlier``: frame index -> the boxes ([left, top, right, bottom]) of the sure faces an
    earlier run wrote for it (a resumed run), else absent."""

    def __init__(self, sure_from: float, step: int = 1, earlier: Callable[[int], list | None] | None = None):
        self.sure_from, self.step = sure_from, max(1, int(step))
        self.earlier = earlier or (lambda index: None)
        self.held: HeldFrame | None = None
        self.before: tuple[int, list] | None = None  # the last frame let go: (index, its sure boxes)
        self.dropped = 0  # doubtful faces no neighbour confirmed
        self.kept = 0  # doubtful faces a neighbour confirmed

    def push(self, media: ExtractMedia, done: Callable[[], None],
             let_go: Callable[[ExtractMedia], HeldFrame] | None = None) -> list[HeldFrame]:
        """Takes the next frame in input order; returns the frames ready, in order: the frame held
        before it, decided, and this one too unless it has doubtful faces to decide (then it is
        held until the next frame). ``let_go`` (the worker pool): called on a frame as it is held,
        returns the frame with its pixels copied out of its shared slot, which it frees (a run
        whose frames grow waits for every slot to be free), and its ``done``."""
        ready = [] if self.held is None else [self._decide(self.held, media)]
        self.held = None
        if any(self._doubtful(face) for face in media.detected_faces):
            self.held = let_go(media) if let_go is not None else HeldFrame(media, done)
        else:
            self.before = (media.frame_index, self._sure(media))
            ready.append(HeldFrame(media, done))
        return ready

    def flush(self) -> list[HeldFrame]:
        """The end of the input: the frame held, decided on the frame before it alone (and on an
        earlier run's frame after it)."""
        ready = [] if self.held is None else [self._decide(self.held, None)]
        self.held = None
        return ready

    def _doubtful(self, face) -> bool:
        """Scored under ``sure_from``, on the score its record will hold."""
        return face.recorded_score < self.sure_from

    def _sure(self, media: ExtractMedia) -> list:
        """The boxes of a frame's sure faces, judged on the figures its record will hold, as a
        resumed run judges the frames it reads back."""
        return [ltrb(face.recorded_box) for face in media.detected_faces if not self._doubtful(face)]

    def _neighbour(self, index: int, seen: tuple[int, list] | None) -> list:
        """The sure boxes of frame ``index``: from this run's frame ``seen`` where it is that
        frame, else from the earlier run's, else none."""
        if seen is not None and seen[0] == index:
            return seen[1]
        return self.earlier(index) or []

    def _decide(self, held: HeldFrame, after: ExtractMedia | None) -> HeldFrame:
        media, index = held.media, held.media.frame_index
        sure = self._sure(media)
        near = self._neighbour(index - self.step, self.before)
        near = near + self._neighbour(index + self.step, None if after is None else (after.frame_index,
                                                                                        self._sure(after)))
        faces = []
        for face in media.detected_faces:
            if not self._doubtful(face):
                faces.append(face)
            elif any(iou(face.box_ltrb, box) >= CONFIRMS for box in near):
                faces.append(face)
                self.kept += 1
            else:
                self.dropped += 1
        media.detected_faces[:] = faces
        self.before = (index, sure)
        return held
