"""Identity embeddings of faces in frames players show otherwise than as decoded: the same person?

--filter and --nfilter compare each face's embedding (dlib's ResNet) with a reference photo's.
Every photo of ../shared/data and ../shared/turned that has annotations is made into each kind of
frame (anamorphic: anamorphic_frames.py; HDR: hdr_frames.py; interlaced: interlaced_frames.py),
its faces found and aligned as a run looks at such a video, and each face's embedding made from
the frame as decoded and as players show it (the identity stage with the video's looks); each is
measured against the same face's embedding on the photo itself (Euclidean distance; dlib's
threshold for one person: 0.6). Record: docs/accuracy.md. Run: .venv/bin/python
tools/identity_looks.py (about a minute).
"""
import copy
from dataclasses import replace

import numpy as np
from anamorphic_frames import stored
from common import annotated_photos, loaded_stages
from hdr_frames import encoded
from interlaced_frames import SHIFT, woven

from extractor.stages import IdentityStage, StageConfig

LOOKS = {  # name: (how a run looks at such a video, the photo made into such a frame)
    "anamorphic, HDV 1440 (stored 0.75 as wide)": (StageConfig(pixel_aspect=4 / 3), stored(0.75)),
    "anamorphic, DVD 16:9 (27/32 as wide)": (StageConfig(pixel_aspect=32 / 27), stored(27 / 32)),
    "HDR10 (PQ)": (StageConfig(hdr_transfer="pq"), lambda image: (encoded(image, "pq"), np.ones(2))),
    "HLG": (StageConfig(hdr_transfer="hlg"), lambda image: (encoded(image, "hlg"), np.ones(2))),
    f"interlaced (second field moved {SHIFT} px)": (StageConfig(one_field=True), lambda image: (
        woven(image, np.roll(image, SHIFT, axis=1)), np.ones(2))),
}


def embedded(identity: IdentityStage, image: np.ndarray, faces: list) -> list[np.ndarray]:
    """The faces' embeddings on ``image``, a video frame (its faces already aligned)."""
    identity.run([image] * len(faces), faces, [True] * len(faces))
    return [face.embedding for face in faces]


def centre(face) -> np.ndarray:
    return np.array([face.left + face.width / 2, face.top + face.height / 2])


def main() -> None:
    detect, align = loaded_stages()
    plain = IdentityStage(StageConfig(identity="dlib-resnet"))
    plain.load()
    print("| frames | faces | distance from the photo's embedding: as decoded | as players show it |\n"
          "| --- | --- | --- | --- |")
    for name, (config, picture) in LOOKS.items():
        look_detect, look_align = loaded_stages(config)
        shown = IdentityStage(replace(config, identity="dlib-resnet"))
        shown.load()
        as_decoded, as_shown = [], []
        for image in annotated_photos():
            faces = detect.run([image])[0]
            references = embedded(plain, image, align.run([image] * len(faces), faces))
            frame, scale = picture(image)
            found = look_detect.run([frame])[0]
            found = look_align.run([frame] * len(found), found)
            decoded = embedded(plain, frame, copy.deepcopy(found))
            seen = embedded(shown, frame, copy.deepcopy(found))
            for face, one, other in zip(found, decoded, seen):
                apart = [np.linalg.norm(centre(face) / scale - centre(mine)) for mine in faces]
                if apart and min(apart) < faces[int(np.argmin(apart))].width / 3:  # the photo's same face
                    as_decoded.append(np.linalg.norm(one - references[int(np.argmin(apart))]))
                    as_shown.append(np.linalg.norm(other - references[int(np.argmin(apart))]))
        print(f"| {name} | {len(as_decoded)} | {np.mean(as_decoded):.3f} (median {np.median(as_decoded):.3f}) | "
              f"**{np.mean(as_shown):.3f}** (median {np.median(as_shown):.3f}) |", flush=True)


if __name__ == "__main__":
    main()
