"""The fast path: small JSON calls answered straight from aiohttp's protocol, without its
per-request machinery.

aiohttp serves a request with a new task, a `Request`, a routing pass, the middleware chain, a
`Response` and a `StreamWriter`: about 40 µs of CPU on this machine for a call whose decoding and
handling by the master core take 4 (bench/scheduler_calls.py, docs/benchmarks.md). A scheduler
posts three calls per task it launches, so that shell was most of the master's CPU per launch.
Here a route may also register a *fast* handler: a plain function from (headers, body) to a
`Reply`, called from `data_received` as soon as a request is complete, whose answer is written
on the transport at once, byte for byte what aiohttp would have written for the same `Reply`
(status line, Content-Type and Content-Length, Date, Server; tests/test_net_fastpath.py
compares the two).

Only the plain case takes it; anything else goes through aiohttp as before, unchanged:
- the connection is idle (aiohttp's request loop waits for the next request and has none
  queued), so answers keep the order of the requests;
- `POST` on exactly a registered path (no query, no trailing `/`), HTTP/1.1 keep-alive, no
  `Expect`, `Upgrade`, `Transfer-Encoding` or `Content-Encoding`, a `Content-Length` above 0;
  the body is awaited if it comes in a later segment than the head (Python's `http.client`,
  pymesos's, writes them apart), up to 64 KiB (aiohttp's read buffer), larger ones are
  aiohttp's;
- the route's own `accepts(headers)` (the master's: it leads, `--rate_limits` is off, the call
  carries a `Mesos-Stream-Id`...), and no access log configured;
- the transport is not paused for writing (a client that does not read its answers gets
  aiohttp's flow control).
Every request either way is timed into the same per-endpoint histogram (`HttpTimings`).

Install: `add_fast_route(app, path, route)` while building the application, and serve it with
`FastPathRunner` instead of `web.AppRunner` (an application served by a plain `AppRunner`
answers everything through aiohttp, which the tests use to compare the two).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from mezzo.net.http import Reply
from mezzo.net.http_metrics import HttpTimings

__all__ = ["FastPathRunner", "FastRoute", "add_fast_route", "render"]

log = logging.getLogger("aiohttp.server")  # where aiohttp logs a handler's exception


@dataclass(frozen=True)
class FastRoute:
    """A registered path's fast handler. `accepts` sees the headers only and must have no
    effect (False: aiohttp serves the request), and bounds the body's size (`Content-Length` is
    there, a positive integer, when it is called); `handle` must answer whatever the body is."""

    accepts: Callable[[Mapping[str, str]], bool]
    handle: Callable[[Mapping[str, str], bytes], Reply]
    timings: HttpTimings | None = None


_ROUTES = web.AppKey("mezzo_fast_routes", dict)


def add_fast_route(app: web.Application, path: str, route: FastRoute) -> None:
    """Also answer `POST path` with `route` when the request is plain (module docstring). The
    histogram label is `path`, as aiohttp's route for it is named."""
    routes = app.get(_ROUTES)
    if routes is None:
        routes = app[_ROUTES] = {}
    routes[path] = route


class FastPathRunner(web.AppRunner):
    """`web.AppRunner` whose connections take the fast routes of the application."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        routes: dict[str, FastRoute] | None = self.app.get(_ROUTES)
        if not routes:
            return server
        return _FastServer(routes, server)


class _FastServer(Server):
    """aiohttp's `Server` (the protocol factory), making `_FastPathHandler`s."""

    def __init__(self, routes: dict[str, FastRoute], plain: Server) -> None:
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation,
                         loop=plain._loop, **plain._kwargs)
        self.routes = routes
        self.answered = 0  # requests answered by the fast path

    def __call__(self) -> RequestHandler:
        handler = _FastPathHandler(self, loop=self._loop, **self._kwargs)
        handler.fast_routes = self.routes
        return handler


