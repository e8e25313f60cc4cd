"""Faces CenterFace scores 0.3-0.5 on the changed copies of ../shared/data that `make robustness`
makes: real or not, and how well they align (could the alignment quality keep the real ones?).

    python tools/doubtful_faces.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.robustness import CHANGES, changed_copy  # noqa: E402
from extractor.evaluate import find_annotation_files, match  # noqa: E402
from extractor.images import read_image  # noqa: E402
from extractor.stages import StageConfig  # noqa: E402
from tools.common import loaded_stages  # noqa: E402

LOW, THRESHOLD = 0.3, 0.5


def main() -> None:
    detect, align = loaded_stages(StageConfig(plugin_options={"detect.centerface": {"threshold": LOW}}))
    doubtful = {"real": [], "not a face": []}
    for change in CHANGES.values():
        with tempfile.TemporaryDirectory() as tmp:
            changed_copy(change, Path(tmp), proxy=True)
            for listing in find_annotation_files(Path(tmp)):
                annotations = json.loads(listing.read_text())
                for entry in annotations["images"]:
                    image, _ = read_image(listing.parent / entry["file"])
                    found = detect.run([image])[0]
                    if not found:
                        continue
                    align.run([image] * len(found), found)
                    real = dict(match(found, [face["box"] for face in entry["faces"]]))
                    for index, face in enumerate(found):
                        if face.score >= THRESHOLD or not (index in real or annotations.get("exhaustive")):
                            continue  # sure faces, and unmatched ones where not every face is boxed
                        doubtful["real" if index in real else "not a face"].append(face.quality)
    for kind, qualities in doubtful.items():
        print(f"{kind}: {len(qualities)} faces scored {LOW}-{THRESHOLD}, alignment quality "
              f"{min(qualities, default=0):.2f}-{max(qualities, default=0):.2f}")


if __name__ == "__main__":
    main()
