"""An asyncio event loop on a FakeClock that jumps to the next timer when it has nothing to do.

Like trio's `MockClock(autojump_threshold=...)`: the loop's time is `FakeClock.monotonic()`,
and whenever the loop would block waiting for its next timer, it first polls its sockets and
pipes for up to `threshold` *real* seconds (0 by default: just a poll); if none is ready, it
moves the clock to that timer instead of sleeping. So `await asyncio.sleep(3600)`, a 60 s
registration timeout or a 10 s retry backoff happen at once in real time while code that waits
on real I/O (loopback HTTP, a child's pidfd) still gets it. With nothing scheduled at all the
loop blocks on I/O for real, as usual.

A shell under test must read time from the same clock: pass the `FakeClock` to it (the agent
shell arms its timer from `clock.monotonic()`, which is this loop's `time()`).

    clock = FakeClock()
    run_autojump(main(clock), clock)        # or: with autojump_loop(clock) as loop: ...

Use a `threshold` > 0 when something outside the loop (a subprocess doing work) must get real
time before the clock may jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from mezzo.core.clock import FakeClock

T = TypeVar("T")

__all__ = ["AutojumpLoop", "autojump_loop", "run_autojump"]


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until a timer is due, moves the clock to it."""

    def __init__(self, inner: selectors.BaseSelector, clock: FakeClock, threshold: float) -> None:
        self._inner = inner
        self._clock = clock
        self._threshold = threshold

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            return self._inner.select(None)  # no timer at all: wait for I/O for real
        if timeout <= 0:
            return self._inner.select(0)
        ready = self._inner.select(min(timeout, self._threshold))
        if not ready:
            self._clock.advance(timeout)  # idle: jump to the next timer
        return ready

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class AutojumpLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose time is `clock.monotonic()` and which jumps when idle."""

    def __init__(self, clock: FakeClock, threshold: float = 0.0) -> None:
        super().__init__(_JumpingSelector(selectors.DefaultSelector(), clock, threshold))
        self.clock = clock

    def time(self) -> float:
        return self.clock.monotonic()


@contextlib.contextmanager
def autojump_loop(clock: FakeClock, threshold: float = 0.0) -> Iterator[AutojumpLoop]:
    """A fresh AutojumpLoop, set as the current loop, closed (with its async generators
    and the default executor shut down) on exit."""
    loop = AutojumpLoop(clock, threshold)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def run_autojump(main: Coroutine[Any, Any, T], clock: FakeClock, threshold: float = 0.0) -> T:
    """`asyncio.run` on an AutojumpLoop."""
    with autojump_loop(clock, threshold) as loop:
        return loop.run_until_complete(main)
