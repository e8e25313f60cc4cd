"""Progress of a run: per-stage counters, a live display on a terminal, and peak memory.

The display redraws one bar per stage in place (frames detected, faces aligned and masked,
frames written, frames/s, ETA) on a terminal. Where stderr is not one (a batch job's log, nohup,
a pipe) a run instead logs one line a minute (frames written, frames/s, time left): an hours-long
run says it is alive without filling its log with redraws. Memory of this process and its
children is sampled at the same pace for the final summary.
"""
from __future__ import annotations

import logging
import sys
import time

import psutil

BAR = 24
LOG_EVERY = 60.0  # seconds between progress lines where no live display is drawn
logger = logging.getLogger(__name__)


def total_rss() -> int:
    """Resident memory of this process and all its children, in bytes."""
    me = psutil.Process()
    total = 0
    for proc in [me] + me.children(recursive=True):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _bar(done: int, total: int | None) -> str:
    if not total:
        return " " * (BAR + 2)
    filled = min(BAR, int(BAR * done / total))
    return "[" + "#" * filled + "-" * (BAR - filled) + "]"


class Progress:
    def __init__(self, total_frames: int | None, stream=None, enabled: bool | None = None,
                 interval: float = 0.5, log_every: float | None = LOG_EVERY):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total_frames
        self.interval = interval
        self.log_every = None if self.enabled else log_every  # None: no progress lines
        self.start = self._logged = time.monotonic()
        self.counts = {"detected": 0, "faces": 0, "aligned": 0, "masked": 0, "written": 0}
        self.peak_rss = 0
        self._last = 0.0
        self._drawn_lines = 0

    def add(self, **deltas: int) -> None:
        for key, value in deltas.items():
            self.counts[key] += value
        self.tick()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.peak_rss = max(self.peak_rss, total_rss())
        if self.enabled:
            self._draw(now)
        elif self.log_every is not None and now - self._logged >= self.log_every and not force:
            self._logged = now
            logger.info("progress: %s", self.summary_line(now))

    def _rate_and_left(self, now: float | None) -> tuple[float, str]:
        """Frames written a second, and the time left at that rate ("?" where it cannot be told)."""
        written = self.counts["written"]
        rate = written / max((now or time.monotonic()) - self.start, 1e-6)
        if not self.total or rate <= 0:
            return rate, "?"
        return rate, time.strftime("%H:%M:%S", time.gmtime(max(0, self.total - written) / rate))

    def summary_line(self, now: float | None = None) -> str:
        """Frames written (of how many), frames/s and the time left, in one line."""
        written, (rate, left) = self.counts["written"], self._rate_and_left(now)
        if not self.total:
            return f"{written} frames written, {rate:.1f} frames/s"
        return f"{written} of {self.total} frames written ({100 * written / self.total:.1f} %), {rate:.1f} " \
               f"frames/s, {left} left"

    def lines(self, now: float | None = None) -> list[str]:
        """The display's lines (also what tests read)."""
        c = self.counts
        rate, eta = self._rate_and_left(now)
        total = self.total or "?"
        return [
            f"detect  {_bar(c['detected'], self.total)} {c['detected']}/{total} frames, {c['faces']} faces found",
            f"align   {_bar(c['aligned'], c['faces'])} {c['aligned']}/{c['faces']} faces",
            f"mask    {_bar(c['masked'], c['faces'])} {c['masked']}/{c['faces']} faces",
            f"written {_bar(c['written'], self.total)} {c['written']}/{total} frames, {rate:.1f} frames/s, "
            f"ETA {eta}",
        ]

    def _draw(self, now: float) -> None:
        out = "".join("\x1b[1F" for _ in range(self._drawn_lines))
        out += "".join(f"\x1b[2K{line}\n" for line in self.lines(now))
        self.stream.write(out)
        self.stream.flush()
        self._drawn_lines = 4

    def close(self) -> None:
        self.tick(force=True)
