"""The fast WebSocket route (mezzo.net.fastpath's socket routes, mezzo.net.message_socket's
FrameSocket), byte by byte on loopback: the handshake is answered as aiohttp answers it, then
the frames are read by the socket's own protocol, RFC 6455 server side (masked client frames,
text and binary, fragments, ping, close codes, the size limit) and a peer that stopped reading
is cut off. aiohttp's own client (`ws_connect`, the real agent's) talks to it too."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mezzo.net.fastpath import FastPathRunner, SocketRoute, add_socket_route
from mezzo.net.message_socket import (
    MAX_MESSAGE_BYTES,
    BaseMessageSocket,
    Register,
    SocketSubscriber,
    serve_socket,
)
from mezzo.testing.processes import eventually as _eventually


async def eventually(predicate: Callable[[], object]) -> object:
    return await _eventually(predicate, 10.0)


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Echo:
    """The server side: echoes each message after the first (which says `refuse` or not)."""

    accepting: bool = True
    sockets: list[BaseMessageSocket] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def register(self, socket: BaseMessageSocket, first: bytes) -> SocketSubscriber:
        self.sockets.append(socket)
        if first == b"refuse":
            socket.close("refused")
            return SocketSubscriber(ended=self.ended.append)

        def on_message(message: bytes) -> None:
            self.received.append(message)
            if message == b"close":
                socket.close("asked to")
            elif message.startswith(b"flood"):
                for _ in range(int(message[5:])):
                    socket.send(b"x" * 65536)
            else:
                socket.send(message)

        return SocketSubscriber(on_message, self.ended.append)

    def open(self, headers: Mapping[str, str], remote: str | None,
             observe: Callable[[float], None] | None) -> Register:
        return self.register


@dataclass
class Server:
    echo: Echo
    runner: web.AppRunner
    port: int

    @property
    def fast(self) -> int:
        return getattr(self.runner.server, "answered", 0)


async def serve(fast: bool, **route: Any) -> Server:
    echo = Echo()
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_socket(request, echo.register)

    app.router.add_get("/socket", handler)
    if fast:
        add_socket_route(app, "/socket", SocketRoute(lambda headers: echo.accepting, echo.open,
                                                     **route))  # type: ignore[arg-type]
    runner = FastPathRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Server(echo, runner, port)


@pytest.fixture(params=[True, False], ids=["own-transport", "asyncio-transport"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """The fast socket on its own transport (a plain TCP connection's) and on asyncio's (a
    TLS connection's)."""
    s = await serve(True, first_message_seconds=5.0, max_buffered=1024 * 1024,
                    own_transport=request.param)
    yield s
    await s.runner.cleanup()


class Raw:
    """A WebSocket client writing and reading frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, *, key: bytes | None = None, extra: str = "") -> tuple[Raw, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = key or base64.b64encode(os.urandom(16))
        writer.write((f"GET /socket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                      f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return cls(reader, writer), head

    def frame(self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True,
              rsv: int = 0) -> bytes:
        first = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        mask_bit = 0x80 if masked else 0
        if n < 126:
            head = struct.pack("!BB", first, mask_bit | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, mask_bit | 126, n)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, n)
        if not masked:
            return head + payload
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send(self, opcode: int, payload: bytes, **kwargs: bool | int) -> None:
        self.writer.write(self.frame(opcode, payload, **kwargs))  # type: ignore[arg-type]

    async def read(self) -> tuple[int, bytes]:
        """The next frame from the server: (first byte, payload); server frames are unmasked."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        assert not second & 0x80, "a server frame must not be masked"
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first, await asyncio.wait_for(self.reader.readexactly(n), 10)

    async def eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    def close(self) -> None:
        self.writer.close()


def without_date(head: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"", head)


async def test_the_handshake_is_answered_as_aiohttp_answers_it() -> None:
    key = base64.b64encode(os.urandom(16))
    heads = []
    for fast in (False, True):
        s = await serve(fast)
        try:
            raw, head = await Raw.connect(s.port, key=key)
            heads.append(head)
            assert s.fast == (1 if fast else 0)
            raw.send(0x2, b"hello")
            raw.send(0x2, b"again")
            assert await raw.read() == (0x82, b"again")
            raw.close()
        finally:
            await s.runner.cleanup()
    assert without_date(heads[0]) == without_date(heads[1])
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    assert heads[1].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: " + accept + b"\r\n" in heads[1]


async def test_aiohttp_client_talks_to_it_and_aiohttp_handler_is_detached(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"http://127.0.0.1:{server.port}/socket", autoping=True,
                                      compress=0, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.send_bytes(b"subscribe")
        await ws.send_bytes(b"binary")
        assert (await ws.receive()).data == b"binary"
        await ws.send_str("text")
        assert (await ws.receive()).data == b"text"  # sent back as binary
        big = os.urandom(200_000)
        await ws.send_bytes(big)
        assert (await ws.receive()).data == big
        await ws.ping(b"p")
        # aiohttp's request loop for that connection has ended: no handler left, no timer.
        plain = server.runner.server
        assert plain is not None
        await eventually(lambda: not plain._connections)
        await ws.close(code=1000, message=b"bye")
        assert ws.close_code == 1000
    await eventually(lambda: server.echo.ended == ["client disconnected"])
    assert server.fast == 1


async def test_fragments_ping_and_client_close(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    raw.send(0x1, b"he", fin=False)
    raw.send(0x9, b"ping!")  # a control frame between fragments
    raw.send(0x0, b"ll", fin=False)
    raw.send(0x0, b"o")
    assert await raw.read() == (0x8A, b"ping!")
    assert await raw.read() == (0x82, b"hello")
    raw.send(0xA, b"unasked pong")  # ignored
    raw.send(0x8, struct.pack("!H", 4000) + b"going")
    assert await raw.read() == (0x88, struct.pack("!H", 4000))  # the code echoed
    assert await raw.eof()
    await eventually(lambda: server.echo.ended == ["client disconnected"])
    raw.close()


@pytest.mark.parametrize("frame, code", [
    ({"opcode": 0x2, "payload": b"x", "masked": False}, 1002),
    ({"opcode": 0x2, "payload": b"x", "rsv": 0x40}, 1002),
    ({"opcode": 0x3, "payload": b"x"}, 1002),
    ({"opcode": 0x0, "payload": b"x"}, 1002),
    ({"opcode": 0x9, "payload": b"x" * 126}, 1002),
    ({"opcode": 0x9, "payload": b"x", "fin": False}, 1002),
    ({"opcode": 0x8, "payload": b"x"}, 1002),
    ({"opcode": 0x8, "payload": struct.pack("!H", 1005)}, 1002),
])
async def test_protocol_errors_close_with_1002(server: Server, frame: dict[str, Any], code: int) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    raw.send(**frame)
    first, payload = await raw.read()
    assert first == 0x88 and struct.unpack("!H", payload[:2])[0] == code
    assert await raw.eof()
    await eventually(lambda: server.echo.ended == ["client disconnected"])
    raw.close()


async def test_a_new_message_inside_a_fragmented_one_is_an_error(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    raw.send(0x2, b"a", fin=False)
    raw.send(0x2, b"b")
    first, payload = await raw.read()
    assert (first, payload) == (0x88, struct.pack("!H", 1002))
    raw.close()


async def test_an_oversize_message_is_refused_before_it_is_read(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    # Only the header of a message one byte over the limit: the socket does not wait for it.
    raw.writer.write(struct.pack("!BBQ", 0x82, 0x80 | 127, MAX_MESSAGE_BYTES + 1) + os.urandom(4))
    first, payload = await raw.read()
    assert (first, payload) == (0x88, struct.pack("!H", 1009))
    assert await raw.eof()
    raw.close()


async def test_server_close_flushes_then_sends_its_close_frame(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    raw.send(0x2, b"one")
    raw.send(0x2, b"close")
    assert await raw.read() == (0x82, b"one")
    first, payload = await raw.read()
    assert first == 0x88 and payload == struct.pack("!H", 1000) + b"asked to"
    assert server.echo.ended == []  # until the client answers
    raw.send(0x2, b"dropped: the socket is closing")
    raw.send(0x8, struct.pack("!H", 1000))
    assert await raw.eof()
    await eventually(lambda: server.echo.ended == ["asked to"])
    assert server.echo.received == [b"one", b"close"]
    raw.close()


async def test_a_refused_subscription_closes_with_the_reason(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"refuse")
    first, payload = await raw.read()
    assert first == 0x88 and payload == struct.pack("!H", 1000) + b"refused"
    raw.send(0x8, struct.pack("!H", 1000))
    assert await raw.eof()
    await eventually(lambda: server.echo.ended == ["refused"])
    raw.close()


async def test_a_client_that_stopped_reading_is_cut_off(server: Server) -> None:
    raw, _ = await Raw.connect(server.port)
    raw.send(0x2, b"subscribe")
    # 4 MiB a message, the cap 1 MiB beyond what the kernel's buffers take, checked per write.
    for _ in range(16):
        raw.send(0x2, b"flood64")
        await raw.writer.drain()
        if server.echo.ended:
            break
        await asyncio.sleep(0.05)
    await eventually(lambda: server.echo.ended == ["overflow: the client stopped reading"])
    assert len(server.echo.received) < 16
    raw.close()


async def test_no_first_message_in_time() -> None:
    s = await serve(True, first_message_seconds=0.1)
    try:
        raw, _ = await Raw.connect(s.port)
        first, payload = await raw.read()
        assert first == 0x88 and payload == struct.pack("!H", 1000) + b"no subscription"
        raw.close()
    finally:
        await s.runner.cleanup()


async def test_what_the_route_does_not_accept_is_aiohttps(server: Server) -> None:
    server.echo.accepting = False
    raw, head = await Raw.connect(server.port)
    assert head.startswith(b"HTTP/1.1 101 ")
    raw.send(0x2, b"subscribe")
    raw.send(0x2, b"via aiohttp")
    assert await raw.read() == (0x82, b"via aiohttp")
    assert server.fast == 0
    raw.close()
    # A subprotocol asked, a bad key: aiohttp's too.
    server.echo.accepting = True
    raw, head = await Raw.connect(server.port, extra="Sec-WebSocket-Protocol: chat\r\n")
    assert head.startswith(b"HTTP/1.1 101 ") and server.fast == 0
    raw.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 400 ")
    assert server.fast == 0
    writer.close()


async def test_shutdown_ends_open_sockets() -> None:
    s = await serve(True)
    raw, _ = await Raw.connect(s.port)
    raw.send(0x2, b"subscribe")
    raw.send(0x2, b"x")
    assert await raw.read() == (0x82, b"x")
    await s.runner.cleanup()
    await eventually(lambda: s.echo.ended == ["server shutting down"])
    assert await raw.eof()
    raw.close()


async def test_frames_in_the_handshake_segment_are_read(server: Server) -> None:
    """A client that does not wait for the 101: its first frames came with the request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = Raw(reader, writer)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
                 + raw.frame(0x2, b"subscribe") + raw.frame(0x2, b"early"))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    assert await raw.read() == (0x82, b"early")
    assert server.fast == 1
    raw.close()
