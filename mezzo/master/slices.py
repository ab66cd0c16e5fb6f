"""The event loop's share for the master's big documents (`/master/state`, GET_STATE and the
operator stream's SUBSCRIBED), which the HTTP shell makes in pieces on its one loop.

`Slices` paces the making: the pieces of one slice are made without a break, then `pause()`
lets everything else waiting on the loop run before the next slice. A fixed slice gives the
document a small share of a busy loop: at 9,000 agents the master's other work (launches, kills
and framework calls, 62 % of its CPU) filled tens of milliseconds between two 10 ms slices, so a
document of 0.3 s of CPU took seconds. Here a slice lasts as long as the other work of the
pause before it (the document gets about half of a busy loop, all of an idle one), at least
`minimum` and at most `maximum`: a request that arrives meanwhile waits for a couple of slices
and the work between them (its read, then its handler's step), which must stay under the 100 ms
of issue 12's "no loop stall".

It also counts where a document's time went (its own pieces, the loop's other work, waiting for
the client to take what was written), for the log line `served()` writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("mezzo.master.http")

MINIMUM_SLICE = 0.01
# With the slice as long as the other work before it, a request arriving meanwhile waits about
# two slices and two turns of other work: 4 x 25 ms at worst.
MAXIMUM_SLICE = 0.025
# Documents at least this big (DEBUG), or this slow (INFO), get a log line of where their time
# went.
LOGGED_BYTES = 4 << 20
LOGGED_SECONDS = 0.5


class Slices:
    """Pacing and accounting for one document; `clock`: the loop's (seconds)."""

    __slots__ = ("_clock", "_end", "_mark", "bytes", "making", "maximum", "minimum", "other",
                 "slices", "started", "writing")

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 minimum: float = MINIMUM_SLICE, maximum: float = MAXIMUM_SLICE) -> None:
        self._clock = clock
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.started = self._mark = clock()
        self._end = self.started + minimum
        self.making = 0.0  # seconds in the document's own slices
        self.other = 0.0  # seconds the pauses let other work run
        self.writing = 0.0  # seconds waiting for the client to take the written bytes
        self.slices = 1
        self.bytes = 0

    def due(self) -> bool:
        """Whether the current slice is used up."""
        return self._clock() >= self._end

    async def write(self, write: Callable[[bytes], Awaitable[Any]], data: bytes) -> None:
        """`await write(data)` (a response's write, which waits when the client lags),
        counted."""
        now = self._clock()
        self.making += now - self._mark
        self.bytes += len(data)
        await write(data)
        self._mark = self._clock()
        self.writing += self._mark - now

    async def pause(self) -> None:
        """Let everything else waiting on the loop run, then start the next slice: as long as
        what ran meanwhile, within [minimum, maximum]."""
        now = self._clock()
        self.making += now - self._mark
        await asyncio.sleep(0)
        self._mark = self._clock()
        other = self._mark - now
        self.other += other
        self.slices += 1
        self._end = self._mark + min(self.maximum, max(self.minimum, other))

    def finish(self) -> None:
        """The document is made: count its last slice."""
        now = self._clock()
        self.making += now - self._mark
        self._mark = now

    def served(self, what: str) -> None:
        """Log where a big or slow document's time went (INFO when slow, else DEBUG)."""
        total = self._clock() - self.started
        if self.bytes < LOGGED_BYTES and total < LOGGED_SECONDS:
            return
        log.log(logging.INFO if total >= LOGGED_SECONDS else logging.DEBUG,
                "%s: %.1f MB in %.2f s: making it %.2f s in %d slices, other work %.2f s, "
                "waiting for the client %.2f s", what, self.bytes / 1e6, total, self.making,
                self.slices, self.other, self.writing)
