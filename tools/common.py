"""What the turned-face and quality tools share: the data, loaded stages, the annotated faces, the
sample video's frames, and a picture tile of one face."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractor.evaluate import face_yaw, find_annotation_files, match, nme  # noqa: E402
from extractor.media import ExtractMedia  # noqa: E402
from extractor.images import InputError, read_image  # noqa: E402
from extractor.sources import InputSource  # noqa: E402
from extractor.stages import AlignStage, DetectStage, StageConfig  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEO = SHARED / "data" / "video" / "short_hamilton_clip.mp4"
FRONTAL_ONLY = StageConfig(plugin_options={"align.dlib68": {"turned": False}})  # dlib68 without its turned passes


def loaded_stages(config: StageConfig | None = None) -> tuple[DetectStage, AlignStage]:
    """The detect and align stages of ``config`` (the defaults), loaded."""
    config = config or StageConfig()
    detect, align = DetectStage(config), AlignStage(config)
    detect.load()
    align.load()
    return detect, align


def annotated_faces(detect: DetectStage):
    """(set, yaw, image, detected face, true points) of every human-annotated face of
    ../shared/data and ../shared/turned that ``detect`` finds."""
    for root in (SHARED / "data", SHARED / "turned"):
        for path in find_annotation_files(root):
            annotations = json.loads(path.read_text())
            if not str(annotations.get("landmarks_kind", "")).startswith("human"):
                continue
            for entry in annotations["images"]:
                if not entry.get("faces"):
                    continue
                image, _ = read_image(path.parent / entry["file"])
                found = detect.run([image])[0]
                for detected, truth in match(found, [face["box"] for face in entry["faces"]]):
                    face = entry["faces"][truth]
                    yield root.name, face_yaw(face), image, found[detected], np.array(face["landmarks68"])


def annotated_photos():
    """Each readable photo that ../shared/data's and ../shared/turned's annotations list."""
    for path in find_annotation_files(SHARED / "data") + find_annotation_files(SHARED / "turned"):
        for entry in json.loads(path.read_text())["images"]:
            try:
                yield read_image(path.parent / entry["file"])[0]
            except InputError:
                continue


def boxed_photos():
    """(image, its listed faces that have a box, whether its set boxes every face) of each photo
    of ../shared/data and ../shared/turned that lists a boxed face."""
    for path in find_annotation_files(SHARED / "data") + find_annotation_files(SHARED / "turned"):
        listing = json.loads(path.read_text())
        for entry in listing["images"]:
            faces = [face for face in entry.get("faces") or [] if face.get("box")]
            if faces:
                yield read_image(path.parent / entry["file"])[0], faces, bool(listing.get("exhaustive"))


def faces_found_by_look(detect: DetectStage, conditions: dict, looks: dict) -> None:
    """Prints a table: faces found (IoU >= 0.3 with a listed box) on the boxed photos of
    ``boxed_photos`` changed by each of ``conditions`` (name -> function of the photo), each frame
    given to the detector through each of ``looks`` (name -> function of the frame); detections
    on no box of the sets whose every face is boxed in brackets."""
    photos = [(image, [face["box"] for face in faces], exhaustive) for image, faces, exhaustive in boxed_photos()]
    print("| photos | " + " | ".join(looks) + " |\n| --- |" + " --- |" * len(looks))
    for name, change in conditions.items():
        cells = []
        for look in looks.values():
            found = total = other = 0
            for image, boxes, exhaustive in photos:
                faces = detect.run([look(change(image))])[0]
                pairs = match(faces, boxes)
                found, total = found + len(pairs), total + len(boxes)
                other += (len(faces) - len(pairs)) if exhaustive else 0
            cells.append(f"{found}/{total} ({other})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def photo_errors(detect: DetectStage, align: AlignStage, picture=None,
                 human_only: bool = False) -> tuple[int, int, list[float]]:
    """Faces found, faces annotated, and each found face's NME, over the photos of ../shared/data
    and ../shared/turned with 68-point ground truth (``human_only``: a person's, not dlib_faces'
    dlib points), each shown to the stages as ``picture(photo)`` makes it: (the frame, its (x, y)
    scale from the photo); the photo itself by default. Boxes are scaled to the frame to match,
    points back to the photo to be judged. Where the frame bends the photo (a lens's distortion),
    ``picture`` gives, in place of the scale, a function moving photo points into the frame: the
    true points and box corners are moved there, and the points judged there."""
    found, total, errors = 0, 0, []
    for path in find_annotation_files(SHARED / "data") + find_annotation_files(SHARED / "turned"):
        listing = json.loads(path.read_text())
        if human_only and not str(listing.get("landmarks_kind", "")).startswith("human"):
            continue
        for entry in listing["images"]:
            faces = [face for face in entry.get("faces") or [] if face.get("landmarks68")]
            if not faces:
                continue
            image, _ = read_image(path.parent / entry["file"])
            frame, scale = picture(image) if picture else (image, np.ones(2))
            detected = detect.run([frame])[0]
            aligned = align.run([frame] * len(detected), detected) if detected else []
            if callable(scale):
                boxes = [_moved_box(face["box"], scale) for face in faces]
            else:
                boxes = [np.asarray(face["box"], float) * np.tile(scale, 2) for face in faces]
            total += len(faces)
            for mine, truth in match(aligned, boxes):
                found += 1
                points = np.asarray(aligned[mine].landmarks)
                true_points = np.asarray(faces[truth]["landmarks68"], float)
                errors.append(nme(points, scale(true_points)) if callable(scale) else nme(points / scale, true_points))
    return found, total, errors


def _moved_box(box, to_frame) -> list[float]:
    """The upright box around ``box``'s (left, top, right, bottom) corners moved by ``to_frame``."""
    left, top, right, bottom = box
    corners = to_frame(np.array([[left, top], [right, top], [left, bottom], [right, bottom]], float))
    return [*corners.min(0), *corners.max(0)]


def h264_file(frames, path: Path, crf: int, rate=25) -> Path:
    """``frames`` (BGR, even sides) written to ``path`` by libx264 at ``crf``, as a phone, a
    sharing site or a re-upload encodes them; the stream sized from the first frame (PyAV would
    start it at 640 x 480)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": str(crf)})
        for number, image in enumerate(frames):
            if number == 0:
                stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return path


def video_frames(video: Path = VIDEO):
    """(number as the output files give it, 1-based; image) of each frame of ``video``."""
    for media in InputSource(video).video_frames():
        if isinstance(media, ExtractMedia):
            yield int(Path(media.filename).stem.rsplit("_", 1)[-1]), media.image


def tile(image: np.ndarray, box: tuple[float, float, float, float], points: np.ndarray, label: str,
         size: int, context: float) -> np.ndarray:
    """The frame cut square around ``box`` (``context`` times its side), points and a label drawn on it."""
    left, top, width, height = box
    side = context * max(width, height)
    scale = size / side
    matrix = np.array([[scale, 0, -(left + width / 2 - side / 2) * scale],
                       [0, scale, -(top + height / 2 - side / 2) * scale]])
    out = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_CONSTANT)
    for x, y in points @ matrix[:, :2].T + matrix[:, 2]:
        cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1, cv2.LINE_AA)
    cv2.putText(out, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def evenly(items: list, count: int) -> list:
    """``count`` of ``items`` (all, if fewer), evenly spread from the first to the last."""
    return [items[int(k)] for k in np.linspace(0, len(items) - 1, min(count, len(items)))] if items else []


def write_sheet(path: str, tiles: list[np.ndarray], per_row: int) -> None:
    """``tiles`` (one size) in rows of ``per_row``, the last row padded black, as a JPEG at ``path``."""
    tiles = tiles + [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
    sheet = np.vstack([np.hstack(tiles[start:start + per_row]) for start in range(0, len(tiles), per_row)])
    cv2.imwrite(path, sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {path} ({sheet.shape[1]}x{sheet.shape[0]})")
