"""The engines, side by side, one entry signature: ``run(RunSettings, EngineOptions) -> RunSummary``.

- ``single``: every stage in this process (the baseline, easiest to debug);
- ``pool``: a worker process per stage worker on this machine, frames in one shared block;
- ``ray``: the same stages as Ray Data ``map_batches`` on a Ray cluster (``pip install 'extractor[ray]'``).
"""
from __future__ import annotations

from typing import Callable

from extractor.run_settings import EngineOptions, RunSettings, RunSummary

ENGINES = ("pool", "single", "ray")


def engine(name: str) -> Callable[[RunSettings, EngineOptions], RunSummary]:
    """The entry point of an engine, imported only when chosen (Ray is an optional extra)."""
    if name == "single":
        from extractor.engines.single import run_single_process

        return run_single_process
    if name == "pool":
        from extractor.engines.pool import run_pool

        return run_pool
    if name == "ray":
        from extractor.engines.ray_data import run_ray

        return run_ray
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
