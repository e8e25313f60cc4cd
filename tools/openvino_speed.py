"""CenterFace's network on OpenVINO's CPU plugin against ONNX Runtime as the detector sets it up
(idle threads not spinning): ms a 640 x 384 frame, wall and CPU, one and two threads, three
alternating rounds; outputs compared. OpenVINO is not a dependency: install it beside, e.g.

    pip install --no-deps --target /tmp/ov openvino==2026.4.1
    PYTHONPATH=/tmp/ov:. python tools/openvino_speed.py
"""
import glob
import time
from functools import partial

import numpy as np
import onnxruntime as ort

from extractor.models.model_files import cache_root


def timed(call, calls: int = 40) -> tuple[float, float]:
    call(), call()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall) / calls * 1000, (time.process_time() - cpu) / calls * 1000


def main() -> None:
    import openvino

    ort.set_default_logger_severity(3)  # not the graph's unused-initializer notices
    model = sorted(glob.glob(str(cache_root() / "centerface-*-dynamic.onnx")))[-1]  # the rewritten graph
    frame = np.random.default_rng(0).random((1, 3, 384, 640), dtype=np.float32)
    core = openvino.Core()
    for round_ in range(3):
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            settings = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                        "INFERENCE_PRECISION_HINT": "f32"}
            compiled = core.compile_model(model, "CPU", settings)
            request = compiled.create_infer_request()
            ours, theirs = session.run(None, {name: frame}), request.infer({0: frame})
            difference = max(float(np.abs(a - theirs[out]).max()) for a, out in zip(ours, compiled.outputs))
            ort_ms = timed(partial(session.run, None, {name: frame}))
            ov_ms = timed(partial(request.infer, {0: frame}))
            print(f"round {round_}, {threads} thread(s): onnxruntime {ort_ms[0]:.1f} / {ort_ms[1]:.1f}, openvino "
                  f"{ov_ms[0]:.1f} / {ov_ms[1]:.1f} ms wall / CPU; largest output difference {difference:.1e}")


if __name__ == "__main__":
    main()
