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

`serve_socket` is the way an aiohttp handler serves such a socket: the handshake, the first
message (which must come within `FIRST_MESSAGE_SECONDS`) handed to `register`, which decides
whether the socket is accepted and what handles each later message, and the owner's `ended`
callback, attached before anything is sent, run once when the socket ends.

`FrameSocket` is the other way: the same socket as its connection's own `asyncio.Protocol`,
once `mezzo.net.fastpath` has answered the handshake. It reads the frames itself (RFC 6455,
server side) and does what `serve_socket` does from `data_received`, so an open socket is one
object and its transport, not a request, two tasks and a dozen suspended coroutines that every
full garbage collection walks (issue 12), and a message costs no coroutine resumption. Both
share their sending side (`BaseMessageSocket`), and an owner sees no difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp._websocket.helpers import websocket_mask  # unmasks in place (C when built)

log = logging.getLogger(__name__)

# How long a new socket may stay silent before its first (subscribing) message.
FIRST_MESSAGE_SECONDS = 30.0
# Largest message accepted (a re-registering agent's SUBSCRIBE lists all its tasks).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Bytes written and not yet taken by a peer, past which it is judged to have stopped reading.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
# How long our close frame may wait for the client's before the connection is dropped.
CLOSE_SECONDS = 5.0
OVERFLOW = "overflow: the client stopped reading"
_DATA = (WSMsgType.BINARY, WSMsgType.TEXT)
_HEADER1 = struct.Struct("!BB").pack
_HEADER2 = struct.Struct("!BBH").pack
_HEADER3 = struct.Struct("!BBQ").pack


def is_socket_request(request: web.BaseRequest) -> bool:
    """A WebSocket handshake (GET with `Upgrade: websocket`), not a call or a stream."""
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


def _frame_header(opcode_byte: int, n: int) -> bytes:
    """A server frame's header (unmasked, FIN set): 2-10 bytes."""
    if n < 126:
        return _HEADER1(opcode_byte, n)
    if n < 65536:
        return _HEADER2(opcode_byte, 126, n)
    return _HEADER3(opcode_byte, 127, n)


class BaseMessageSocket:
    """What an owner sees of a message socket, whichever server reads it: `send()`, `close()`,
    `closed`, `is_closed` (see the module docstring). The outgoing side is shared here; the
    two servers (`MessageSocket` in aiohttp's handler, `FrameSocket` on its own protocol)
    differ in how they read, close and reach their transport."""

    __slots__ = ("_closed", "_closing_reason", "_max_buffered", "_opened", "_pending", "_reason")

    def __init__(self, max_buffered: int) -> None:
        # Frames sent since the last flush (None: none; a list per idle socket would be one
        # more object for every full garbage collection to walk, issue 12).
        self._pending: list[bytes] | None = None
        self._opened = False
        self._max_buffered = max_buffered
        self._closing_reason: str | None = None  # set by close(): the server ends it
        self._reason: str | None = None  # why it ended, once it has
        self._closed: asyncio.Future[str] | None = None  # made when first asked for

    @property
    def closed(self) -> asyncio.Future[str]:
        """Completes, with the reason, once the socket has ended however it ended."""
        closed = self._closed
        if closed is None:
            closed = self._closed = asyncio.get_running_loop().create_future()
            if self._reason is not None:
                closed.set_result(self._reason)
        return closed

    @property
    def is_closed(self) -> bool:
        return self._reason is not None

    def _ended(self, reason: str) -> bool:
        """Record the end (the first reason stays); False if it had already ended."""
        if self._reason is not None:
            return False
        self._reason = reason
        if self._closed is not None:
            self._closed.set_result(reason)
        return True

    def _transport(self) -> asyncio.Transport | None:
        raise NotImplementedError

    def _finish(self, reason: str) -> None:
        raise NotImplementedError

    def close(self, reason: str = "closed by server") -> None:
        raise NotImplementedError

    def send(self, payload: bytes) -> bool:
        """Queue one message (encoded JSON); False once the socket has ended or is closing.

        Frames are written by a callback at the end of this turn of the event loop, all
        those sent meanwhile in one write: no writer task to wake per message (one per
        socket was ~15 µs a message), and a burst to one agent is one system call. A server's
        frames are unmasked, a 2-10 byte header and the payload, so they are made here rather
        than by aiohttp's writer (whose coroutine needs a task)."""
        if self._reason is not None or self._closing_reason is not None:
            return False
        frame = _frame_header(0x82, len(payload)) + payload
        pending = self._pending
        if pending is not None:
            pending.append(frame)
            return True
        self._pending = [frame]
        if self._opened:
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        frames, self._pending = self._pending, None
        if not frames or self._reason is not None:
            return
        transport = self._transport()
        if transport is None or transport.is_closing():
            self._finish("client disconnected")
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        # A peer that stopped reading: what it has not taken stays in the transport's buffer;
        # past the cap the socket is closed rather than the server's memory grown without bound.
        if transport.get_write_buffer_size() > self._max_buffered:
            self._finish(OVERFLOW)


