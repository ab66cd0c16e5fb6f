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

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)


def tune_for_daemon() -> None:
    """Freeze start-up objects and raise the collection thresholds (call once, early)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
