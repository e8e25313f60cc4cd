"""Faces in interlaced video frames decoded whole (combed where they move): found as often?

An interlaced frame holds two fields a field apart in time. Here the sample video's consecutive
frames (1/25 s apart: twice a 50i field's motion) are woven into one, the even lines from the
first and the odd ones from the second; the sample video's frames are also telecined (3:2
pulldown) and kept progressive in a video said to be interlaced (PsF); and each annotated photo
of ../shared/data and ../shared/turned is woven with a copy of itself moved sideways by 3 px (a
face crossing the picture in a few seconds, at 50 fields a second). The default detect stage
looks at them as decoded and as a run looks at a video said to be interlaced (the stage's
``one_field``: extractor/fields.py) and at one that does not say so (``one_field_if_combed``);
the photos' points (aligned on the woven frame, as runs align) are judged against the first
field's ground truth. Also: how often ``fields.combed`` judges pictures combed (progressive,
woven, through H.264, deinterlaced by yadif) and what it costs; faces moving in still 4K
frames. Record: docs/accuracy.md. Run:
.venv/bin/python tools/interlaced_frames.py (8 minutes).
"""
import io
import json
import time
from contextlib import contextmanager
from fractions import Fraction

import cv2
import numpy as np
from common import SHARED, VIDEO, annotated_photos, loaded_stages, photo_errors

from extractor import fields
from extractor.evaluate import find_annotation_files, match, nme
from extractor.fields import combed
from extractor.geometry import iou
from extractor.images import read_image
from extractor.sources import InputSource
from extractor.stages import DetectStage, StageConfig

SHIFT = 3  # pixels the second field's picture has moved


