"""The coordinator's writing: finished frames prepared on helper threads, written in input order.

Preparing a frame (warping each face, encoding its PNG) is most of the coordinator's CPU: about
2-4 ms a face. On a GPU machine the coordinator is one process serving every worker, and it
became the limit (measured on an H200 with 16 cores: its main thread busy 91-93 % of a core at
81-97 frames/s, the detect workers idle). OpenCV's warp, numpy and ISA-L's deflate release the
GIL, so a few threads prepare frames side by side; writing (the PNG files, then the alignments
record) stays in the coordinator's thread, one frame after the other, in input order.

With no helper threads (the default where cores are few: on 2 cores two helpers gained nothing,
13.3-13.7 frames/s against 13.4-15.4 without) each frame is prepared and written at once.
"""
from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from extractor.media import ExtractMedia
from extractor.output import FrameWriter, PreparedFrame
from extractor.workers.limits import usable_cores

logger = logging.getLogger(__name__)
MIN_CORES_FOR_HELPERS = 8  # below this the workers keep the cores busy (nothing gained on 2 cores)
MAX_HELPERS = 4


def helper_threads(requested: int | None = None, cores: int | None = None) -> int:
    """``requested`` if given; else 0 on small machines, and a quarter of the cores, at most 4,
    on machines with 8 or more."""
    if requested is not None:
        return requested
    cores = cores or usable_cores()
    return 0 if cores < MIN_CORES_FOR_HELPERS else min(MAX_HELPERS, cores // 4)


class OrderedFrameWriter:
    """Takes finished frames in input order; writes each once prepared, still in that order.

    ``done`` (given with each frame) runs after the frame is written: the pool gives its frame
    slot back there, so the pixels a helper reads stay valid until then.
    """

    def __init__(self, writer: FrameWriter, helper_threads: int):
        self.writer = writer
        self.executor = (ThreadPoolExecutor(helper_threads, thread_name_prefix="extractor-prepare")
                         if helper_threads > 0 else None)
        self.pending: deque[tuple[Future, Callable[[], None]]] = deque()

    def submit(self, media: ExtractMedia, done: Callable[[], None]) -> None:
        if self.executor is None:
            self.writer.write(media)
            done()
            return
        self.writer.label_tracks(media)  # in input order, here; the preparations run side by side
        self.pending.append((self.executor.submit(self.writer.preparer.prepare, media), done))

    def write_ready(self, wait: bool = False) -> None:
        """Write the prepared frames at the head of the line (every pending frame if ``wait``).
        A frame whose preparation failed raises here, in order, after the frames before it."""
        while self.pending and (wait or self.pending[0][0].done()):
            self._write_head()

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def close(self) -> None:
        """End of the run, or a run stopping on an error: finish the preparations (they read frame
        slots that are released next; a few ms a frame) and write every frame handed over, in
        order, so finished work is kept whatever stops the run. A write failing here is logged:
        the error that stopped the run is the one the user sees."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        try:
            while self.pending and self.pending[0][0].exception() is None:
                self._write_head()
        except Exception as exc:  # noqa: BLE001 - the run already failed; keep its own error
            logger.warning("%d finished frame(s) could not be written while stopping: %s", len(self.pending), exc)
        self.pending.clear()

    def _write_head(self) -> None:
        future, done = self.pending.popleft()
        prepared: PreparedFrame = future.result()  # a failed preparation raises here, in order
        self.writer.commit(prepared)
        done()
