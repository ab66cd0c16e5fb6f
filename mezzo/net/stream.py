"""Server side of the v1 streaming responses (scheduler, executor, operator, agent streams).

A `RecordStream` owns one chunked HTTP response. Producers call `send()` from the event loop;
it never blocks: records are queued and a writer task drains the queue, so a handler (for
example pymesos issuing ACKNOWLEDGE from the thread that reads the stream, spec §2.7) never
waits on a slow reader. A record queued alone is written as one chunk (`<length>\\n<json>`);
when several are waiting (a busy master sends thousands of records a second), the writer sends
them all in one chunk and one system call. RecordIO is defined over the byte stream, not over
HTTP chunks: pymesos, the mezzo SDKs and Mesos's own decoders all split records by their
length prefix.

The stream ends when the server calls `close()`, when the client goes away (a write fails or
the transport closes), or when the queue overflows (a client that stopped reading). `closed`
is a future that completes then; owners watch it to mark the subscriber disconnected.

`serve_subscription` is the one way a handler opens a stream for a subscriber (a framework, an
agent, an operator-API client): it refuses a request whose response cannot be a stream before
anything is registered, registers the owner, watches the stream's end *before* the response
starts, and if the response cannot start (the client reset the connection during the
handshake) the stream ends at once, so the owner never stays registered on a stream that
never opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from mezzo.api.recordio import encode_record
from mezzo.net.http import text_response

log = logging.getLogger(__name__)

# Records queued for a client that reads nothing; past this the stream is closed so that a
# stuck subscriber cannot grow the server's memory without bound.
DEFAULT_MAX_QUEUED = 100_000
# How often idle streams' clients are checked to be still connected (one timer for all).
IDLE_CHECK_SECONDS = 0.5
# How many idle streams one check looks at (the rest wait for the next ticks).
IDLE_CHECK_BATCH = 1000


class RecordStream:
    """One open RecordIO stream on a chunked 200 response."""

    def __init__(
        self,
        request: web.Request,
        *,
        headers: Mapping[str, str] | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._request = request
        self._response = web.StreamResponse(status=200, headers=dict(headers or {}))
        self._response.content_type = "application/json"
        self._response.enable_chunked_encoding()
        # Encoded records waiting for the writer; None marks the end of the stream.
        self._queue: deque[bytes | None] = deque()
        self._wakeup: asyncio.Future[None] | None = None  # the idle writer waits on it
        self._max_queued = max_queued
        self._writer: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._closing_reason = "closed by server"

    def set_header(self, name: str, value: str) -> None:
        """Add a response header; only before `open()` (headers go out with the first byte)."""
        self._response.headers[name] = value

    async def open(self) -> bool:
        """Send the response headers and start the writer. False if the response cannot
        start (the client went away): the stream has then ended ("client disconnected")."""
        try:
            await self._response.prepare(self._request)
        except ConnectionError:
            self._finish("client disconnected")
            return False
        self._writer = asyncio.create_task(self._write_loop())
        return True

    @property
    def response(self) -> web.StreamResponse:
        return self._response

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    def send(self, payload: bytes) -> bool:
        """Queue one record (already-encoded JSON). Returns False if the stream is closed."""
        if self.closed.done():
            return False
        if len(self._queue) >= self._max_queued:
            self._finish("overflow: the client stopped reading")
            return False
        self._queue.append(encode_record(payload))
        self._wake()
        return True

    def close(self, reason: str = "closed by server") -> None:
        """Flush what is queued, then end the response."""
        if not self.closed.done():
            self._queue.append(None)
            self._closing_reason = reason
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def serve(self) -> web.StreamResponse:
        """Wait until the stream ends; the handler returns the result to aiohttp."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.closed)
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        return self._response

    async def _write_loop(self) -> None:
        reason = "closed by server"
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not queue:
                    # Idle: wait for a record, or for the shared check to find the client gone
                    # (it wakes us; the check below then ends the stream).
                    self._wakeup = loop.create_future()
                    idle = _idle_streams()
                    idle.add(self)
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                        idle.discard(self)
                # Everything queued so far goes out in one write; a None ends the stream.
                batch: list[bytes] = []
                ending = False
                while queue:
                    item = queue.popleft()
                    if item is None:
                        ending = True
                        break
                    batch.append(item)
                if self._client_gone():
                    reason = "client disconnected"
                    break
                if batch:
                    await self._response.write(batch[0] if len(batch) == 1 else b"".join(batch))
                if ending:
                    reason = self._closing_reason
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self._response.write_eof()
                    break
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            reason = "client disconnected"
        finally:
            self._finish(reason)

    def _client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if reason.startswith("overflow") or reason == "client disconnected":
            transport = self._request.transport
            if transport is not None:
                transport.close()


