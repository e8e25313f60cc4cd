"""The device plan on a GPU workstation, from this CPU machine: a stand-in ``nvidia-smi`` reports
GPUs, and the plan must say what really runs (the install has no runtime with GPU support), use
every GPU when a runtime can, and let each GPU worker confirm its GPU."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import DATA, REPO
from extractor.models.backend import default_backend
from extractor.pipeline import build_pipeline
from extractor.output import OutputSettings
from extractor.run_settings import EngineOptions, RunSettings
from extractor.stages import StageConfig
from extractor.workers.devices import GpuInfo, PlanError, apply_device_plan, gpus_cuda_visible, plan_devices
from extractor.workers.gpu_support import gpu_capable_runtimes


def stage_demands(settings, options, gpus, capable, cpu_count=None):
    pipeline = build_pipeline(settings, options, gpus, capable, cpu_count)
    return [spec.demand() for spec in pipeline.stages], pipeline.notes

TWO_GPUS = [GpuInfo(0, "sim-0", 24000, 23000), GpuInfo(1, "sim-1", 24000, 23000)]
PHOTOS = DATA / "ibug_300vw" / "001" / "imgs"  # two frames, one face each and people behind


def _settings(tmp_path, **stages) -> RunSettings:
    return RunSettings(PHOTOS, OutputSettings(tmp_path, tmp_path / "a.jsonl", size=64), StageConfig(**stages))


def test_this_install_has_no_gpu_runtime():
    """tensorflow-cpu and CPU ONNX Runtime: nothing here can use a GPU (metadata, no import)."""
    assert gpu_capable_runtimes() == set()


def test_gpus_no_runtime_can_use_fall_back_to_the_cpu_plan_and_say_how_to_fix_it(tmp_path):
    demands, notes = stage_demands(_settings(tmp_path), EngineOptions(), TWO_GPUS, set(), cpu_count=2)
    assert [(d.stage, d.workers, d.vram_mb, d.runtime) for d in demands] == [
        ("detect", 1, None, "onnxruntime"), ("align", 1, None, "numpy"), ("mask", 1, None, "numpy")]
    assert len(notes) == 1
    assert "2 GPU(s) found, but no installed runtime can use them for detect" in notes[0]
    assert "`make install BACKEND=torch GPU=1` installs GPU support" in notes[0]
    plans, more = plan_devices(demands, TWO_GPUS, cpu_count=2)
    assert all(p.gpu is None for p in plans) and more == []
    assert plans[0].cpu_threads == 2  # the best CPU plan: as on a machine without GPUs


def test_on_a_cpu_half_the_cores_align_and_mask_and_the_detector_s_threads_take_every_core(tmp_path):
    """Without GPUs one detect worker runs on every core; one aligner would hold the run to its
    pace on a machine of many cores (align costs about two thirds of detection a frame), so half
    the cores align and mask, as behind GPU detectors. On 2 cores: one each, as before."""
    for cores, counts, said in ((2, [1, 1, 1], []), (16, [1, 6, 2], ["align: 6 worker(s) to keep the detector fed",
                                                                      "mask: 2 worker(s) to keep the detector fed"])):
        demands, notes = stage_demands(_settings(tmp_path), EngineOptions(), [], set(), cpu_count=cores)
        assert [d.workers for d in demands] == counts
        assert [note.split(";")[0] for note in notes if "fed" in note] == said
        plans, _ = plan_devices(demands, [], cpu_count=cores)
        assert [p.cpu_threads for p in plans if p.stage == "detect"] == [cores]
    demands, _ = stage_demands(_settings(tmp_path), EngineOptions(workers={"align": 1, "mask": 1}), [], set(),
                               cpu_count=16)
    assert [d.workers for d in demands] == [1, 1, 1]  # the flags win


def test_every_gpu_gets_a_detect_worker_on_the_fastest_installed_runtime(tmp_path):
    options = EngineOptions()
    demands, notes = stage_demands(_settings(tmp_path), options, TWO_GPUS, {"keras/jax", "onnxruntime"}, cpu_count=16)
    detect = demands[0]
    # two workers a GPU: a GPU detector's worker is mostly CPU work (two on one H200: 1.5-2.5x the frames/s)
    assert (detect.workers, detect.runtime, detect.vram_mb) == (4, "onnxruntime", 2500)
    assert "detect: 2 workers per GPU (4; a GPU detector's worker is mostly CPU work)" in notes[0]
    plans, _ = plan_devices(demands, TWO_GPUS, cpu_count=16)
    assert sorted(p.gpu for p in plans if p.stage == "detect") == [0, 0, 1, 1]
    # fed: half of the 16 cores align and mask, shared by their CPU cost a frame (about 5 to 1)
    assert [len([p for p in plans if p.stage == stage]) for stage in ("align", "mask")] == [6, 2]
    assert "align: 6 worker(s) to keep the GPU detectors fed" in " ".join(notes)
    # one a GPU where the host lacks the cores (8 a GPU) or a GPU the memory for two budgets
    small = [GpuInfo(0, "sim-0", 8000, 5000), GpuInfo(1, "sim-1", 24000, 23000)]
    for gpus, cores in ((TWO_GPUS, 8), (small, 32)):
        demands, notes = stage_demands(_settings(tmp_path), options, gpus, {"onnxruntime"}, cpu_count=cores)
        assert demands[0].workers == 2, (gpus, cores)
        assert "detect: one worker per GPU (2; 2 with 8 cores a GPU and the GPU memory for them)" in notes[0]
    # --backend asks for a Keras backend: it wins where it has GPU support
    demands, _ = stage_demands(_settings(tmp_path, backend="jax"), options, TWO_GPUS, {"keras/jax", "onnxruntime"})
    assert demands[0].runtime == "keras/jax"
    # an explicit worker count is kept
    demands, _ = stage_demands(_settings(tmp_path), EngineOptions(workers={"detect": 3}), TWO_GPUS, {"onnxruntime"})
    assert demands[0].workers == 3


def test_identity_goes_on_a_gpu_through_onnx_runtime_unless_its_jitters_need_dlibs_own_code(tmp_path):
    """dlib's face recognition network runs in ONNX Runtime: on a GPU where onnxruntime-gpu is
    installed, under a budget of its own; with ``jitters`` dlib's own code runs it, on the CPU,
    and no note blames the install for that."""
    def identity_of(capable, **options):
        settings = _settings(tmp_path, identity="dlib-resnet",
                             plugin_options={"identity.dlib-resnet": options} if options else {})
        demands, notes = stage_demands(settings, EngineOptions(), TWO_GPUS, capable, cpu_count=16)
        plans, _ = plan_devices(demands, TWO_GPUS, cpu_count=16)
        demand = next(d for d in demands if d.stage == "identity")
        return demand, [p.gpu for p in plans if p.stage == "identity"], notes

    demand, gpus, _ = identity_of({"onnxruntime"})
    assert (demand.runtime, demand.vram_mb) == ("onnxruntime", 556) and gpus[0] in (0, 1)
    demand, gpus, notes = identity_of({"onnxruntime"}, jitters=2)
    assert (demand.runtime, demand.vram_mb, gpus) == ("dlib", None, [None])
    assert not any("no installed runtime" in note for note in notes)
    demand, gpus, notes = identity_of(set())
    assert (demand.runtime, gpus) == ("onnxruntime", [None])
    assert "no installed runtime can use them for detect, identity" in notes[0]


def test_a_gpu_worker_confirms_its_gpu_and_the_run_keeps_its_faces(tmp_path):
    """Real workers planned on two (simulated) GPUs with ONNX Runtime taken as GPU-capable: each
    one's framework lists no GPU, so each says so in one line; the faces are the CPU plan's. No
    framework start-up chatter reaches the terminal (TensorFlow on a 'GPU' worker included; JAX
    where TensorFlow is not installed, as on Python 3.14)."""
    keras = f"keras/{default_backend()}"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from pathlib import Path
        from extractor.alignments import read_records
        from extractor.engines.pool import run_pool
        from extractor.output import OutputSettings
        from extractor.run_settings import EngineOptions, RunSettings
        from extractor.stages import StageConfig
        from test_gpu_plan import TWO_GPUS
        out = Path(sys.argv[1])
        faces = {{}}
        for name, runtimes, backend, identity in (("cpu", None, None, "dlib-resnet"),
                                                  ("gpu", {{"onnxruntime"}}, None, "dlib-resnet"),
                                                  ("tf", {{{keras!r}}}, {keras[len("keras/"):]!r}, None)):
            settings = RunSettings(Path({str(PHOTOS)!r}), OutputSettings(out / name, out / name / "a.jsonl", size=64),
                                   StageConfig(backend=backend, identity=identity))
            options = EngineOptions(gpu_inventory=TWO_GPUS if runtimes else [], gpu_runtimes=runtimes)
            summary = run_pool(settings, options)
            print(name, "plan:", " | ".join(summary.plan))
            print(name, "warnings:", " | ".join(summary.warnings))
            faces[name] = [[(f["landmarks"], f.get("identity")) for f in r["faces"]]
                           for r in read_records(out / name / "a.jsonl")]
        print("same faces:", faces["cpu"] == faces["gpu"], len(faces["cpu"][0]) == len(faces["tf"][0]))
        print("embedded:", all(identity for frame in faces["gpu"] for _, identity in frame))
        """)
    # A shell that asks TensorFlow for all its logs: they still go to the log file, not the terminal.
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="0")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=600, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "detect-0   -> GPU 0 with a 2500 MB budget [onnxruntime]" in out
    assert "detect-1   -> GPU 1 with a 2500 MB budget [onnxruntime]" in out
    # dlib's face recognition network through ONNX Runtime's CUDA provider, judged the same way
    assert re.search(r"identity-0 +-> GPU \d with a 556 MB budget \[onnxruntime\]", out), out
    for worker in ("detect-0", "detect-1", "identity-0"):
        assert re.search(f"{worker} was planned on GPU \\d, but onnxruntime sees no GPU in it: it runs on the CPU",
                         out), worker
    assert f"but {keras} sees no GPU in it" in out
    assert "same faces: True True" in out and "embedded: True" in out
    for chatter in ("oneDNN", "absl::InitializeLog", "cuInit", "TF-TRT"):
        assert chatter not in result.stderr + out, chatter


