"""Small frames seen at their own size first, against enlarged always (CenterFace's ``min_side``).

Frames that enlarging to ``min_side`` would at least double are looked at as they are and
enlarged only where that view may hide small faces (``CenterFaceDetector.may_hide_small_faces``).
Against enlarging every one, on the same loaded model:
- faces found (IoU >= 0.3 with a listed box) in ../shared/data's and ../shared/turned's photos
  shrunk 2, 2.9 and 4 times (faces of 8-15 px), and how many frames the rule enlarged;
- the sample video's frames shrunk to 320 x 180 and 256 x 144: frames where the view at their
  own size found some faces but fewer than the enlarged view, and whether the rule found them all;
- face crops (each listed face cut square at 1.8 times its box, brought to 256 px, and cut at
  its own size): faces found, crops enlarged, and dlib68's NME over the eye corners after
  detection for every face with 68 listed points.
Record: docs/accuracy.md ("Face crops and thumbnails"). Run: .venv/bin/python tools/small_frames.py (2 min).
"""
import json

import av
import cv2
import numpy as np
from common import SHARED, VIDEO, loaded_stages

from benchmarks.bench import face_crop
from extractor.evaluate import find_annotation_files
from extractor.geometry import iou, transform_points
from extractor.images import read_image
from extractor.plugins.base import Batch


def listed_faces():
    """(image, box, 68 points or None) of every listed face of ../shared/data and ../shared/turned."""
    for root in (SHARED / "data", SHARED / "turned"):
        for path in find_annotation_files(root):
            for entry in json.loads(path.read_text())["images"]:
                faces = entry.get("faces") or []
                image = read_image(path.parent / entry["file"])[0] if faces else None
                if image is not None:
                    yield image, faces


def found(detect, images, enlarged_always: bool):
    """Faces found in each image, and the scale each was last seen at."""
    plugin = detect.plugin
    plugin.own_size_first = not enlarged_always
    try:
        batch = Batch(list(images))
        plugin.pre_process(batch)
        plugin.predict(batch)
        scales = [float(scale) for scale, _, _ in batch.feed[1]]
        plugin.post_process(batch)
        return batch.detections, scales
    finally:
        plugin.own_size_first = True


def shrunk_photos(detect) -> None:
    for factor in (0.5, 0.35, 0.25):
        faces = {"rule": 0, "always": 0}
        frames = enlarged = listed = 0
        for image, entries in listed_faces():
            small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            if not detect.plugin.enlarged_later(*small.shape[:2]):  # a frame the rule leaves as it was
                continue
            frames += 1
            boxes = [np.array(face["box"], float) * factor for face in entries]
            listed += len(boxes)
            for mode in faces:
                (detections,), (scale,) = found(detect, [small], mode == "always")
                enlarged += mode == "rule" and scale > 1
                faces[mode] += sum(any(iou(box, face.box_ltrb) >= 0.3 for face in detections) for box in boxes)
        print(f"photos shrunk x{factor}: {frames} frames ({enlarged} enlarged by the rule), {listed} listed "
              f"faces: found enlarged always {faces['always']}, by the rule {faces['rule']}")


def shrunk_video(detect) -> None:
    plugin = detect.plugin
    for width, height in ((320, 180), (256, 144)):
        fewer = rule_all = 0
        with av.open(str(VIDEO)) as container:
            for frame in container.decode(video=0):
                small = cv2.resize(frame.to_ndarray(format="bgr24"), (width, height), interpolation=cv2.INTER_AREA)
                (always,), _ = found(detect, [small], True)
                (rule,), _ = found(detect, [small], False)
                plugin.min_side, default = 0, plugin.min_side
                try:
                    own = plugin.process(Batch([small])).detections[0]
                finally:
                    plugin.min_side = default
                if 0 < len(own) < len(always):
                    fewer += 1
                    rule_all += len(rule) >= len(always)
        print(f"sample video at {width} x {height}: {fewer} frames whose own-size view found fewer faces than "
              f"the enlarged one; the rule found them all in {rule_all}")


def crop(image, box, points, side):
    """The face cut out as ``make bench``'s face crops are (``face_crop``), its box and points moved there."""
    cut_out, matrix = face_crop(image, box, side)
    corners = transform_points(np.reshape(box, (2, 2)), matrix).ravel()
    return cut_out, corners, None if points is None else transform_points(points, matrix)


def crops(detect, align) -> None:
    for side in (256, 0):
        faces = {"rule": 0, "always": 0}
        errors = {"rule": [], "always": []}
        count = enlarged = 0
        for image, entries in listed_faces():
            for entry in entries:
                cut_out, box, truth = crop(image, entry["box"], entry.get("landmarks68"), side)
                if not detect.plugin.enlarged_later(*cut_out.shape[:2]):
                    continue
                count += 1
                for mode in faces:
                    (detections,), (scale,) = found(detect, [cut_out], mode == "always")
                    enlarged += mode == "rule" and scale > 1
                    faces[mode] += len(detections)
                    if truth is None:
                        continue
                    best = max(detections, key=lambda face: iou(face.box_ltrb, box), default=None)
                    if best is not None and iou(best.box_ltrb, box) >= 0.3:
                        points = align.run([cut_out], [best])[0].landmarks
                        errors[mode].append(np.linalg.norm(points - truth, axis=1).mean()
                                            / np.linalg.norm(truth[36] - truth[45]))
        rule, always = np.array(errors["rule"]), np.array(errors["always"])
        print(f"face crops {'of ' + str(side) + ' px' if side else 'at their own size'}: {count} crops "
              f"({enlarged} enlarged by the rule), faces found enlarged always {faces['always']}, by the rule "
              f"{faces['rule']}; NME of {len(rule)} faces with points: median {np.median(always):.4f} -> "
              f"{np.median(rule):.4f}, mean {always.mean():.4f} -> {rule.mean():.4f}")


def main() -> None:
    detect, align = loaded_stages()
    shrunk_photos(detect)
    shrunk_video(detect)
    crops(detect, align)


if __name__ == "__main__":
    main()
