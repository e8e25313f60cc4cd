"""Pictures inside black bars (a 4:3 or vertical video pillarboxed into 16:9, a letterboxed
film): are faces lost because the detector sees the bars too? Each annotated photo of
../shared/data and ../shared/turned scaled to 1080 (or 540) px tall, alone and centred in a black
1920 x 1080 frame; and a 9:16 strip of the sample video's middle (every third frame) at 608 x
1080, alone and in a 1920 x 1080 frame, as a vertical phone video posted in 16:9.

    python tools/black_bars.py     # about 20 s
"""
import time

import cv2
import numpy as np

from common import boxed_photos, loaded_stages, match, nme, video_frames


def in_frame(content: np.ndarray, width: int = 1920, height: int = 1080) -> tuple[np.ndarray, np.ndarray]:
    """``content`` centred in a black frame, and its top-left corner there."""
    frame = np.zeros((height, width, 3), np.uint8)
    left, top = (width - content.shape[1]) // 2, (height - content.shape[0]) // 2
    frame[top:top + content.shape[0], left:left + content.shape[1]] = content
    return frame, np.array([left, top], float)


def photos(height: int):
    """(photo scaled to ``height`` px tall, at most 1920 wide; its scale; its listed faces)."""
    for image, faces, _ in boxed_photos():
        scale = min(height / image.shape[0], 1920 / image.shape[1])
        yield cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale, faces


def main() -> None:
    detect, align = loaded_stages()

    def faces_in(frame):
        start = time.process_time()
        found = detect.run([frame])[0]
        seconds = time.process_time() - start
        return (align.run([frame] * len(found), found) if found else []), seconds

    print("| pictures | faces | alone: found, NME median, detect CPU-s | in black bars |\n| --- | --- | --- | --- |")
    for height in (1080, 540):
        figures, total = [], 0
        for placed in (False, True):
            found_count, errors, seconds = 0, [], 0.0
            total = 0
            for content, scale, faces in photos(height):
                frame, corner = in_frame(content) if placed else (content, np.zeros(2))
                found, spent = faces_in(frame)
                seconds += spent
                total += len(faces)
                boxes = [np.asarray(face["box"], float) * scale + np.r_[corner, corner] for face in faces]
                for mine, truth in match(found, boxes):
                    found_count += 1
                    if faces[truth].get("landmarks68"):
                        errors.append(nme((np.asarray(found[mine].landmarks) - corner) / scale,
                                          np.asarray(faces[truth]["landmarks68"], float)))
            figures.append(f"{found_count}, {np.median(errors):.4f}, {seconds:.1f}")
        print(f"| the photos, {height} px tall | {total} | {figures[0]} | {figures[1]} |", flush=True)
    alone = placed_count = seconds_alone = seconds_placed = 0
    for number, image in video_frames():
        if number % 3:
            continue
        width = round(image.shape[0] * 9 / 16)
        left = (image.shape[1] - width) // 2
        strip = cv2.resize(image[:, left:left + width], (608, 1080), interpolation=cv2.INTER_CUBIC)
        found, spent = faces_in(strip)
        alone, seconds_alone = alone + len(found), seconds_alone + spent
        found, spent = faces_in(in_frame(strip)[0])
        placed_count, seconds_placed = placed_count + len(found), seconds_placed + spent
    print(f"| the sample video's 9:16 middle, every third frame | | {alone}, -, {seconds_alone:.1f} | "
          f"{placed_count}, -, {seconds_placed:.1f} |")


if __name__ == "__main__":
    main()