def stand_in_nvidia_smi(folder) -> str:
    """A folder holding an ``nvidia-smi`` that lists two GPUs, to put first on PATH."""
    tools = folder / "bin"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA Sim, 24000, 23000'\necho '1, NVIDIA Sim, 24000, 23000'\n")
    smi.chmod(0o755)
    return str(tools)


def test_stand_in_nvidia_smi_on_path_the_cli_plans_for_the_cpu_and_says_why(tmp_path):
    tools = stand_in_nvidia_smi(tmp_path)
    # A user's shell: no KERAS_BACKEND (tests that load Keras in this process set it).
    shell = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env = dict(shell, PATH=f"{tools}:{os.environ['PATH']}")
    runs = {}
    for name, environment in (("gpus", env), ("none", shell)):
        result = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(PHOTOS), "-o",
                                 str(tmp_path / name), "--size", "64", "--no-progress"],
                                capture_output=True, text=True, timeout=600, env=environment, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = result.stdout + result.stderr
    assert "2 GPU(s) found, but no installed runtime can use them for detect" in runs["gpus"]
    assert "detect-0   -> CPU (2 threads) [onnxruntime]" in runs["gpus"]
    assert "GPU 0" not in runs["gpus"]
    faces = [line for line in runs["gpus"].splitlines() if line.startswith("faces:")]
    assert faces and faces == [line for line in runs["none"].splitlines() if line.startswith("faces:")]


