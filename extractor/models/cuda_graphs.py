"""CUDA graphs for a Keras model on PyTorch: one captured call per input shape, replayed.

PyTorch runs Keras layers eagerly, one Python dispatch per layer, which costs more than the GPU's
work for a small detector; a CUDA graph replays the captured kernels without that dispatch.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def torch_on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class CudaGraphCache:
    """PyTorch on a GPU: the model's call captured once per input shape as a CUDA graph, then
    replayed. PyTorch runs Keras layers eagerly, one Python dispatch per layer; measured on an
    H200, CenterFace at 640 px, batches of 4: 13.5 ms a frame eagerly, 1.6 replayed (the same
    outputs), and the pool with one detect worker 50.7 -> 132.6 frames/s.

    A shape is captured the second time it comes (a photo folder's one-off sizes stay eager and
    pay no capture); at most ``keep`` graphs are kept, the least recently used going first (and
    where sizes keep changing, after ``2 * keep`` such evictions, none at all). Each
    graph holds its activation memory (about what one eager call needs) inside the worker's
    budget, so an eager call for another shape may then not fit: the graphs are dropped and the
    call runs again; after a second time, or if a capture fails (memory, or an operation a graph
    cannot hold), the runner says so once and stays eager for good. Eager is always right.
    """

    def __init__(self, call: Callable[[Any], list], eager: Callable[[np.ndarray], list], keep: int = 2):
        self.call = call  # torch tensor in, torch tensors out: what is captured
        self.eager = eager  # numpy in, numpy out: the uncaptured path
        self.keep = keep
        self.seen: set[tuple] = set()
        self.graphs: dict[tuple, tuple] = {}  # shape -> (graph, static input, static outputs); oldest first
        self.drops = 0  # times the graphs were dropped to make room for an eager call
        self.evictions = 0  # graphs dropped to make room for another shape's
        self.disabled = False

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        shape = images.shape
        if not self.disabled and (shape in self.graphs or shape in self.seen):
            if shape in self.graphs or self._captured(shape):
                return self._replay(shape, images)
        self.seen.add(shape)
        return self._eager_making_room(images)

    def _replay(self, shape: tuple, images: np.ndarray) -> list[np.ndarray]:
        import torch

        graph, static_input, static_outputs = self.graphs.pop(shape)
        self.graphs[shape] = (graph, static_input, static_outputs)  # most recently used last
        static_input.copy_(torch.from_numpy(np.ascontiguousarray(images)))
        graph.replay()
        return [out.cpu().numpy() for out in static_outputs]

    def _eager_making_room(self, images: np.ndarray) -> list[np.ndarray]:
        import torch

        try:
            return self.eager(images)
        except torch.OutOfMemoryError:
            if not self.graphs:
                raise
        self.drops += 1
        self._give_up("its graphs left no room in the budget for other frame sizes" if self.drops > 1 else None)
        return self.eager(images)

    def _captured(self, shape: tuple) -> bool:
        while len(self.graphs) >= self.keep:
            del self.graphs[next(iter(self.graphs))]
            self.evictions += 1
        if self.evictions > 2 * self.keep:  # sizes keep changing: each capture would cost 3 eager calls
            self._give_up("the frame sizes change too often for graphs to pay")
            return False
        try:
            self.graphs[shape] = self._capture(shape)
            return True
        except Exception as exc:  # noqa: BLE001 - whatever stops a capture, eager is always right
            why = f"capture failed: {str(exc).splitlines()[0][:200]}"
        self._give_up(why)  # out of the handler: its traceback no longer holds the graph's memory
        return False

    def _capture(self, shape: tuple) -> tuple:
        import torch

        static_input = torch.zeros(shape, dtype=torch.float32, device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode():
            with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
                for _ in range(2):
                    self.call(static_input)
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # eager calls' cached blocks back to the budget, for the graph's pool
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_outputs = self.call(static_input)
        return graph, static_input, static_outputs

    def _give_up(self, why: str | None) -> None:
        """Drop every graph (their memory back to the budget); with a reason, stay eager for good."""
        import gc
        import logging

        import torch

        self.graphs.clear()
        self.seen.clear()
        gc.collect()
        torch.cuda.empty_cache()
        if why:
            self.disabled = True
            logging.getLogger(__name__).warning("CUDA graphs off for this worker (%s); running eagerly", why)
