"""The device planner on simulated GPU inventories (no GPU needed)."""
from __future__ import annotations

import pytest

from extractor.workers.devices import GpuInfo, PlanError, StageDemand, plan_devices


def _gpus(*free_mb):
    return [GpuInfo(i, f"sim-{i}", 24000, free) for i, free in enumerate(free_mb)]


DEMANDS = [StageDemand("detect", 2, 2000, heavy=True), StageDemand("align", 1, None), StageDemand("mask", 1, 500)]


def test_no_gpu_runs_everything_on_cpu():
    plans, notes = plan_devices(DEMANDS, [], cpu_count=8)
    assert all(p.gpu is None for p in plans) and len(plans) == 4
    assert any("no GPU" in n for n in notes)
    # The heavy stage (detect) shares the 8 cores; the cheap ones get a thread each.
    assert [(p.stage, p.cpu_threads) for p in plans] == [("detect", 4), ("detect", 4), ("align", 1), ("mask", 1)]


def test_budget_that_cannot_hold_one_batch_is_refused():
    demand = StageDemand("detect", 1, 800, batch_mb=1300, heavy=True, runtime="keras/torch")
    with pytest.raises(PlanError, match="800 MB budget cannot hold one batch .1300 MB.*at least 1300"):
        plan_devices([demand], _gpus(8000))
    plans, _ = plan_devices([StageDemand("detect", 2, 1300, batch_mb=1300, runtime="keras/torch")], _gpus(8000))
    assert [(p.gpu, p.memory_mb, p.gpu_total_mb) for p in plans] == [(0, 1300, 24000), (0, 1300, 24000)]
    assert "GPU 0 with a 1300 MB budget [keras/torch]" in plans[0].describe()


def test_one_gpu_shares_between_stages():
    plans, notes = plan_devices(DEMANDS, _gpus(8000))
    gpu_plans = [p for p in plans if p.gpu is not None]
    assert [(p.stage, p.gpu, p.memory_mb) for p in gpu_plans] == [("detect", 0, 2000), ("detect", 0, 2000),
                                                                    ("mask", 0, 500)]
    assert [p for p in plans if p.stage == "align"][0].gpu is None  # CPU-only plugin stays on CPU
    assert notes == []


def test_two_gpus_spread_workers_to_most_free_memory():
    plans, _ = plan_devices(DEMANDS, _gpus(6000, 9000))
    detect = [p.gpu for p in plans if p.stage == "detect"]
    assert detect == [1, 0]  # most free first, then the GPU with no worker yet
    mask = [p.gpu for p in plans if p.stage == "mask"]
    assert mask == [1]  # one worker on each: then most memory left (7000 vs 4000)


def test_four_gpus_of_different_free_memory():
    demands = [StageDemand("detect", 4, 3000), StageDemand("mask", 2, 1000)]
    plans, _ = plan_devices(demands, _gpus(4000, 16000, 3500, 12000))
    used = {}
    for p in plans:
        used[p.gpu] = used.get(p.gpu, 0) + p.memory_mb
    free = {0: 4000, 1: 16000, 2: 3500, 3: 12000}
    assert all(used[g] <= free[g] for g in used)
    assert len({p.gpu for p in plans if p.stage == "detect"}) >= 2  # spread, not stacked


def test_budget_that_does_not_fit_falls_back_to_fewer_workers():
    plans, notes = plan_devices([StageDemand("detect", 3, 3000)], _gpus(7000))
    assert len(plans) == 2
    assert "only 2 of 3 workers fit" in notes[0]


def test_each_worker_also_holds_its_cuda_context():
    """A budget caps the framework's allocator; the CUDA context comes on top (measured about
    500 MB a process on an H200): three 1500 MB workers do not fit in 5000 MB, two do."""
    plans, notes = plan_devices([StageDemand("detect", 3, 1500)], _gpus(5000))
    assert len(plans) == 2 and "only 2 of 3 workers fit" in notes[0]


def test_budget_that_fits_nowhere_is_a_clear_error():
    with pytest.raises(PlanError, match="detect: one worker needs 9000 MB"):
        plan_devices([StageDemand("detect", 1, 9000)], _gpus(4000, 8000))


def test_gpu_selection():
    plans, _ = plan_devices([StageDemand("detect", 2, 1000)], _gpus(8000, 8000, 8000), selected=[2])
    assert {p.gpu for p in plans} == {2}
    with pytest.raises(PlanError, match="--gpus names GPU"):
        plan_devices(DEMANDS, _gpus(8000), selected=[3])
