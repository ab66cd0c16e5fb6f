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

A path may also register a *socket* route (`add_socket_route`): a plain WebSocket handshake
on it (`GET`, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, a valid
`Sec-WebSocket-Key`, version 13, no subprotocol asked, the route's `accepts(headers)` yes) is
answered `101 Switching Protocols` here, with the headers aiohttp writes, and the connection
goes to a `mezzo.net.message_socket.FrameSocket`, which reads the frames itself: aiohttp's
handler is detached as if the connection had been lost (its request loop ends, its keep-alive
timer is cancelled, the server forgets it). A plain TCP connection is then carried by a
`_SocketTransport` on a duplicate of its socket (asyncio's transport aborted on the original
descriptor), a TLS one by asyncio's transport, handed over (`set_protocol`). A connected agent
then costs its master a protocol object and a light transport, not a request, two tasks and a
dozen suspended coroutines (issue 12: each is walked by every full garbage collection), and a
message one `data_received`, not aiohttp's reader and a coroutine resumption. Any other handshake on the
path (authentication configured, a master not leading...) is aiohttp's, as before. The
handshake is timed into the histogram under `GET` (aiohttp's middleware leaves a socket's
out), each message under `WS` as `socket_message_observer` does.

Install: `add_fast_route(app, path, route)` while building the application, and serve it with
`FastPathRunner` instead of `web.AppRunner` (an application served by a plain `AppRunner`
answers everything through aiohttp, which the tests use to compare the two).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import socket as socketlib
import time
from asyncio.selector_events import BaseSelectorEventLoop
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
from mezzo.net.message_socket import (
    FIRST_MESSAGE_SECONDS,
    MAX_BUFFERED_BYTES,
    FrameSocket,
    Register,
)

__all__ = ["FastPathRunner", "FastRoute", "SocketRoute", "add_fast_route", "add_socket_route",
           "render"]

log = logging.getLogger("aiohttp.server")  # where aiohttp logs a handler's exception


@dataclass(frozen=True)
class FastRoute:
    """A registered path's fast handler. `accepts` sees the headers only and must have no
    effect (False: aiohttp serves the request), and bounds the body's size (`Content-Length` is
    there, a positive integer, when it is called); `handle` must answer whatever the body is."""

    accepts: Callable[[Mapping[str, str]], bool]
    handle: Callable[[Mapping[str, str], bytes], Reply]
    timings: HttpTimings | None = None


@dataclass(frozen=True)
class SocketRoute:
    """A registered path's fast WebSocket. `accepts` sees the handshake's headers only and
    must have no effect (False: aiohttp serves it); `open(headers, remote, observe)` gives
    what the socket's first message goes to (`serve_socket`'s `register`), `remote` being the
    client's address and `observe` what times each message (None without the histogram)."""

    accepts: Callable[[Mapping[str, str]], bool]
    open: Callable[[Mapping[str, str], str | None, Callable[[float], None] | None], Register]
    timings: HttpTimings | None = None
    first_message_seconds: float = FIRST_MESSAGE_SECONDS
    max_buffered: int = MAX_BUFFERED_BYTES
    # A plain TCP connection is carried on by a `_SocketTransport` (False: asyncio's own
    # transport is kept, as a TLS connection's always is).
    own_transport: bool = True


_ROUTES = web.AppKey("mezzo_fast_routes", dict)
_SOCKET_ROUTES = web.AppKey("mezzo_socket_routes", dict)


def add_fast_route(app: web.Application, path: str, route: FastRoute) -> None:
    """Also answer `POST path` with `route` when the request is plain (module docstring). The
    histogram label is `path`, as aiohttp's route for it is named."""
    routes = app.get(_ROUTES)
    if routes is None:
        routes = app[_ROUTES] = {}
    routes[path] = route


def add_socket_route(app: web.Application, path: str, route: SocketRoute) -> None:
    """Also take a plain WebSocket handshake on `GET path` with `route` (module docstring)."""
    routes = app.get(_SOCKET_ROUTES)
    if routes is None:
        routes = app[_SOCKET_ROUTES] = {}
    routes[path] = route


class FastPathRunner(web.AppRunner):
    """`web.AppRunner` whose connections take the fast routes of the application."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        routes: dict[str, FastRoute] = self.app.get(_ROUTES) or {}
        socket_routes: dict[str, SocketRoute] = self.app.get(_SOCKET_ROUTES) or {}
        if not routes and not socket_routes:
            return server
        return _FastServer(routes, socket_routes, server)


class _FastServer(Server):
    """aiohttp's `Server` (the protocol factory), making `_FastPathHandler`s; it also keeps
    the fast sockets open, to end them when it shuts down (aiohttp forgot their
    connections)."""

    def __init__(self, routes: dict[str, FastRoute], socket_routes: dict[str, SocketRoute],
                 plain: Server) -> None:
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation,
                         loop=plain._loop, **plain._kwargs)
        self.routes = routes
        self.socket_routes = socket_routes
        self.answered = 0  # requests answered by the fast path
        self.sockets: set[FrameSocket] = set()
        # The histogram's `observe` per (path, WS): one for all the path's sockets.
        self.observers: dict[str, Callable[[float], None] | None] = {}

    def __call__(self) -> RequestHandler:
        handler = _FastPathHandler(self, loop=self._loop, **self._kwargs)
        handler.fast_routes = self.routes
        handler.socket_routes = self.socket_routes
        return handler

    async def shutdown(self, timeout: float | None = None) -> None:
        for socket in list(self.sockets):
            socket.end_now("server shutting down")
        await asyncio.sleep(0)  # their transports' closing callbacks run (the sockets close)
        await super().shutdown(timeout)


class _FastPathHandler(RequestHandler):
    """aiohttp's connection protocol, answering plain requests on fast routes itself."""

    fast_routes: dict[str, FastRoute]
    socket_routes: dict[str, SocketRoute]
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
                socket_route = _socket_route(self.socket_routes, message)
                if socket_route is not None:
                    assert isinstance(message, RawRequestMessage)
                    messages.popleft()
                    self._upgrade(socket_route, message)
                    break  # the connection is no longer aiohttp's
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

    def _upgrade(self, route: SocketRoute, message: RawRequestMessage) -> None:
        """Answer the handshake, detach aiohttp's handler from the connection and hand the
        transport to a `FrameSocket`."""
        started = time.perf_counter()
        server = self._manager
        assert isinstance(server, _FastServer)
        server.requests_count += 1
        server.answered += 1
        transport = self.transport
        assert isinstance(transport, asyncio.Transport)
        headers = message.headers
        try:
            observe = server.observers[message.path]
        except KeyError:
            histogram = route.timings.metrics.http_seconds if route.timings is not None else None
            observe = server.observers[message.path] = (
                histogram.labels(message.path, "WS").observe if histogram is not None else None)
        try:
            peer = transport.get_extra_info("peername")
            remote = peer[0] if isinstance(peer, tuple) else None
            register = route.open(headers, remote, observe)
        except Exception:  # a bug: answered as aiohttp answers a handler's exception
            log.exception("Error handling request from %s", _peer(transport))
            transport.write(_internal_error())
            self.force_close()
            return
        transport.write(_switching(headers["Sec-WebSocket-Key"]))
        tail, self._message_tail = self._message_tail, b""
        # aiohttp's handler lets go of the connection as if it had been lost, but leaves the
        # transport open: its request loop ends (its waiter is cancelled when the pass in
        # `data_received` finishes), its keep-alive timer is cancelled, the server forgets it.
        self.transport = None
        RequestHandler.connection_lost(self, None)
        own = _own_transport(transport) if route.own_transport else None
        socket = FrameSocket(own or transport, register,
                             first_message_seconds=route.first_message_seconds,
                             max_buffered=route.max_buffered, registry=server.sockets)
        if own is not None:
            transport.abort()  # asyncio's, on its own descriptor: the connection is `own`'s
            own.start(socket)
        else:
            transport.set_protocol(socket)
        if route.timings is not None:
            route.timings.observe(message.path, "GET", time.perf_counter() - started)
        if tail:
            socket.data_received(tail)

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


def _own_transport(transport: asyncio.Transport) -> _SocketTransport | None:
    """A `_SocketTransport` on a duplicate of `transport`'s socket, if it is a plain TCP
    connection of a selector loop whose handshake answer has all gone (else None: keep
    asyncio's transport)."""
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None \
            or transport.get_write_buffer_size() or transport.is_closing() \
            or not isinstance(loop, BaseSelectorEventLoop) \
            or sock.family not in (socketlib.AF_INET, socketlib.AF_INET6):
        return None
    try:
        own = socketlib.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return None
    own.setblocking(False)
    return _SocketTransport(loop, own)


class _SocketTransport(asyncio.Transport):
    """A fast socket's TCP connection, once its handshake is answered: what asyncio's selector
    transport does for it, as one object.

    asyncio's transport is 11 objects the garbage collector tracks for as long as the
    connection lives (the transport and its `__dict__`, its `socket.socket` and
    `TransportSocket`, the loop's weak reference to it, two bound read callbacks, and the
    selector's key, its data tuple, the reader's `Handle` and that handle's `Context`); at
    9,000 agents, ~100,000 objects for every full collection to walk (issue 12). This one is
    6: itself (it is its own read callback), the socket, and the selector's four. It reads
    when the socket is readable, writes at once and keeps what the kernel did not take until
    it is writable again, and closes after what it keeps has gone (or at once, `abort`)."""

    __slots__ = ("_closing", "_fd", "_loop", "_out", "_protocol", "_sock")

    max_size = 256 * 1024  # bytes read at most per readiness (asyncio's)

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socketlib.socket) -> None:
        super().__init__()
        self._loop = loop
        self._sock: socketlib.socket | None = sock
        self._fd = sock.fileno()
        self._protocol: asyncio.BaseProtocol | None = None
        self._out: bytearray | None = None  # written and not yet taken by the kernel
        self._closing = False

    def start(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        self._loop.add_reader(self._fd, self)

    def __call__(self) -> None:
        """The socket is readable."""
        sock = self._sock
        if sock is None or self._closing:
            return
        try:
            data = sock.recv(self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        protocol = self._protocol
        assert isinstance(protocol, asyncio.Protocol)
        try:
            if data:
                protocol.data_received(data)
            elif not protocol.eof_received():
                self.close()
        except Exception:  # a bug in the protocol: as asyncio's transport, the connection goes
            log.exception("Fatal error: protocol.data_received() call failed.")
            self._force_close(None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        sock = self._sock
        if sock is None or self._closing or not data:
            return
        if self._out:
            self._out += data
            return
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._force_close(exc)
            return
        if n < len(data):
            self._out = bytearray(memoryview(data)[n:])
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        sock, out = self._sock, self._out
        if sock is None or not out:
            return
        try:
            n = sock.send(out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        del out[:n]
        if not out:
            self._out = None
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._loop.call_soon(self._lost, None)

    def get_write_buffer_size(self) -> int:
        return len(self._out) if self._out else 0

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing or self._sock is None:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._out:
            self._loop.call_soon(self._lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._sock is None:
            return
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        if self._out:
            self._out = None
            self._loop.remove_writer(self._fd)
        self._loop.call_soon(self._lost, exc)

    def _lost(self, exc: Exception | None) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        sock.close()
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.connection_lost(exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        if sock is None:
            return default
        if name == "socket":
            return sock
        if name in ("peername", "sockname"):
            try:
                return sock.getpeername() if name == "peername" else sock.getsockname()
            except OSError:
                return default
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_reading(self) -> bool:
        return not self._closing

    def pause_reading(self) -> None:
        if not self._closing:
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._closing:
            self._loop.add_reader(self._fd, self)

    def can_write_eof(self) -> bool:
        return False


def _socket_route(routes: dict[str, SocketRoute], message: Any) -> SocketRoute | None:
    route = routes.get(message.path) if routes and isinstance(message, RawRequestMessage) else None
    if route is None or message.method != "GET" or message.version != HttpVersion11 \
            or not message.upgrade:
        return None
    headers = message.headers
    if headers.get("Upgrade", "").lower().strip() != "websocket" \
            or "upgrade" not in headers.get("Connection", "").lower() \
            or headers.get("Sec-WebSocket-Version") != "13" \
            or "Sec-WebSocket-Protocol" in headers or "Content-Length" in headers \
            or "Transfer-Encoding" in headers:
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return route if route.accepts(headers) else None


# RFC 6455 section 1.3: the accept value is SHA-1 of the key and this GUID, in base64.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _switching(key: str) -> bytes:
    """What aiohttp writes for a `WebSocketResponse` (compress off, no subprotocol)."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\nDate: {rfc822_formatted_time()}\r\n"
            f"Server: {SERVER_SOFTWARE}\r\n\r\n").encode()


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
