"""Faces in HDR video frames (PQ, HLG) decoded as faceswap decodes them: aligned as well as SDR ones?

FFmpeg's plain conversion of an HDR video's frames to 8-bit BGR gives its encoded signal, flat
and washed out. Each annotated photo of ../shared/data and ../shared/turned is encoded as an HDR
master carries SDR content (its light at BT.2408's 203 nits for white; PQ: SMPTE ST 2084's
inverse EOTF; HLG: BT.2100's inverse OOTF for a 1000-nit display, then ARIB STD-B67's OETF), its
faces detected and aligned by the default stages on the signal as decoded and as a run looks at
such a video (the stages' ``hdr_transfer``: tone-mapped back, extractor/hdr.py), NME over the
eye-corner distance. Record: docs/accuracy.md. Run: .venv/bin/python tools/hdr_frames.py (8 minutes).
"""
import numpy as np
from common import VIDEO, loaded_stages, photo_errors

from extractor.hdr import hdr_signal
from extractor.sources import InputSource
from extractor.stages import StageConfig


def encoded(image: np.ndarray, transfer: str) -> np.ndarray:
    """The photo as an HDR video's frame decodes to 8 bits: its ``transfer`` signal."""
    return np.clip(np.round(hdr_signal(image, transfer) * 255), 0, 255).astype(np.uint8)


def main() -> None:
    as_decoded = loaded_stages()
    print("| frames | looked at | faces found | NME mean / median |\n| --- | --- | --- | --- |")
    for transfer in (None, "pq", "hlg"):
        looks = {"as decoded": as_decoded}
        if transfer:
            looks["tone-mapped (hdr_transfer)"] = loaded_stages(StageConfig(hdr_transfer=transfer))
        for look, (detect, align) in looks.items():
            picture = None if transfer is None else \
                (lambda image, transfer=transfer: (encoded(image, transfer), np.ones(2)))
            found, total, errors = photo_errors(detect, align, picture)
            print(f"| {transfer or 'SDR'} | {look} | {found} of {total} | "
                  f"{np.mean(errors):.4f} / {np.median(errors):.4f} |")
    print("\n| the sample video's 275 frames | looked at | faces found (detect stage, 0.5 and up) |\n"
          "| --- | --- | --- |")
    frames = [media.image for media in InputSource(VIDEO) if hasattr(media, "image")]
    for transfer in (None, "pq", "hlg"):
        for look in ("as decoded", "tone-mapped") if transfer else ("as decoded",):
            detect = as_decoded[0] if look == "as decoded" else \
                loaded_stages(StageConfig(hdr_transfer=transfer))[0]
            count = sum(len(detect.run([frame if transfer is None else encoded(frame, transfer)])[0])
                        for frame in frames)
            print(f"| {transfer or 'SDR'} | {look} | {count} |")


if __name__ == "__main__":
    main()
