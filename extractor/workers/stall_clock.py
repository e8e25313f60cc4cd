"""How long the coordinator has waited for the workers with nothing coming back: the stall
detector's clock (``--stall-timeout``).

Wall time since the last message would count a pause of the whole run (Ctrl-Z then ``fg``,
``kill -STOP``, a suspended VM) as the workers' stall, and stop the run the moment it resumed.
So each wait counts for at most ``MAX_STEP`` seconds: the coordinator waits for messages a fifth
of a second at a time, and a wait far longer than that means it was stopped itself. A worker
that freezes while the coordinator runs is still caught, one short wait after another.
"""
from __future__ import annotations

import time

MAX_STEP = 0.5  # seconds one wait may add: a few of the coordinator's 0.2 s waits


class StallClock:
    def __init__(self):
        self.restart()

    def restart(self) -> None:
        """A message came back: the workers are moving."""
        self.waited = 0.0
        self._last = time.monotonic()

    def tick(self) -> float:
        """Seconds waited since the last message, counting the time the coordinator was stopped
        as ``MAX_STEP`` at most."""
        now = time.monotonic()
        self.waited += min(now - self._last, MAX_STEP)
        self._last = now
        return self.waited
