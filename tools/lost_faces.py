"""Tracking: a followed face its crop loses, looked for again over the next frames: kept more?

The detect stage alone on the sample video, every frame against tracked (every 10 frames, the
default), as `make tracking` compares them (`benchmarks.tracking.compare_faces`: faces of the
every-frame run kept, IoU >= 0.5). The variant keeps a face the follow crop did not find and
looks for it again at its last box on each of the next N frames (`FaceFollower` with such a
memory, here only). A last variant keeps, at a range's full detection, a spot scored from
CenterFace's `confirm_from` (0.4) up to its threshold where a face was followed on the frame
before (IoU >= 0.5): a face going on, scored low on that frame only. The last two lines follow
back over the frames before it each face a full detection finds new (no face of the frame before
there): from the next range's first frame, or from a second full detection on the range's own
last frame. Record: docs/tracking.md.
Run: .venv/bin/python tools/lost_faces.py [N ...] (about four minutes for the default 2 and 5).
"""
import sys
import time
from functools import partial

import numpy as np
from common import VIDEO

from benchmarks.tracking import compare_faces
from extractor import stages, tracking
from extractor.sources import InputSource
from extractor.stages import DetectStage, StageConfig


class PatientFollower(tracking.FaceFollower):
    """``FaceFollower`` that looks for a lost face again at its last box for ``patience`` frames."""

    patience = 0

    def reset(self) -> None:
        super().reset()
        self.lost: list[tuple[object, int]] = []  # (face as last seen, frames missed)

    def step(self, image, index, detect_full, detect_crops):
        if self.needs_full_detection(index, tracking.frame_signature(image)):
            self.lost = []
            return super().step(image, index, detect_full, detect_crops)
        looked_for = list(self.faces) + [face for face, _ in self.lost]
        missed = [0] * len(self.faces) + [count for _, count in self.lost]
        self.faces = looked_for
        found = super().step(image, index, detect_full, detect_crops)
        boxes = np.array([[f.left, f.top, f.width, f.height] for f in found]).reshape(-1, 4)
        self.lost = []
        for face, count in zip(looked_for, missed):
            here = len(boxes) and tracking.box_iou(boxes, np.array([[face.left, face.top, face.width,
                                                                       face.height]]))[:, 0].max() >= 0.3
            if not here and count < self.patience:
                self.lost.append((face, count + 1))
        return found


class ContinuingFollower(tracking.FaceFollower):
    """``FaceFollower`` that keeps a full detection's doubtful spot where it continues a face
    followed on the frame before (the stage passes on doubtful spots: ``StageConfig.neighbours``)."""

    threshold = 0.5
    continued = 0

    def step(self, image, index, detect_full, detect_crops):
        before = self.faces if self.last_index is not None and index == self.last_index + 1 else []
        full = self.needs_full_detection(index, tracking.frame_signature(image))
        faces = super().step(image, index, detect_full, detect_crops)
        if not full:  # followed faces, scored in their crops from follow_threshold: all kept
            return faces
        kept = [face for face in faces if face.score >= self.threshold]
        for face in faces:
            if face.score < self.threshold and before and tracking.box_iou(
                    [[face.left, face.top, face.width, face.height]],
                    [[f.left, f.top, f.width, f.height] for f in before])[0].max() >= 0.5:
                kept.append(face)
                ContinuingFollower.continued += 1
        self.faces = kept
        return kept


def _box(face) -> list[float]:
    return [face.left, face.top, face.width, face.height]


def _overlaps(face, faces: list, threshold: float = 0.3) -> bool:
    return bool(faces) and tracking.box_iou([_box(face)], [_box(other) for other in faces])[0].max() >= threshold


def as_records(found: dict) -> dict:
    """Frame index -> faces, as `compare_faces` reads records."""
    return {index: [{"box": _box(face)} for face in faces] for index, faces in found.items()}


def faces_by_frame(stage: DetectStage, frames: list, tracked: bool) -> tuple[dict, float]:
    """Each frame's faces; and the detect CPU ms a frame."""
    found, start = {}, time.process_time()
    for frame in frames:
        found[frame.frame_index] = stage.run_isolated([frame.image], [frame.frame_index])[0][0] if tracked \
            else stage.run([frame.image])[0]
    return found, (time.process_time() - start) / len(frames) * 1000


