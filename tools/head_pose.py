"""The head pose in each face's record (``DetectedFace.pose``: pitch, yaw, roll from the 68
landmarks, as faceswap reads them) against the published yaw of ../shared/turned's faces.

    python tools/head_pose.py
"""
import json

import numpy as np
from common import SHARED, loaded_stages, match, read_image


def main() -> None:
    detect, align = loaded_stages()
    folder = SHARED / "turned" / "aflw2000_3d"
    errors = []
    print("| face | yaw, published | pitch, yaw, roll from the landmarks | yaw error |")
    print("| --- | --- | --- | --- |")
    for entry in json.loads((folder / "annotations.json").read_text())["images"]:
        image, _ = read_image(folder / entry["file"])
        found = detect.run([image])[0]
        for index, truth in match(found, [face["box"] for face in entry["faces"]]):
            published = entry["faces"][truth]["yaw_reference_3dmm"]
            align.run([image], [found[index]])
            pitch, yaw, roll = found[index].pose
            errors.append(abs(yaw - published))
            print(f"| {entry['file']} | {published:.1f} | {pitch:.1f}, {yaw:.1f}, {roll:.1f} | {errors[-1]:.1f} |")
    print(f"yaw error over {len(errors)} faces: mean {np.mean(errors):.1f}, median {np.median(errors):.1f}, "
          f"largest {np.max(errors):.1f} degrees")


if __name__ == "__main__":
    main()