def test_an_onnxruntime_gpu_worker_is_judged_by_its_session_not_its_provider_list(monkeypatch):
    """onnxruntime-gpu lists its CUDA provider even where the provider's CUDA libraries do not
    load, and a session asked for CUDA then runs on the CPU: the worker's check must say so.
    Here the list claims CUDA (as such an install's does) and the real session falls back."""
    import onnxruntime

    from extractor.models import runners
    from extractor.plugins import registry
    from extractor.workers.devices import WorkerPlan
    from extractor.workers.stage_worker import gpu_mismatch

    listed = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *listed])
    monkeypatch.setattr(runners, "GPU_SESSIONS_ON_CUDA", [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # as the worker's plan sets it
    detector = registry.create("detect", "centerface", runtime="onnxruntime")
    detector.load()
    assert not detector.runner.on_gpu
    plan = WorkerPlan("detect", 0, 0, 2500, 1, 24000, "onnxruntime")
    assert gpu_mismatch(plan) == ("detect-0 was planned on GPU 0, but onnxruntime sees no GPU in it: "
                                  "it runs on the CPU")
    # dlib's face recognition network, the same way
    monkeypatch.setattr(runners, "GPU_SESSIONS_ON_CUDA", [])
    identity = registry.create("identity", "dlib-resnet")
    identity.load()
    assert not identity.embedder.on_gpu and runners.GPU_SESSIONS_ON_CUDA == [False]
    plan = WorkerPlan("identity", 0, 1, 556, 1, 24000, "onnxruntime")
    assert gpu_mismatch(plan) == ("identity-0 was planned on GPU 1, but onnxruntime sees no GPU in it: "
                                  "it runs on the CPU")


FOUR_GPUS = [GpuInfo(i, f"sim-{i}", 24000, 23000, f"GPU-{i}a{i}b-uuid") for i in range(4)]


def test_cuda_visible_devices_set_by_the_user_is_read_as_cuda_reads_it():
    """nvidia-smi lists every GPU whatever CUDA_VISIBLE_DEVICES says, and each worker sets the
    variable to its own GPU: the run must plan only on the GPUs the user's variable leaves."""
    def indices(visible):
        return [g.index for g in gpus_cuda_visible(FOUR_GPUS, visible)]

    assert indices(None) == [0, 1, 2, 3]
    assert indices("2") == [2] and indices("3,1") == [3, 1] and indices(" 1, 2 ") == [1, 2]
    assert indices("GPU-2a2b-uuid,GPU-0") == [2, 0]  # UUIDs, or a unique start of one
    assert indices("") == [] and indices("-1") == []  # no GPU: the CPU plan
    assert indices("1,7,2") == [1] and indices("1,1") == [1]  # CUDA stops at an entry that names no new GPU
    assert indices("GPU-") == []  # the start of every UUID names none


def test_the_plan_keeps_to_cuda_visible_devices_and_exclude_gpus(tmp_path, monkeypatch):
    """The pool's plan with four (simulated) GPUs that a runtime can use: CUDA_VISIBLE_DEVICES
    leaves two, said in the plan, and faceswap's -X takes one more away; --gpus naming a GPU the
    variable hides is an error naming it; every GPU excluded is the CPU plan."""
    from extractor.engines.pool import PoolEngine

    def plan(visible, **options):
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        engine = PoolEngine(_settings(tmp_path), EngineOptions(gpu_inventory=FOUR_GPUS, gpu_runtimes={"onnxruntime"},
                                                               **options))
        workers = engine.plan()
        return [(p.label, p.gpu) for p in workers if p.stage == "detect"], engine.summary.plan

    detect, said = plan(None)
    assert detect == [("detect-0", 0), ("detect-1", 1), ("detect-2", 2), ("detect-3", 3)]
    assert not any("CUDA_VISIBLE_DEVICES" in line for line in said)
    detect, said = plan("3,1")
    assert sorted(gpu for _, gpu in detect) == [1, 3]
    assert "CUDA_VISIBLE_DEVICES=3,1 leaves GPU(s) 3, 1 of the 4 nvidia-smi lists" in said
    assert plan("3,1", exclude_gpus=(3,))[0] == [("detect-0", 1)]
    detect, said = plan(None, exclude_gpus=(0, 2))
    assert detect == [("detect-0", 1), ("detect-1", 3)]
    assert "--gpus/--exclude-gpus leave GPU(s) 1, 3 of 0, 1, 2, 3" in said
    assert plan(None, gpus=[2])[0] == [("detect-0", 2)]
    for visible, options in ((None, {"exclude_gpus": (0, 1, 2, 3)}), (None, {"gpus": []}), ("", {}), ("-1", {})):
        detect, said = plan(visible, **options)
        assert detect == [("detect-0", None)], (visible, options)
        assert "no GPU to use: every worker runs on the CPU" in said
    with pytest.raises(PlanError, match="--gpus names GPU 0 but CUDA_VISIBLE_DEVICES=3,1 leaves 1, 3"):
        plan("3,1", gpus=[0])
    with pytest.raises(PlanError, match="--exclude-gpus names GPU 5 but the machine has 0, 1, 2, 3"):
        plan(None, exclude_gpus=(5,))


def test_a_worker_numbers_gpus_as_nvidia_smi_does(monkeypatch):
    """CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi, and so the plan, in PCI
    bus order. On a workstation of two kinds of GPU, "GPU 1" of the plan would be CUDA's GPU 0."""
    import cv2

    from extractor.workers.devices import WorkerPlan

    threads = cv2.getNumThreads()
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "CUDA_DEVICE_ORDER"})
    try:
        apply_device_plan(WorkerPlan("detect", 0, 1, 2500, 1, 24000, "onnxruntime"))
        assert (os.environ["CUDA_DEVICE_ORDER"], os.environ["CUDA_VISIBLE_DEVICES"]) == ("PCI_BUS_ID", "1")
    finally:
        cv2.setNumThreads(threads)


