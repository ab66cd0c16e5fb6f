"""A small HTTP/1.1 client on asyncio protocols: the transport of the emulated agents.

Load generators that stand in for hundreds of agents (`mezzo.testing.emulated_agent`, used by
`bench/launch.py` and the tests) spend most of their CPU in the HTTP client, and on a shared
machine that CPU is taken from the master they measure: aiohttp's client costs about 210 µs of
CPU per call on loopback, this one about 70 (docs/benchmarks.md, "Agent core"). It speaks what
the master <-> agent protocol needs and nothing more:

- `RawClient.post(path, body)`: a POST with a JSON body on one keep-alive connection, one
  request at a time (callers serialise, as the agent's sender does); the response body is
  read by its Content-Length or chunked transfer coding; `Connection: close` is honoured and
  a closed connection is reopened for the next call.
- `RawClient.stream(path, body, on_data)`: a POST on a connection of its own whose 200
  response is a chunked stream; each piece of body is handed to `on_data` as it arrives (the
  caller frames RecordIO). Anything but 200 raises `StreamRefused` with the response text and
  `Location`, as `mezzo.net.client.open_stream` does.
- `RawClient.socket(path, first, on_message)`: a WebSocket (`mezzo.net.message_socket`, the
  agent's connection to its master) on a connection of its own: the handshake, then `first`
  as its first message; each message from the server is handed to `on_message`, and
  `RawSocket.send` writes one message (a masked binary frame) at once, without awaiting.
  A refused handshake raises `StreamRefused` as `stream` does. Pings are answered; a close
  frame is answered and ends the socket.

A malformed response or a connection that closes mid-response raises ConnectionError (an
OSError). Plain `http://host:port` URLs only; extra headers (credentials) are the callers'.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import struct
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from mezzo.net.client import StreamRefused

MAX_HEAD = 64 * 1024  # response head bytes before the response is judged malformed

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _IDLE, _FRAMES = range(9)
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Response:
    __slots__ = ("close", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.close = headers.get("connection", "").lower() == "close"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses the response to the request last written."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self._buffer = bytearray()
        self._state = _IDLE
        self._remaining = 0
        self._response: _Response | None = None
        self._body = bytearray()
        # Streaming: body pieces go to `_on_data` instead of `_body`.
        self._on_data: Callable[[bytes], None] | None = None
        # A WebSocket handshake: the Sec-WebSocket-Accept expected; then each message from the
        # server goes to `_on_data`, fragments gathered in `_fragments`.
        self._upgrade: str | None = None
        self._fragments = bytearray()
        self._fragmented = False
        self._head: asyncio.Future[_Response] | None = None
        self._done: asyncio.Future[tuple[int, bytes]] | None = None

    # --- requests ---------------------------------------------------------------------------

    def request(self, head: bytes, body: bytes, on_data: Callable[[bytes], None] | None) -> None:
        assert self.transport is not None and self._state == _IDLE
        loop = asyncio.get_running_loop()
        self._state = _HEAD
        self._response = None
        self._body = bytearray()
        self._on_data = on_data
        self._head = loop.create_future()
        self._done = loop.create_future()
        self.transport.write(head + body)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state == _UNTIL_CLOSE:
            self._finish()
        self._fail(ConnectionError(f"connection closed: {exc}" if exc else "connection closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self._parse(data)
        except Exception as exc:  # a bad response, or the stream consumer failed
            self._fail(exc)
            self.close()

    # --- parsing ----------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while buffer:
            state = self._state
            if state == _FRAMES:
                self._frames()
                return
            if state == _CHUNK_DATA:
                n = min(len(buffer), self._remaining)
                self._emit(bytes(buffer[:n]))
                del buffer[:n]
                self._remaining -= n
                if not self._remaining:
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise ConnectionError("malformed chunked body")
                del buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise ConnectionError("malformed chunk size")
                    return
                try:
                    size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
                except ValueError:
                    raise ConnectionError("malformed chunk size") from None
                del buffer[: end + 2]
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _LENGTH:
                n = min(len(buffer), self._remaining)
                self._emit(bytes(buffer[:n]))
                del buffer[:n]
                self._remaining -= n
                if not self._remaining:
                    self._finish()
            elif state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise ConnectionError("response head too long")
                    return
                head = bytes(buffer[:end])
                del buffer[: end + 4]
                self._start(head)
            elif state == _TRAILER:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                del buffer[: end + 2]
                if end == 0:
                    self._finish()
            elif state == _UNTIL_CLOSE:
                self._emit(bytes(buffer))
                buffer.clear()
            else:
                raise ConnectionError("data after the response")

    def _start(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"malformed status line {lines[0][:80]!r}")
        status = int(parts[1])
        if status == 101 and self._upgrade is not None:  # the WebSocket handshake answered
            headers101 = dict(
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:]))
            if headers101.get("sec-websocket-accept") != self._upgrade:
                raise ConnectionError("bad Sec-WebSocket-Accept in the handshake")
            self._response = _Response(101, headers101)
            self._state = _FRAMES
            if self._head is not None and not self._head.done():
                self._head.set_result(self._response)
            return
        if 100 <= status < 200:
            return  # an interim response: the real one follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ConnectionError(f"malformed header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        response = self._response = _Response(status, headers)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise ConnectionError("malformed Content-Length") from None
            self._state = _LENGTH
        elif status in (204, 304):
            self._remaining = 0
            self._state = _LENGTH
        else:
            self._state = _UNTIL_CLOSE
            response.close = True
        if self._head is not None and not self._head.done():
            self._head.set_result(response)
        if self._state == _LENGTH and not self._remaining:
            self._finish()

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        on_data = self._on_data
        response = self._response
        if on_data is not None and response is not None and response.status == 200:
            on_data(data)
        else:
            self._body += data

    def _finish(self) -> None:
        response = self._response
        assert response is not None
        self._state = _IDLE
        if self._done is not None and not self._done.done():
            self._done.set_result((response.status, bytes(self._body)))
        if response.close:
            self.close()

    def _fail(self, exc: BaseException) -> None:
        for waiter in (self._head, self._done):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: a caller that stopped waiting is not an error
        self._state = _IDLE if self._state == _IDLE else -1

    def _frames(self) -> None:
        """Parse the server's WebSocket frames (never masked) in the buffer."""
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = struct.unpack_from("!Q", buffer, 2)[0], 10
            if second & 0x80:
                raise ConnectionError("masked frame from the server")
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            opcode = first & 0x0F
            if opcode in (0x1, 0x2, 0x0):  # text, binary, continuation
                if first & 0x80 and not self._fragmented:
                    self._emit_message(payload)
                else:
                    self._fragments += payload
                    self._fragmented = not first & 0x80
                    if not self._fragmented:
                        message, self._fragments = bytes(self._fragments), bytearray()
                        self._emit_message(message)
            elif opcode == 0x8:  # close: answer it and end
                self.send_frame(0x8, payload[:2])
                self._state = _IDLE
                if self._done is not None and not self._done.done():
                    self._done.set_result((101, payload[2:]))
                self.close()
                return
            elif opcode == 0x9:  # ping
                self.send_frame(0xA, payload)
            # 0xA (pong) and unknown opcodes: nothing to do

    def _emit_message(self, message: bytes) -> None:
        if self._on_data is not None:
            self._on_data(message)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Write one masked frame (clients must mask: RFC 6455 §5.3)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError("connection closed")
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = random.getrandbits(32).to_bytes(4, "big")
        if n:  # XOR with the key repeated, as one big integer: a few µs for a call
            mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
            payload = (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")
        transport.write(head + key + payload)

    # --- results ----------------------------------------------------------------------------

    async def head(self) -> _Response:
        assert self._head is not None
        return await self._head

    async def done(self) -> tuple[int, bytes]:
        assert self._done is not None
        return await self._done

    @property
    def reusable(self) -> bool:
        transport = self.transport
        return self._state == _IDLE and transport is not None and not transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # without flushing: the peer may not be reading


class RawStream:
    """An open streaming response (see `RawClient.stream`)."""

    def __init__(self, connection: _Connection, headers: Mapping[str, str]) -> None:
        self._connection = connection
        self.headers = headers

    async def wait_closed(self) -> None:
        """Until the stream ends: returns when the server ends it, raises ConnectionError when
        the connection breaks and whatever the `on_data` callback raised."""
        await self._connection.done()

    def close(self) -> None:
        self._connection.close()


class RawSocket:
    """An open WebSocket (see `RawClient.socket`)."""

    def __init__(self, connection: _Connection, headers: Mapping[str, str]) -> None:
        self._connection = connection
        self.headers = headers

    def send(self, message: bytes) -> None:
        """Write one binary message now; ConnectionError if the connection is closed."""
        self._connection.send_frame(0x2, message)

    async def wait_closed(self) -> None:
        """Until the socket ends: returns when the server closes it, raises ConnectionError
        when the connection breaks and whatever the `on_message` callback raised."""
        await self._connection.done()

    def close(self) -> None:
        """End the socket (a close frame, then the connection) without waiting."""
        with contextlib.suppress(ConnectionError):
            self._connection.send_frame(0x8, struct.pack("!H", 1000))
        self._connection.close()


class RawClient:
    """Calls to one `http://host:port` (see the module docstring)."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port URLs are supported, not {base_url!r}")
        self.base_url = base_url
        self._host = parts.hostname
        self._port = parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._headers = f"Host: {parts.netloc}\r\nContent-Type: application/json\r\n{extra}"
        self._caller: _Connection | None = None
        self._busy = asyncio.Lock()

    def _head(self, path: str, body: bytes, accept: str) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\n{self._headers}Accept: {accept}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self._host, self._port)
        return connection

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST `body`; the (status, body) of the response."""
        async with self._busy:
            connection = self._caller
            if connection is None or not connection.reusable:
                if connection is not None:
                    connection.close()
                connection = self._caller = await self._connect()
            connection.request(self._head(path, body, "application/json"), body, None)
            return await connection.done()

    async def stream(
        self, path: str, body: bytes, on_data: Callable[[bytes], None]
    ) -> RawStream:
        """POST `body` on a connection of its own and return the open 200 stream, whose body
        goes to `on_data` piece by piece; StreamRefused for any other status."""
        connection = await self._connect()
        try:
            connection.request(self._head(path, body, "application/json"), body, on_data)
            response = await connection.head()
            if response.status != 200:
                _, text = await connection.done()
                raise StreamRefused(
                    response.status, text.decode("utf-8", "replace").strip(),
                    response.headers.get("location"),
                )
        except BaseException:
            connection.close()
            raise
        return RawStream(connection, response.headers)

    async def socket(
        self, path: str, first: bytes, on_message: Callable[[bytes], None]
    ) -> RawSocket:
        """Open a WebSocket at `path` on a connection of its own and send `first` on it; each
        message from the server goes to `on_message`. StreamRefused for any answer but 101."""
        connection = await self._connect()
        key = base64.b64encode(os.urandom(16))
        connection._upgrade = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        head = (
            f"GET {path} HTTP/1.1\r\n{self._headers}Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode("latin-1")
        try:
            connection.request(head, b"", on_message)
            response = await connection.head()
            if response.status != 101:
                _, text = await connection.done()
                raise StreamRefused(
                    response.status, text.decode("utf-8", "replace").strip(),
                    response.headers.get("location"),
                )
            connection.send_frame(0x2, first)
        except BaseException:
            connection.close()
            raise
        return RawSocket(connection, response.headers)

    def abort(self) -> None:
        """Drop the calls' connection now: a call waiting on it fails with ConnectionError."""
        if self._caller is not None:
            self._caller.abort()

    async def close(self) -> None:
        if self._caller is not None:
            self._caller.close()
            with contextlib.suppress(asyncio.CancelledError):
                await self._caller.lost
            self._caller = None
