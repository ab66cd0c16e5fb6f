"""`DeadlineQueue`: per-key deadlines, earliest first, for the master's per-agent timers.

The master pings every agent every `--agent_ping_timeout` and gives a disconnected agent
`--agent_reregister_timeout` to come back. Scanning every agent on each timer tick (and again
to find the next deadline) cost O(agents) per tick; with tens of thousands of agents whose
deadlines are spread over the ping interval, the timer loop wakes dozens of times a second,
and those scans became most of the master's CPU (the scalability simulation showed it). A
heap with lazy deletion makes a tick cost O(due · log agents).

Setting a key again replaces its deadline; stale heap entries are skipped when they surface.
"""

from __future__ import annotations

import heapq


class DeadlineQueue:
    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._current: dict[str, float] = {}

    def set(self, key: str, when: float) -> None:
        self._current[key] = when
        heapq.heappush(self._heap, (when, key))
        if len(self._heap) > 2 * len(self._current) + 64:
            self._compact()

    def discard(self, key: str) -> None:
        self._current.pop(key, None)

    def earliest(self) -> float | None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[str]:
        """Remove and return the keys whose deadline is at or before `now`, earliest first."""
        heap, current = self._heap, self._current
        due: list[str] = []
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if current.get(key) == when:
                del current[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        self._heap = [(when, key) for key, when in self._current.items()]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: str) -> bool:
        return key in self._current