def test_in_one_process_a_gpu_no_installed_runtime_can_use_leaves_the_detector_on_onnx_runtime(tmp_path,
                                                                                                monkeypatch):
    """The single-process engine and the Python API place no worker: CenterFace's ``auto`` runtime
    chooses in the process. Where nvidia-smi lists GPUs but the install has no runtime with GPU
    support (tensorflow-cpu, CPU ONNX Runtime), it must be the CPU's best, ONNX Runtime, not Keras
    on tensorflow-cpu (slower, and TensorFlow's start-up with it)."""
    from extractor.models.runners import OnnxRuntimeRunner
    from extractor.plugins import registry

    monkeypatch.setenv("PATH", f"{stand_in_nvidia_smi(tmp_path)}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    detector = registry.create("detect", "centerface")
    detector.load()
    assert isinstance(detector.runner, OnnxRuntimeRunner) and not detector.runner.on_gpu


def test_one_process_sees_only_the_gpus_the_run_may_use(tmp_path, monkeypatch):
    """The single-process engine places no worker, so it narrows its own view: with GPUs listed,
    --gpus, --exclude-gpus (faceswap's -X) and the user's CUDA_VISIBLE_DEVICES decide which it sees
    (none: the CPU), numbered as nvidia-smi numbers them; the variables are put back after."""
    from extractor.engines.single import run_single_process

    monkeypatch.setenv("PATH", f"{stand_in_nvidia_smi(tmp_path)}:{os.environ['PATH']}")
    seen = []

    def run(name, **options):
        seen.clear()
        options = EngineOptions(on_frame_written=lambda _: seen.append(
            (os.environ.get("CUDA_DEVICE_ORDER"), os.environ.get("CUDA_VISIBLE_DEVICES"))), **options)
        run_single_process(_settings(tmp_path / name), options)
        return seen[0]

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert run("all") == ("PCI_BUS_ID", "0,1")
    assert run("none", gpus=[]) == ("PCI_BUS_ID", "")
    assert run("excluded", exclude_gpus=(0,)) == ("PCI_BUS_ID", "1")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and "CUDA_DEVICE_ORDER" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert run("user", gpus=[1]) == ("PCI_BUS_ID", "1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(PlanError, match="--gpus names GPU 0 but CUDA_VISIBLE_DEVICES=1 leaves 1"):
        run("hidden", gpus=[0])
    # a machine without GPUs: a GPU named is refused before any output, as the pool refuses it
    with pytest.raises(PlanError, match="--exclude-gpus names GPU 1 but the machine has none"):
        run("cpu", exclude_gpus=(1,), gpu_inventory=[])
    assert not (tmp_path / "cpu").exists()