def followed_back(stage: DetectStage, frames: list, tracked: dict, range_ends: bool) -> tuple[dict, float]:
    """The tracked faces, and each face a full detection finds where the frame before has none
    followed back over the frames before it (follow crops, as going forward) until its crop
    loses it or it meets a face found going forward; and the CPU ms a frame this adds. The full
    detections: the next range's first frame (another worker's, in the pool), or with
    ``range_ends`` a second one on each range's last frame."""
    images = {frame.frame_index: frame.image for frame in frames}
    found = {index: list(faces) for index, faces in tracked.items()}
    every, start = stage.config.track_every, time.process_time()
    for end in sorted(index for index in found if index % every == (every - 1 if range_ends else 0) and index > 0):
        if range_ends:
            full = stage._full(images[end])
            new = [face for face in full if not _overlaps(face, found[end])]
            found[end] += new
        else:
            new = [face for face in found[end] if not _overlaps(face, found.get(end - 1, []))]
        follower = tracking.FaceFollower(every)
        follower.faces = new
        range_start = end - (every - 1 if range_ends else every)  # its faces come from the detection going forward
        for index in range(end - 1, range_start, -1):
            follower.faces = [face for face in follower._follow(images[index], partial(stage._crops, upright=0))
                              if not _overlaps(face, found[index])]
            found[index] += follower.faces
            if not follower.faces:
                break
    return found, (time.process_time() - start) / len(frames) * 1000


def main() -> None:
    frames = [item for item in InputSource(VIDEO) if hasattr(item, "image")]
    every_frame = DetectStage(StageConfig())
    every_frame.load()
    found, cost = faces_by_frame(every_frame, frames, tracked=False)
    reference = as_records(found)
    print(f"every frame: {sum(map(len, reference.values()))} faces, detect {cost:.1f} CPU ms a frame")
    for patience in [0] + [int(word) for word in sys.argv[1:] or ["2", "5"]]:
        PatientFollower.patience = patience
        stages.FaceFollower = PatientFollower  # what DetectStage follows faces with
        stage = DetectStage(StageConfig(track_every=10))
        stage.plugin = every_frame.plugin  # the model loaded once
        tracked, cost = faces_by_frame(stage, frames, tracked=True)
        result = compare_faces(reference, as_records(tracked))
        print(f"lost faces looked for over {patience} frame(s): kept {result['kept']:.3f}, extra {result['extra']} "
              f"({result['false']} not found by every-frame detection within 2 frames), "
              f"detect {cost:.1f} CPU ms a frame")
    stages.FaceFollower = ContinuingFollower
    stage = DetectStage(StageConfig(track_every=10, neighbours=True))  # doubtful spots passed on
    stage.plugin = every_frame.plugin
    tracked, cost = faces_by_frame(stage, frames, tracked=True)
    result = compare_faces(reference, as_records(tracked))
    print(f"doubtful spots continuing a followed face kept at full detections ({ContinuingFollower.continued}): "
          f"kept {result['kept']:.3f}, extra {result['extra']} ({result['false']} not found by every-frame detection "
          f"within 2 frames), detect {cost:.1f} CPU ms a frame")
    stages.FaceFollower = tracking.FaceFollower
    stage = DetectStage(StageConfig(track_every=10))
    stage.plugin = every_frame.plugin
    tracked, cost = faces_by_frame(stage, frames, tracked=True)
    for range_ends, source in ((False, "the next range's first frame"), (True, "a second full detection on the "
                                                                          "range's last frame")):
        found, added = followed_back(stage, frames, tracked, range_ends)
        result = compare_faces(reference, as_records(found))
        print(f"new faces followed back from {source}: kept {result['kept']:.3f}, extra {result['extra']} "
              f"({result['false']} not found by every-frame detection within 2 frames), entrances found within 10 "
              f"frames {result['entrances found within 10 frames']:.2f} "
              f"(mean / longest wait {result['entrance wait, frames (mean / max)']}), "
              f"detect {cost:.1f} + {added:.1f} CPU ms a frame")


if __name__ == "__main__":
    main()
