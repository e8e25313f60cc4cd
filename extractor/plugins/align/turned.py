"""Turned faces: dlib's trees started in the face's pose and steadied by a 3D face model.

dlib's trees start from their frontal mean shape and, on a head turned more than about 30
degrees, end near it: a frontal face drawn across a three-quarter view or a profile (a jaw line
through the cheek). Started from the true points they land well, so the start is what holds them
back. For a face whose detector points say it is turned:

1. the 3D face model's mean head is turned to the yaw that best explains the detector's five
   points and placed on them: the trees run from that shape;
2. twice, the model (pose and shape) is fitted to the trees' inner-face points and the trees run
   again from the model's projection, which keeps the points a face seen in that pose.

The result replaces the frontal one in proportion to the turn: not at all under ``TURN_FROM``
degrees, wholly from ``TURN_FULL`` (a blend in between, so that points do not jump as a head
turns in a video). Measured on the human-annotated faces of ../shared/data and ../shared/turned
(NME over the box, docs/accuracy.md): 60-90 degrees 14.7 -> 6.7 %; 0-30 and 30-60 unchanged.

Why only from 50 degrees: up to about 50 the frontal trees still find the face (2-5 % over the
box on the 30-60 faces here, one with a wrong ground truth aside), and there the two landmark
conventions part: the turned passes place the hidden side as it projects (AFLW2000-3D's
convention: 3.0 % against 3.8 % on its frontal faces when applied to all), dlib and 300-W on the
visible outline (2.5 -> 3.1 % on ../shared/data's); profiles are where the frontal trees fail.
``tools/turned_faces.py`` reproduces the table of what was tried.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from extractor.faces import DetectedFace
from extractor.models.face_model_3d import FaceModel3D, five_points
from extractor.plugins.align.crop import (RE_FEED_CROPS, alignment_quality, pose_from_landmarks, re_feed_moves,
                                          spread_out)

TURN_FROM = 50.0
TURN_FULL = 65.0
PASSES = 2  # model fit + trees pass, after the pass from the turned start
REGULARISATION = 0.1  # the shape prior's weight in each fit (``FaceModel3D.fit``)
# Detectors whose key points are the standard five (eye centres, nose tip, mouth corners), in that
# order; for others the five come from the frontal 68 points (which understate the turn).
FIVE_POINT_DETECTORS = ("centerface", "mtcnn")

# The trees run on a batch of faces from given starts (frame pixels) -> points (frame pixels).
TreesPass = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


def turned_weight(yaw: float, turn_from: float = TURN_FROM, turn_full: float = TURN_FULL) -> float:
    """0-1: how much of a face's points come from the turned-face passes, by its yaw (degrees)."""
    return float(np.clip((abs(yaw) - turn_from) / max(turn_full - turn_from, 1e-9), 0.0, 1.0))


class TurnedFaces:
    """The turned-face passes for an aligner whose model can start from any shape. The settings
    are the module's constants; ``tools/turned_faces.py`` varies them."""

    def __init__(self, model: FaceModel3D, detector: str | None, passes: int = PASSES,
                 regularisation: float = REGULARISATION, turn_from: float = TURN_FROM, turn_full: float = TURN_FULL,
                 re_feed: int = 0):
        self.model = model
        self.re_feed = re_feed  # the last pass run again from this many moved starts, averaged (--re-feed)
        self.detector = detector
        self.passes = passes
        self.regularisation = regularisation
        self.turn_from, self.turn_full = turn_from, turn_full

    def weight(self, yaw: float) -> float:
        return turned_weight(yaw, self.turn_from, self.turn_full)

    def five(self, face: DetectedFace) -> np.ndarray:
        """The face's five points: its detector's where they are the standard five, else from its 68."""
        if self.detector in FIVE_POINT_DETECTORS and face.detector_points is not None:
            return np.asarray(face.detector_points, np.float64)[:5]
        return five_points(face.landmarks)

    def _re_fed(self, images: list[np.ndarray], starts: list[np.ndarray], points: list[np.ndarray],
                 trees_pass: TreesPass) -> list[np.ndarray]:
        """Each face's last-pass ``points`` averaged with the pass run again from ``re_feed``
        moved copies of its start (as the frontal passes' re-feed moves their crops; as many
        faces a call as theirs)."""
        step, averaged = max(1, RE_FEED_CROPS // self.re_feed), []
        for first in range(0, len(starts), step):
            chunk = starts[first:first + step]
            moves = [re_feed_moves(pose_from_landmarks(start), self.re_feed) for start in chunk]
            runs = trees_pass([image for image in images[first:first + step] for _ in range(self.re_feed)],
                              [start + move for start, face_moves in zip(chunk, moves) for move in face_moves])
            averaged += [np.mean([found, *runs[i * self.re_feed:(i + 1) * self.re_feed]], axis=0)
                         for i, found in enumerate(points[first:first + step])]
        return averaged

    def apply(self, images: list[np.ndarray], faces: list[DetectedFace], trees_pass: TreesPass) -> None:
        """Blend the turned-face result into the landmarks of every turned face, in place."""
        fives = [self.five(face) for face in faces]
        yaws = [self.model.yaw_from_five(five) for five in fives]
        chosen = [i for i, (five, yaw) in enumerate(zip(fives, yaws))
                  if self.weight(yaw) > 0 and spread_out(five)]
        if not chosen:
            return
        chosen_images = [images[i] for i in chosen]
        points = trees_pass(chosen_images, [self.model.start_on_five(fives[i], yaws[i]) for i in chosen])
        before = points
        for _ in range(self.passes):
            starts = [fit.points for fit in self.model.fit_many(points, regularisation=self.regularisation)]
            before, points = points, trees_pass(chosen_images, starts)
        if self.re_feed and self.passes:
            points = self._re_fed(chosen_images, starts, points, trees_pass)
        for i, previous, found in zip(chosen, before, points):
            weight = self.weight(yaws[i])
            faces[i].landmarks = (1.0 - weight) * faces[i].landmarks + weight * found
            if faces[i].quality is not None:  # as the frontal passes': how far the last pass moved the points
                faces[i].quality = (1.0 - weight) * faces[i].quality + weight * alignment_quality(previous, found)
