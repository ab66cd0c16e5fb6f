"""Server side of a message socket: one WebSocket carrying one JSON message per frame, both ways.

The master <-> agent protocol runs on it (`mezzo.api.internal`): the agent's first message
subscribes, the master's events go down the socket and the agent's calls come up it, so an
agent costs its master one connection and each call one frame (about a third of the CPU of a
POST answered 202: docs/benchmarks.md, "Agent transport (issue 11)").

A `MessageSocket` offers its owner what a `mezzo.net.stream.RecordStream` does, so the master
core and its outbox treat both alike: `send()` never blocks (the messages sent in one turn of
the event loop go out together at its end; past `MAX_BUFFERED_BYTES` not taken by the peer
the socket is closed, a peer that stopped reading), `close()` flushes then ends it, and
`closed` is a future that completes, with the reason, once it has ended however it ended.
Messages go out as binary frames; text frames are read too.

No liveness timer: a stream's writer only learns that its client went away when it writes,
which is why idle RecordStreams are checked by a shared timer (`mezzo.net.stream`); a socket
is always being read (`serve_socket` reads until the peer goes), so the read itself notices at
once. WebSocket
pings are answered (aiohttp's autoping) but never sent: whoever owns the socket has its own
liveness (the master's PING events), and a per-socket heartbeat timer would cost what the
shared check exists to avoid.

`serve_socket` is the one way a handler serves such a socket: the handshake, the first
message (which must come within `FIRST_MESSAGE_SECONDS`) handed to `register`, which decides
whether the socket is accepted and what handles each later message, and the owner's `ended`
callback, attached before anything is sent, run once when the socket ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

log = logging.getLogger(__name__)

# How long a new socket may stay silent before its first (subscribing) message.
FIRST_MESSAGE_SECONDS = 30.0
# Largest message accepted (a re-registering agent's SUBSCRIBE lists all its tasks).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Bytes written and not yet taken by a peer, past which it is judged to have stopped reading.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
_DATA = (WSMsgType.BINARY, WSMsgType.TEXT)
_HEADER1 = struct.Struct("!BB").pack
_HEADER2 = struct.Struct("!BBH").pack
_HEADER3 = struct.Struct("!BBQ").pack


def is_socket_request(request: web.BaseRequest) -> bool:
    """A WebSocket handshake (GET with `Upgrade: websocket`), not a call or a stream."""
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


class MessageSocket:
    """One open message socket (see the module docstring)."""

    def __init__(self, request: web.Request, *, max_buffered: int = MAX_BUFFERED_BYTES) -> None:
        self._request = request
        # No compression (CPU, and the messages are small); text frames arrive as bytes.
        self._ws = web.WebSocketResponse(autoping=True, compress=False, decode_text=False,
                                         max_msg_size=MAX_MESSAGE_BYTES)
        self._pending: list[bytes] = []  # frames sent since the last flush
        self._opened = False
        self._max_buffered = max_buffered
        self._closing: asyncio.Task[None] | None = None
        self._closing_reason: str | None = None  # set by close(): the server ends it
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @property
    def response(self) -> web.WebSocketResponse:
        return self._ws

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    async def open(self) -> bool:
        """Answer the handshake; False if the client went away (the socket has then ended)."""
        try:
            await self._ws.prepare(self._request)
        except ConnectionError:
            self._finish("client disconnected")
            return False
        self._opened = True
        if self._pending:
            self._flush()
        return True

    def send(self, payload: bytes) -> bool:
        """Queue one message (encoded JSON); False once the socket has ended or is closing.

        Frames are written by a callback at the end of this turn of the event loop, all
        those sent meanwhile in one write: no writer task to wake per message (one per
        socket was ~15 µs a message), and a burst to one agent is one system call. A server's
        frames are unmasked, a 2-10 byte header and the payload, so they are made here rather
        than by aiohttp's writer (whose coroutine needs a task); aiohttp still writes the
        control frames (pongs, the close)."""
        if self.closed.done() or self._closing_reason is not None:
            return False
        n = len(payload)
        if n < 126:
            header = _HEADER1(0x82, n)
        elif n < 65536:
            header = _HEADER2(0x82, 126, n)
        else:
            header = _HEADER3(0x82, 127, n)
        pending = self._pending
        pending.append(header + payload)
        if len(pending) == 1 and self._opened:
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        frames, self._pending = self._pending, []
        if not frames or self.closed.done():
            return
        transport = self._request.transport
        if transport is None or transport.is_closing():
            self._finish("client disconnected")
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        # A peer that stopped reading: what it has not taken stays in the transport's buffer;
        # past the cap the socket is closed rather than the server's memory grown without bound.
        if transport.get_write_buffer_size() > self._max_buffered:
            self._finish("overflow: the client stopped reading")

    def close(self, reason: str = "closed by server") -> None:
        """Send what is queued, then close the socket (`reason` in the close frame)."""
        if self.closed.done() or self._closing_reason is not None:
            return
        self._closing_reason = reason
        if not self._opened:
            self._finish(reason)
            return
        self._flush()
        self._closing = asyncio.get_running_loop().create_task(self._close(reason))

    async def _close(self, reason: str) -> None:
        try:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.close(code=WSCloseCode.OK, message=reason.encode()[:120])
        finally:
            self._finish(reason)

    async def receive(self, timeout: float | None = None) -> bytes | None:
        """The next message from the client; None once it closed, broke or sent garbage
        (the socket has then ended, or is being closed by us) or, with `timeout`, when nothing
        came in time."""
        try:
            message = await self._ws.receive(timeout)
        except TimeoutError:
            return None
        if message.type in _DATA:
            data = message.data
            return data if isinstance(data, bytes) else bytes(data)
        # Our own close() under way finishes the socket itself; anything else (the client's
        # close frame, a broken connection, a protocol error) is the client's doing.
        if self._closing_reason is None:
            self._finish("client disconnected")
        return None

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if reason.startswith("overflow") or reason == "client disconnected":
            transport = self._request.transport
            if transport is not None:
                transport.close()

    async def end(self) -> None:
        """After the last message was read: let a close under way finish (the close
        handshake, a few seconds at most), then make sure the socket has ended."""
        closing = self._closing
        if closing is not None and not closing.done():
            await asyncio.wait({closing}, timeout=5.0)
            if not closing.done():
                closing.cancel()
        elif self._closing_reason is not None:
            self._flush()
        self._finish("client disconnected")  # the reason stays the first one given


@dataclass(frozen=True, slots=True)
class SocketSubscriber:
    """What `register` made of a socket's first message: what handles each later message
    (None: refused, the socket carries the reason and is closed) and what to call, once, with
    the reason, when the socket ends."""

    on_message: Callable[[bytes], None] | None = None
    ended: Callable[[str], None] | None = None


async def serve_socket(
    request: web.Request,
    register: Callable[[MessageSocket, bytes], SocketSubscriber],
    *,
    first_message_seconds: float = FIRST_MESSAGE_SECONDS,
) -> web.StreamResponse:
    """Serve one message socket until it ends (see the module docstring)."""
    socket = MessageSocket(request)
    if not await socket.open():
        log.info("%s: the client went away during the handshake", request.path)
        return socket.response
    try:
        first = await socket.receive(first_message_seconds)
        if first is None:
            socket.close("no subscription")
            return socket.response
        subscriber = register(socket, first)
        ended = subscriber.ended
        if ended is not None:
            socket.closed.add_done_callback(lambda closed: ended(closed.result()))
        on_message = subscriber.on_message
        if on_message is None:
            return socket.response  # refused: `end` sends the reason and the close frame
        receive = socket.receive
        while not socket.is_closed:
            message = await receive()
            if message is None:
                break
            on_message(message)
        return socket.response
    finally:
        await socket.end()
