"""Garbage-collector settings for the long-running daemons (master, agent).

A master holds hundreds of thousands of long-lived objects (tasks, statuses, offers, resources)
and allocates short-lived ones at a high rate (every call, event and record). With CPython's
default thresholds (700, 10, 10) the young generation is collected every 700 allocations and
the older generations, which hold the whole state, far too often. At thousands of task launches
a second these settings took bench/launch.py from 3,760-4,280 to 4,440-5,020 tasks/s on two
CPUs (docs/benchmarks.md). Raising the young threshold
makes each collection do more useful work per pass; freezing what exists after start-up takes
the imported modules and flag objects out of every later collection. Cycles are still
collected, so memory stays bounded.

Nothing is frozen later on (e.g. the state after each full collection): a frozen object that
later becomes part of cyclic garbage is never freed, and a closed agent connection leaves ~46
such objects (its exception, traceback and frames, transport, request; docs/benchmarks.md,
"Garbage-collector pauses"). The length of a full collection, the longest pause, is kept down
instead by keeping the master's per-agent and per-task records out of the collector's sight
(`gc=False` records where no cycle is possible).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)


def tune_for_daemon() -> None:
    """Freeze start-up objects and raise the collection thresholds (call once, early)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


# Collections at least this long are logged: a daemon's event loop stands still meanwhile
# (a full collection of a master at 9,000 agents took 92-156 ms in process on a 2-vCPU VM).
LONG_PAUSE = 0.05

log = logging.getLogger("mezzo.gc")


class PauseWatch:
    """A `gc.callbacks` hook: logs (INFO) each collection that took at least `threshold`
    seconds, with its generation, so that a long event-loop stall can be told from a long
    collection; keeps the longest seen."""

    def __init__(self, threshold: float = LONG_PAUSE, clock: Callable[[], float] = time.perf_counter) -> None:
        self.threshold = threshold
        self.clock = clock
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self.clock()
            return
        took = self.clock() - self._started
        self.longest = max(self.longest, took)
        if took >= self.threshold:
            log.info("garbage collection of generation %d took %.0f ms (%d collected)",
                     info.get("generation", -1), took * 1000, info.get("collected", 0))


def watch_pauses(threshold: float = LONG_PAUSE) -> PauseWatch:
    """Install a `PauseWatch` (once per process: a second call returns the first)."""
    for callback in gc.callbacks:
        if isinstance(callback, PauseWatch):
            return callback
    watch = PauseWatch(threshold)
    gc.callbacks.append(watch)
    return watch