class _IdleStreams:
    """The idle streams of one event loop, whose clients one timer checks every
    `IDLE_CHECK_SECONDS` (waking the writer of each one found gone). One timer for all rather
    than one per stream: a master holds a stream per agent, and at 9,000 agents per-stream
    timers were 18,000 wake-ups a second, most of an otherwise idle master's CPU
    (docs/benchmarks.md, "Scale"). Holds no reference to its loop, so it dies with it."""

    def __init__(self) -> None:
        self.streams: set[RecordStream] = set()
        self.timer: asyncio.TimerHandle | None = None
        self._round: list[RecordStream] = []  # this round's streams, checked a batch a tick
        self._cursor = 0

    def add(self, stream: RecordStream) -> None:
        self.streams.add(stream)
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(IDLE_CHECK_SECONDS, self._check)

    def discard(self, stream: RecordStream) -> None:
        self.streams.discard(stream)

    def _check(self) -> None:
        self.timer = None
        # At most IDLE_CHECK_BATCH streams a tick, round-robin: a bounded cost per tick, and a
        # gone client is still noticed within ceil(streams / batch) ticks.
        if self._cursor >= len(self._round):
            self._round, self._cursor = list(self.streams), 0
        batch = self._round[self._cursor : self._cursor + IDLE_CHECK_BATCH]
        self._cursor += IDLE_CHECK_BATCH
        for stream in [s for s in batch if s in self.streams and s._client_gone()]:
            stream._wake()
        if self.streams:
            self.timer = asyncio.get_running_loop().call_later(IDLE_CHECK_SECONDS, self._check)


_IDLE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _IdleStreams] = weakref.WeakKeyDictionary()


def _idle_streams() -> _IdleStreams:
    loop = asyncio.get_running_loop()
    idle = _IDLE.get(loop)
    if idle is None:
        idle = _IDLE[loop] = _IdleStreams()
    return idle


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What registering a stream's owner produced: the response headers to send, and what to
    call (once, with the reason) when the stream ends; `ended` is None when nothing was
    registered (a refusal the stream itself carries, then closes)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    ended: Callable[[str], None] | None = None


def streaming_problem(request: web.BaseRequest) -> web.Response | None:
    """The 400 for a request whose response cannot be a stream: the events go out in chunked
    transfer encoding, which HTTP/1.0 does not have."""
    if request.version < (1, 1):
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        return text_response(400, f"Streaming responses need HTTP/1.1; the request is {version}")
    return None


async def serve_subscription(
    request: web.Request,
    register: Callable[[RecordStream], Subscriber],
    *,
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> web.StreamResponse:
    """Open a stream for a subscriber and serve it until it ends (see the module docstring).

    `register(stream)` registers the owner (events it sends meanwhile are queued) and is
    called only for a request that can be streamed; `Subscriber.ended` runs when the stream
    ends, however it ends, including when the response never started."""
    problem = streaming_problem(request)
    if problem is not None:
        return problem
    stream = RecordStream(request, max_queued=max_queued)
    subscriber = register(stream)
    for name, value in subscriber.headers.items():
        stream.set_header(name, value)
    ended = subscriber.ended
    if ended is not None:
        stream.closed.add_done_callback(lambda closed: ended(closed.result()))
    if not await stream.open():
        log.info("%s %s: the client went away before the stream started", request.method, request.path)
        return stream.response
    return await stream.serve()
