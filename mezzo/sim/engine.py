"""The discrete-event engine: a virtual clock and a queue of timed callbacks.

Time is a float of seconds (epoch-like, so the master core's timestamps look real). Events run
in time order; events due at the same instant run in the order they were scheduled (a
sequence number breaks ties), which makes every run with the same inputs replay exactly.
Nothing here reads the wall clock, sleeps or draws random numbers.

    engine = Engine()
    engine.after(1.5, print, "hello")       # a callback 1.5 virtual seconds from now
    engine.run(until=engine.now + 10)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from heapq import heappush
from typing import Any

START = 1_700_000_000.0


class SimClock:
    """The `mezzo.core.clock.Clock` the simulated components read: the engine's time."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def now(self) -> float:
        return self._engine.now

    def monotonic(self) -> float:
        return self._engine.now - START


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op (it stays in the heap until due)."""

    __slots__ = ("args", "fn", "when")

    def __init__(self, when: float, fn: Callable[..., Any] | None, args: tuple[Any, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args

    def cancel(self) -> None:
        self.fn = None

    @property
    def active(self) -> bool:
        return self.fn is not None


class Engine:
    def __init__(self, start: float = START) -> None:
        self.now = start
        self.start = start
        self.clock = SimClock(self)
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self.events_run = 0

    def at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run `fn(*args)` at virtual time `when` (not before now)."""
        if when < self.now:
            when = self.now
        timer = Timer(when, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def after(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        # `at(now + max(0, delay))` inlined: the hottest call of a large simulation.
        when = self.now + delay if delay > 0.0 else self.now
        timer = Timer(when, fn, args)
        self._seq += 1
        heappush(self._heap, (when, self._seq, timer))
        return timer

    def soon(self, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run after everything already due at this instant (an event-loop iteration)."""
        return self.at(self.now, fn, *args)

    @property
    def elapsed(self) -> float:
        return self.now - self.start

    def next_time(self) -> float | None:
        while self._heap and self._heap[0][2].fn is None:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Run the next live event; False when there is none."""
        heap = self._heap
        while heap:
            when, _seq, timer = heapq.heappop(heap)
            fn = timer.fn
            if fn is None:
                continue
            timer.fn = None
            self.now = when
            self.events_run += 1
            fn(*timer.args)
            return True
        return False

    def run(
        self,
        until: float | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        """Run events until virtual time `until` (the clock then reads `until`), until
        `stop()` is true (checked after each event), or until nothing is left to do."""
        heap = self._heap
        checked = 0
        while heap:
            when, _seq, timer = heap[0]
            if until is not None and when > until:
                break
            heapq.heappop(heap)
            fn = timer.fn
            if fn is None:
                continue
            timer.fn = None
            self.now = when
            self.events_run += 1
            fn(*timer.args)
            if stop is not None and stop():
                return
            checked += 1
            if progress is not None and checked % 2048 == 0:
                progress(self.now)
        if until is not None and until > self.now:
            self.now = until