class MessageSocket(BaseMessageSocket):
    """One open message socket served in aiohttp's handler (see the module docstring):
    aiohttp reads the frames and writes the control frames (pongs, the close)."""

    __slots__ = ("_closing", "_request", "_ws")

    def __init__(self, request: web.Request, *, max_buffered: int = MAX_BUFFERED_BYTES) -> None:
        super().__init__(max_buffered)
        self._request = request
        # No compression (CPU, and the messages are small); text frames arrive as bytes.
        self._ws = web.WebSocketResponse(autoping=True, compress=False, decode_text=False,
                                         max_msg_size=MAX_MESSAGE_BYTES)
        self._closing: asyncio.Task[None] | None = None

    @property
    def response(self) -> web.WebSocketResponse:
        return self._ws

    def _transport(self) -> asyncio.Transport | None:
        return self._request.transport

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

    def close(self, reason: str = "closed by server") -> None:
        """Send what is queued, then close the socket (`reason` in the close frame)."""
        if self._reason is not None or self._closing_reason is not None:
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
        self._ended(reason)
        if reason == OVERFLOW or reason == "client disconnected":
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


# What a server hands a socket's first message to (see `serve_socket`).
Register = Callable[[BaseMessageSocket, bytes], SocketSubscriber]


class _Ended:
    """`closed`'s done callback calling the owner's `ended` with the reason (one object, not a
    closure's three: it lives as long as the socket)."""

    __slots__ = ("ended",)

    def __init__(self, ended: Callable[[str], None]) -> None:
        self.ended = ended

    def __call__(self, closed: asyncio.Future[str]) -> None:
        self.ended(closed.result())