def woven(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """An interlaced frame: ``first``'s even lines, ``second``'s odd ones."""
    frame = first.copy()
    frame[1::2] = second[1::2]
    return frame


def telecined(film: list[np.ndarray]) -> list[np.ndarray]:
    """Film frames as 3:2 pulldown makes them a video's (24 to 30 frames a second): of each four,
    five frames, the third and fourth woven from two film frames (top field first)."""
    out = []
    for start in range(0, len(film) - 3, 4):
        a, b, c, d = film[start:start + 4]
        out += [a, b, woven(b, c), woven(c, d), d]
    return out


def h264(images: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Each image through a progressive H.264 encoding at ``crf`` and back (a web upload's)."""
    import av

    out = []
    for image in images:
        height, width = (side - side % 2 for side in image.shape[:2])
        data = io.BytesIO()
        with av.open(data, "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=25, options={"crf": str(crf)})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="bgr24")
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
        data.seek(0)
        with av.open(data) as container:
            out.append(next(container.decode(video=0)).to_ndarray(format="bgr24"))
    return out


def deinterlaced(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames through FFmpeg's yadif (one frame a frame, top field first), as the run's log
    line advises for face images without combing (``ffmpeg -i IN -vf yadif OUT``)."""
    import av

    graph = av.filter.Graph()
    height, width = frames[0].shape[:2]
    source = graph.add_buffer(width=width, height=height, format="yuv444p", time_base=Fraction(1, 25))
    yadif, sink = graph.add("yadif", "mode=0:parity=tff:deint=all"), graph.add("buffersink")
    source.link_to(yadif)
    yadif.link_to(sink)
    graph.configure()
    out = []
    for number, image in enumerate(frames + [None]):
        if image is None:
            graph.push(None)
        else:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv444p")
            frame.pts, frame.time_base = number, Fraction(1, 25)
            graph.push(frame)
        while True:
            try:
                out.append(graph.pull().to_ndarray(format="bgr24"))
            except (av.BlockingIOError, av.EOFError):
                break
    return out


def judge_combing(frames: list[np.ndarray], interlaced: list[np.ndarray]) -> None:
    """How often ``fields.combed`` says so, and what it costs."""
    photos = list(annotated_photos())
    print("\n| pictures | judged combed (fields.combed) |\n| --- | --- |")
    groups = {"the sample video, progressive": frames, "the sample video, woven": interlaced,
              "annotated photos": photos, "annotated photos woven with a copy moved 1 px":
              [woven(photo, np.roll(photo, 1, axis=1)) for photo in photos]}
    for crf in (23, 30):
        groups[f"every third progressive frame, H.264 CRF {crf}"] = h264(frames[::3], crf)
        groups[f"every third woven frame, H.264 CRF {crf}"] = h264(interlaced[::3], crf)
    groups["annotated photos, H.264 CRF 23"] = h264(photos, 23)
    groups["the sample video, woven, deinterlaced by yadif"] = deinterlaced(interlaced)
    for name, pictures in groups.items():
        print(f"| {name} | {sum(map(combed, pictures))} of {len(pictures)} |")
    for size in ((640, 360), (1920, 1080)):
        frame = cv2.resize(frames[0], size)
        start = time.process_time()
        for _ in range(50):
            combed(frame)
        print(f"{size[0]} x {size[1]}: {(time.process_time() - start) / 50 * 1000:.2f} CPU ms a frame")


def moving_faces_in_still_frames(shift: int, height: int = 2160, width: int = 3840) -> None:
    """Each annotated photo in a still 4K frame (a blurred copy around it), its faces (their boxes
    grown by a quarter) moved ``shift`` px between the fields: too little of the frame combed for
    the frame to be judged so; NME read whole, as the face stages judge each face's surroundings,
    and on one field."""
    looks = {"read whole": loaded_stages(), "judged by the face's surroundings": loaded_stages(
        StageConfig(one_field_if_combed=True)), "on one field": loaded_stages(StageConfig(one_field=True))}
    errors = {name: [] for name in looks}
    for path in find_annotation_files(SHARED / "data") + find_annotation_files(SHARED / "turned"):
        for entry in json.loads(path.read_text())["images"]:
            faces = [face for face in entry.get("faces") or [] if face.get("landmarks68")]
            photo = read_image(path.parent / entry["file"])[0] if faces else None
            if photo is None or photo.shape[0] > height or photo.shape[1] > width:
                continue
            top, left = (height - photo.shape[0]) // 2, (width - photo.shape[1]) // 2
            still = cv2.GaussianBlur(cv2.resize(photo, (width, height)), (0, 0), 3)
            still[top:top + photo.shape[0], left:left + photo.shape[1]] = photo
            boxes = [np.asarray(face["box"], float) + [left, top, left, top] for face in faces]
            moved = still.copy()
            for x0, y0, x1, y1 in boxes:
                margin = (x1 - x0) / 4
                rows, columns = slice(int(y0 - margin), int(y1 + margin)), slice(int(x0 - margin), int(x1 + margin))
                moved[rows, columns] = np.roll(still, shift, axis=1)[rows, columns]
            frame = woven(still, moved)
            for name, (detect, align) in looks.items():
                found = detect.run([frame])[0]
                found = align.run([frame] * len(found), found) if found else []
                for mine, truth in match(found, boxes):
                    errors[name].append(nme(np.asarray(found[mine].landmarks),
                                            np.asarray(faces[truth]["landmarks68"], float) + [left, top]))
    print(f"| moved {shift} px | " + " | ".join(f"{np.mean(values):.4f} ({len(values)})" for values in errors.values())
          + " |")


@contextmanager
def every_frame_on_one_field():
    """A video that says it is interlaced looked at one field on every frame, combed or not (as
    before 2026-12-07: now only on frames with any combing)."""
    judged = fields.combed
    fields.combed = lambda image, **judge: True
    try:
        yield
    finally:
        fields.combed = judged


def main() -> None:
    detect, align = loaded_stages()
    one_field = DetectStage(StageConfig(one_field=True))  # a video that says it is interlaced
    if_combed = DetectStage(StageConfig(one_field_if_combed=True))  # one that does not
    one_field.plugin = if_combed.plugin = detect.plugin
    decoded = [media.image for media in InputSource(VIDEO) if hasattr(media, "image")]
    frames = decoded[:-1]  # each woven with the next
    interlaced = [woven(first, second) for first, second in zip(decoded, decoded[1:])]

    def found(stage: DetectStage, pictures: list[np.ndarray]) -> int:
        return sum(len(stage.run([picture])[0]) for picture in pictures)

    with every_frame_on_one_field():
        every_frame = {"progressive": found(one_field, frames), "interlaced": found(one_field, interlaced)}
    print("| the sample video's frames | faces found (detect stage) |\n| --- | --- |")
    print(f"| progressive ({len(frames)}) | {found(detect, frames)} |")
    print(f"| progressive, said to be interlaced (PsF: film on a DVD), one field on every frame | "
          f"{every_frame['progressive']} |")
    print(f"| progressive, said to be interlaced, one field where any combing | {found(one_field, frames)} |")
    print(f"| interlaced ({len(interlaced)}), as decoded | {found(detect, interlaced)} |")
    print(f"| interlaced, said so, one field on every frame | {every_frame['interlaced']} |")
    flagged = [one_field.run([frame])[0] for frame in interlaced]
    print(f"| interlaced, said so, one field where any combing | {sum(map(len, flagged))} |")
    print(f"| interlaced, not said (stored as progressive), one field where combed | {found(if_combed, interlaced)} |")
    pulled_down = telecined(decoded)
    print(f"| telecined ({len(pulled_down)}: 3:2 pulldown, {sum(map(combed, pulled_down))} judged combed), "
          f"as decoded | {found(detect, pulled_down)} |")
    print(f"| telecined, not said, one field where combed | {found(if_combed, pulled_down)} |")
    judge_combing(frames, interlaced)
    for crops in ("as decoded", "one field"):
        tracked = DetectStage(StageConfig(one_field=True, track_every=10))
        tracked.plugin, tracked.follower.on_one_field = detect.plugin, lambda image, crops=crops: crops == "one field"
        followed = [tracked.run_isolated([frame], [index])[0][0] for index, frame in enumerate(interlaced)]
        kept = sum(any(iou(face.box_ltrb, mine.box_ltrb) >= 0.5 for mine in faces)
                   for faces, full in zip(followed, flagged) for face in full)
        print(f"| interlaced, said so, `--track` (every 10 frames), follow crops {crops} | {kept} of the "
              f"{sum(map(len, flagged))} found on every frame |")
    print("\n| faces moving in a still 4K frame | NME (faces) read whole | judged by the face's surroundings "
          "| on one field |\n| --- | --- | --- | --- |")
    for shift in (2, 4):
        moving_faces_in_still_frames(shift)
    print("\n| annotated photos, second field moved 3 px | faces found | NME mean / median |\n| --- | --- | --- |")
    _, one_field_align = loaded_stages(StageConfig(one_field=True))
    looks = (("progressive", detect, align), ("interlaced, as decoded", detect, align),
             ("interlaced, one field found", one_field, align), ("interlaced, one field found and aligned", one_field,
                                                                  one_field_align))
    for name, stage, aligner in looks:
        picture = None if name == "progressive" else \
            (lambda image: (woven(image, np.roll(image, SHIFT, axis=1)), np.ones(2)))
        count, total, errors = photo_errors(stage, aligner, picture)
        print(f"| {name} | {count} of {total} | {np.mean(errors):.4f} / {np.median(errors):.4f} |")


if __name__ == "__main__":
    main()