class _FastPathHandler(RequestHandler):
    """aiohttp's connection protocol, answering plain requests on fast routes itself."""

    fast_routes: dict[str, FastRoute]
    # The first request queued is a fast route's whose body has not all arrived: aiohttp's
    # request loop is not woken for it (the next `data_received` completes it).
    _holding = False

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done() or self._logging_enabled \
                or (self._messages and not self._holding):
            # aiohttp is serving a request on this connection (or has not started, or this
            # is a nested call from within the pass below): the next answers are its, in
            # order.
            super().data_received(data)
            return
        # Parse as aiohttp does, but without waking its request loop, for the whole pass:
        # reading a body can resume the parser (`StreamReader.read_nowait`), which re-enters
        # here and must only queue what it parses, for this loop to answer in order.
        self._waiter = None
        self._holding = False
        try:
            super().data_received(data)
            messages = self._messages
            while messages and not self._paused and self.transport is not None:
                message, payload = messages[0]
                route = _fast_route(self.fast_routes, message)
                if route is None:
                    break
                if not payload.is_eof():
                    # The head came alone (Python's http.client, pymesos's, sends the body
                    # in a second write): wait for the body before deciding, unless it is
                    # more than the payload buffers before pausing the transport.
                    assert isinstance(message, RawRequestMessage)
                    self._holding = int(message.headers["Content-Length"]) <= self._read_bufsize
                    break
                assert isinstance(message, RawRequestMessage)
                messages.popleft()
                if self._parser is not None:
                    self._parser.message_consumed()
                self._answer(route, message, payload)
        finally:
            self._waiter = waiter
        if self._force_close or self._close:
            waiter.cancel()  # what `force_close()` / `close()` do to the waiter it did not see
        elif self._messages and not self._holding:
            waiter.set_result(None)  # the rest is aiohttp's
        elif not self._messages and self._buffer_paused:
            self._resume_reading_if_drained()

    def _answer(self, route: FastRoute, message: RawRequestMessage, payload: StreamReader) -> None:
        started = time.perf_counter()
        server = self._manager
        assert isinstance(server, _FastServer)
        server.requests_count += 1
        server.answered += 1
        try:
            reply = route.handle(message.headers, payload.read_nowait())
        except Exception:  # a bug: answered as aiohttp answers a handler's exception
            log.exception("Error handling request from %s", _peer(self.transport))
            reply = None
        if route.timings is not None:
            route.timings.observe(message.path, "POST", time.perf_counter() - started)
        transport = self.transport
        assert transport is not None
        if reply is None:
            transport.write(_internal_error())
            self.force_close()
            return
        transport.write(render(reply))
        # aiohttp's keep-alive timer, as its request loop sets it after each answer.
        loop = self._loop
        close_time = loop.time() + self._keepalive_timeout
        self._next_keepalive_close_time = close_time
        if self._keepalive_handle is None:
            self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)


def _fast_route(routes: dict[str, FastRoute], message: Any) -> FastRoute | None:
    route = routes.get(message.path) if isinstance(message, RawRequestMessage) else None
    if route is None or message.method != "POST" or message.version != HttpVersion11 \
            or message.should_close or message.upgrade or message.chunked:
        return None
    headers = message.headers
    if "Content-Encoding" in headers or "Expect" in headers or "Transfer-Encoding" in headers:
        return None
    length = headers.get("Content-Length")
    if length is None or int(length) == 0:
        return None
    return route if route.accepts(headers) else None


def _peer(transport: asyncio.BaseTransport | None) -> Any:
    return transport.get_extra_info("peername") if transport is not None else None


# What aiohttp answers when a handler raises (`RequestHandler.handle_error`), connection closed.
_INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"


def _internal_error() -> bytes:
    body = _INTERNAL_ERROR.encode()
    return (f"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nDate: {rfc822_formatted_time()}\r\n"
            f"Server: {SERVER_SOFTWARE}\r\n\r\n").encode() + body


# Status lines, and the last bodiless answer of each status (the Date changes once a second).
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_bodiless: dict[int, tuple[str, bytes]] = {}


def render(reply: Reply) -> bytes:
    """The bytes aiohttp writes for `reply.response()` to an HTTP/1.1 keep-alive request."""
    date = rfc822_formatted_time()
    if reply.message is None and not reply.headers:
        cached = _bodiless.get(reply.status)
        if cached is not None and cached[0] == date:
            return cached[1]
        head = (f"{_STATUS_LINES[reply.status]}Content-Length: 0\r\nDate: {date}\r\n"
                f"Server: {SERVER_SOFTWARE}\r\n\r\n").encode()
        _bodiless[reply.status] = (date, head)
        return head
    extra = "".join(f"{name}: {value}\r\n" for name, value in (reply.headers or {}).items())
    if reply.message is None:
        return (f"{_STATUS_LINES[reply.status]}{extra}Content-Length: 0\r\nDate: {date}\r\n"
                f"Server: {SERVER_SOFTWARE}\r\n\r\n").encode()
    body = reply.message.encode()
    return (f"{_STATUS_LINES[reply.status]}{extra}Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nDate: {date}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n"
            ).encode() + body