async def serve_socket(
    request: web.Request,
    register: Register,
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
        if subscriber.ended is not None:
            socket.closed.add_done_callback(_Ended(subscriber.ended))
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


# RFC 6455 close codes a client may send (1004-1006 and 1015 are reserved, never sent).
def _valid_close_code(code: int) -> bool:
    return (1000 <= code <= 1011 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


_PROTOCOL_ERROR = 1002
_MESSAGE_TOO_BIG = 1009


class FrameSocket(BaseMessageSocket, asyncio.Protocol):
    """A message socket that is its connection's protocol: after the handshake was answered
    (`mezzo.net.fastpath`), the transport is handed to it and it reads the client's frames
    itself, no task and no coroutine per connection, each message handed on from
    `data_received`. What `serve_socket` does is done here too: the first message (within
    `first_message_seconds`) goes to `register`, the later ones to its `on_message`.

    RFC 6455, server side: client frames must be masked; binary and text messages, fragmented
    or not; pings answered; the client's close frame answered with its code; messages above
    `max_message` closed with 1009; unmasked frames, reserved bits, unknown opcodes, bad
    control frames and continuations out of place closed with 1002. No extensions, no
    subprotocol (the handshake offers none)."""

    __slots__ = ("_buffer", "_ended_callback", "_fragments", "_max_message", "_on_message",
                 "_register", "_registry", "_timer", "_transport_")

    def __init__(self, transport: asyncio.Transport, register: Register, *,
                 first_message_seconds: float = FIRST_MESSAGE_SECONDS,
                 max_message: int = MAX_MESSAGE_BYTES,
                 max_buffered: int = MAX_BUFFERED_BYTES,
                 registry: set[FrameSocket] | None = None) -> None:
        """`registry`: a set of the open sockets (the server's, to end them when it shuts
        down), which this one joins and leaves when it ends."""
        super().__init__(max_buffered)
        # The owner's `ended`, called (soon) when the socket ends: kept here rather than as a
        # done callback of `closed`, which would cost a future, a context and a tuple.
        self._ended_callback: Callable[[str], None] | None = None
        self._registry = registry
        if registry is not None:
            registry.add(self)
        self._opened = True
        self._transport_: asyncio.Transport | None = transport
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None  # a fragmented message's frames so far
        self._max_message = max_message
        self._register: Register | None = register
        self._on_message: Callable[[bytes], None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            first_message_seconds, self.close, "no subscription")

    def _transport(self) -> asyncio.Transport | None:
        return self._transport_

    # ------------------------------------------------------------------ asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = len(buffer)
        at = 0
        while end - at >= 2 and self._transport_ is not None:
            first, second = buffer[at], buffer[at + 1]
            length = second & 0x7F
            head = at + 2
            if length == 126:
                if end - at < 4:
                    break
                length = int.from_bytes(buffer[head:head + 2], "big")
                head += 2
            elif length == 127:
                if end - at < 10:
                    break
                length = int.from_bytes(buffer[head:head + 8], "big")
                head += 8
            opcode = first & 0x0F
            if first & 0x70 or not second & 0x80:
                self._fail(_PROTOCOL_ERROR, "reserved bits set" if first & 0x70 else "unmasked frame")
                return
            if opcode >= 8:
                if opcode > 10 or length > 125 or not first & 0x80:
                    self._fail(_PROTOCOL_ERROR, "bad control frame")
                    return
            elif opcode > 2:
                self._fail(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                return
            elif length + sum(map(len, self._fragments or ())) > self._max_message:
                self._fail(_MESSAGE_TOO_BIG, "message too big")
                return
            if end - head < 4 + length:
                break
            mask = bytes(buffer[head:head + 4])
            payload = buffer[head + 4:head + 4 + length]
            at = head + 4 + length
            if length:
                websocket_mask(mask, payload)
            self._frame(first & 0x80, opcode, payload)
        if at:
            del buffer[:at]

    def _frame(self, fin: int, opcode: int, payload: bytearray) -> None:
        if opcode == 1 or opcode == 2:
            if self._fragments is not None:
                self._fail(_PROTOCOL_ERROR, "a new message inside a fragmented one")
            elif fin:
                self._message(bytes(payload))
            else:
                self._fragments = [bytes(payload)]
        elif opcode == 0:
            fragments = self._fragments
            if fragments is None:
                self._fail(_PROTOCOL_ERROR, "continuation frame outside a message")
                return
            fragments.append(bytes(payload))
            if fin:
                self._fragments = None
                self._message(b"".join(fragments))
        elif opcode == 9:  # ping
            if self._closing_reason is None and self._transport_ is not None:
                self._transport_.write(_frame_header(0x8A, len(payload)) + payload)
        elif opcode == 8:
            self._client_closed(bytes(payload))
        # opcode 10, a pong: nothing to do

    def _message(self, message: bytes) -> None:
        on_message = self._on_message
        if on_message is not None:
            on_message(message)
            return
        register = self._register
        if register is None:
            return  # refused or closing: the socket is going
        self._register = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        subscriber = register(self, message)
        if subscriber.ended is not None:
            if self._reason is None:
                self._ended_callback = subscriber.ended
            else:
                asyncio.get_running_loop().call_soon(subscriber.ended, self._reason)
        if subscriber.on_message is None:
            self.close("subscription refused")  # if `register` did not already
        elif self._reason is None and self._closing_reason is None:
            self._on_message = subscriber.on_message

    def _client_closed(self, payload: bytes) -> None:
        """The client's close frame: an answer to ours, or its own close, echoed."""
        if self._closing_reason is not None:
            self._finish(self._closing_reason)
            return
        if len(payload) == 1 or (len(payload) >= 2
                                 and not _valid_close_code(int.from_bytes(payload[:2], "big"))):
            self._fail(_PROTOCOL_ERROR, "bad close frame")
            return
        transport = self._transport_
        if transport is not None:
            transport.write(_frame_header(0x88, min(len(payload), 2)) + payload[:2])
        self._finish("client disconnected")

    def _fail(self, code: int, why: str) -> None:
        """A protocol error: close with `code`, drop the connection (the client's doing)."""
        log.info("message socket from %s: %s, closing with %d", self._peer(), why, code)
        transport = self._transport_
        if transport is not None and self._closing_reason is None:
            transport.write(_frame_header(0x88, 2) + code.to_bytes(2, "big"))
        self._finish("client disconnected")

    def _peer(self) -> object:
        transport = self._transport_
        return transport.get_extra_info("peername") if transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(self._closing_reason or "client disconnected")

    # ------------------------------------------------------------------ the owner's side

    def close(self, reason: str = "closed by server") -> None:
        """Send what is queued and our close frame (1000, `reason`), then wait up to
        `CLOSE_SECONDS` for the client's close frame before dropping the connection."""
        if self._reason is not None or self._closing_reason is not None:
            return
        self._flush()
        if self._reason is not None:
            return  # the client stopped reading or went away
        self._closing_reason = reason
        self._on_message = self._register = None
        transport = self._transport_
        assert transport is not None
        body = (1000).to_bytes(2, "big") + reason.encode()[:120]
        transport.write(_frame_header(0x88, len(body)) + body)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_SECONDS, self._finish, reason, True)

    def end_now(self, reason: str) -> None:
        """End it now (the server is shutting down): what was written goes (a close frame
        under way too), no waiting for the client's close frame."""
        self._finish(self._closing_reason or reason)

    def _finish(self, reason: str, abort: bool = False) -> None:
        if self._ended(reason):
            ended, self._ended_callback = self._ended_callback, None
            if ended is not None:
                asyncio.get_running_loop().call_soon(ended, reason)
            if self._registry is not None:
                self._registry.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Nothing more is read or handed on; the owner's objects are let go.
        self._on_message = self._register = None
        self._fragments = None
        transport, self._transport_ = self._transport_, None
        if transport is not None:
            if abort or reason == OVERFLOW:
                transport.abort()  # what it has not taken would never go: drop it
            else:
                transport.close()
