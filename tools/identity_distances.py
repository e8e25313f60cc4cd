"""Identity distances and cost per face on ../shared/data (the figures in the README).

Every annotated face is detected, aligned and embedded (dlib ResNet); distances are to the
300-VW frame 000006.jpg's actor. Run: .venv/bin/python tools/identity_distances.py
"""
import json
import os
import pathlib
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from extractor.evaluate import match  # noqa: E402
from extractor.images import read_image  # noqa: E402
from extractor.stages import AlignStage, DetectStage, IdentityStage, StageConfig  # noqa: E402


def main():
    config = StageConfig(identity="dlib-resnet")
    detect, align, identity = DetectStage(config), AlignStage(config), IdentityStage(config)
    for stage in (detect, align, identity):
        stage.load()
    vectors, seconds = {}, 0.0
    for ann in sorted(DATA.glob("*/annotations.json")):
        for entry in json.loads(ann.read_text())["images"]:
            if not entry.get("faces"):
                continue
            image, _ = read_image(ann.parent / entry["file"])
            found = detect.run([image])[0]
            faces = [found[d] for d, _ in match(found, [f["box"] for f in entry["faces"]])]
            align.run([image] * len(faces), faces)
            start = time.perf_counter()
            identity.run([image] * len(faces), faces)
            seconds += time.perf_counter() - start
            for k, face in enumerate(faces):
                vectors[f"{ann.parent.name}/{entry['file']}#{k}"] = face.identity["dlib-resnet"]
    reference = vectors["ibug_300vw/001/imgs/000006.jpg#0"]
    for name, vector in sorted(vectors.items(), key=lambda kv: np.linalg.norm(kv[1] - reference)):
        print(f"{np.linalg.norm(vector - reference):.3f}  {name}")
    print(f"{len(vectors)} faces, {1000 * seconds / len(vectors):.1f} ms per face for the identity stage")


if __name__ == "__main__":
    main()
