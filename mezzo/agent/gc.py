"""Sandbox garbage collection: what to remove when (Mesos's `src/slave/gc.cpp`), no I/O.

`GcSchedule` maps paths (finished executors' run sandboxes and their checkpoint directories) to
removal times on the wall clock. A path is scheduled ``gc_delay`` after it was last modified
(Mesos: ``delay = gc_delay - age(mtime)``), so sandboxes found after an agent restart keep
their age. As the disk fills the agent prunes sooner: every ``--disk_watch_interval`` it reads
the disk usage ``u`` of the work_dir and removes every path whose removal is due within
``gc_delay - max_allowed_age(u)``, where ``max_allowed_age = gc_delay * max(0, 1 -
gc_disk_headroom - u)``: at ``u >= 1 - headroom`` everything scheduled goes at once.

The shell (`mezzo.agent.agent`) feeds it (executor completed, recovery), reads mtimes and
disk usage, and removes the paths `due` / `prune` return, off the event loop.
"""

from __future__ import annotations

import heapq


def max_allowed_age(gc_delay: float, headroom: float, usage: float) -> float:
    """How old a finished sandbox may get at disk usage ``usage`` (0..1) (Mesos's formula)."""
    return gc_delay * max(0.0, 1.0 - headroom - usage)


class GcSchedule:
    """Paths and when to remove them (seconds on the wall clock)."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # lazily cleaned: entries may be stale

    def schedule(self, path: str, delay: float, now: float) -> None:
        """Remove ``path`` ``delay`` seconds from ``now`` (at once if ``delay`` <= 0); a
        path scheduled again keeps only the new time."""
        when = now + max(0.0, delay)
        self._due[path] = when
        heapq.heappush(self._heap, (when, path))

    def unschedule(self, path: str) -> bool:
        """Keep ``path`` after all (it is in use again); True if it was scheduled."""
        return self._due.pop(path, None) is not None

    def scheduled(self) -> dict[str, float]:
        return dict(self._due)

    def next_deadline(self) -> float | None:
        while self._heap:
            when, path = self._heap[0]
            if self._due.get(path) == when:
                return when
            heapq.heappop(self._heap)
        return None

    def due(self, now: float) -> list[str]:
        """Take the paths whose removal time has come (oldest first)."""
        out: list[str] = []
        while (when := self.next_deadline()) is not None and when <= now:
            _, path = heapq.heappop(self._heap)
            del self._due[path]
            out.append(path)
        return out

    def prune(self, within: float, now: float) -> list[str]:
        """Take the paths due within ``within`` seconds of ``now`` (disk filling up)."""
        return self.due(now + within)

    def prune_for_usage(
        self, gc_delay: float, headroom: float, usage: float, now: float
    ) -> list[str]:
        """`prune` as the agent does after reading disk usage ``usage``: a sandbox is
        scheduled ``gc_delay`` after its last change, so this takes those older than the
        allowed age."""
        return self.prune(gc_delay - max_allowed_age(gc_delay, headroom, usage), now)
