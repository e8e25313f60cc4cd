"""The fault-injection suite (tests/fault_scenarios.py) on real runs: zeros where zeros are due."""
from __future__ import annotations

import pytest

import fault_scenarios
from extractor.fsa import UnsafeFileError, read_fsa, safe_loads


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.mark.parametrize("scenario", fault_scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_fault_scenario(scenario, work):
    result = fault_scenarios.run_scenario(scenario, work)
    assert result.faults >= 1
    assert (result.frames_lost, result.hangs, result.orphans, result.segments_left) == (0, 0, 0, 0), result
    assert (result.written_over, result.invented, result.silent_empty) == (0, 0, 0), result
    assert result.problems == [], result.detail


@pytest.mark.parametrize("protocol", [2, 4, 5])  # 4: Python 3.11-3.13's default, 5: 3.14's
def test_restricted_unpickler_reads_plain_data_and_arrays(tmp_path, protocol):
    import pickle
    import zlib

    import numpy as np

    data = {"__meta__": {"version": 2.4}, "frame_000001.png": {
        "faces": [{"x": 1, "y": 2, "w": 3, "h": 4, "landmarks_xy": np.arange(136, dtype=np.float32).reshape(68, 2),
                   "mask": {}, "identity": {}, "thumb": None}], "video_meta": {}}}
    path = tmp_path / "ok.fsa"
    path.write_bytes(zlib.compress(pickle.dumps(data, protocol=protocol)))
    back = read_fsa(path)
    assert np.array_equal(back["frame_000001.png"]["faces"][0]["landmarks_xy"],
                          data["frame_000001.png"]["faces"][0]["landmarks_xy"])
    with pytest.raises(UnsafeFileError, match="refused to load 'builtins.eval'"):
        safe_loads(b"cbuiltins\neval\n(S'1+1'\ntR.")

    class ObjectsFromBytes:  # numpy's _frombuffer asked for an array of Python objects
        def __reduce__(self):
            from numpy._core.numeric import _frombuffer
            return _frombuffer, (b"\1" * 8, np.dtype(object), (1,), "C")

    with pytest.raises(UnsafeFileError, match="cannot create an OBJECT array"):
        safe_loads(pickle.dumps(ObjectsFromBytes(), protocol=protocol))
