"""The emulated agents' HTTP/1.1 client (`mezzo.testing.raw_http`) against a real aiohttp server
on loopback: calls on a kept-alive connection, chunked streams, refusals and broken responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mezzo.net.client import StreamRefused
from mezzo.testing.raw_http import RawClient


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    peers: list[str] = []  # the client port of every request, to see connection reuse

    async def call(request: web.Request) -> web.Response:
        peers.append(str(request.transport.get_extra_info("peername")[1]))  # type: ignore[union-attr]
        body = await request.read()
        if body == b"close":
            return web.Response(status=202, headers={"Connection": "close"})
        return web.Response(status=200 if body else 400, body=body[::-1] or b"empty body")

    async def stream(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if body == b"refuse":
            return web.Response(status=307, text="not the leader\n", headers={"Location": "//x:1"})
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b"one", b"two" * 5000, b"three"):
            await response.write(piece)
            await asyncio.sleep(0.01)
        if body == b"end":
            await response.write_eof()
            return response
        await asyncio.sleep(30)  # until the client goes away
        return response

    app = web.Application()
    app.router.add_post("/call", call)
    app.router.add_post("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        await runner.cleanup()


async def test_calls_share_one_connection_until_the_server_closes_it(
    server: tuple[str, list[str]]
) -> None:
    url, peers = server
    client = RawClient(url)
    assert await client.post("/call", b"abc") == (200, b"cba")
    assert await client.post("/call", b"") == (400, b"empty body")
    assert peers[0] == peers[1]
    assert (await client.post("/call", b"close"))[0] == 202
    assert await client.post("/call", b"xyz") == (200, b"zyx")  # on a new connection
    assert peers[2] != peers[3]
    await client.close()


async def test_a_stream_hands_over_its_body_as_it_comes_and_ends_with_the_server(
    server: tuple[str, list[str]]
) -> None:
    url, _ = server
    got: list[bytes] = []
    stream = await RawClient(url).stream("/stream", b"end", got.append)
    await asyncio.wait_for(stream.wait_closed(), 5)
    assert b"".join(got) == b"one" + b"two" * 5000 + b"three"


async def test_a_refused_stream_raises_with_the_status_text_and_location(
    server: tuple[str, list[str]]
) -> None:
    url, _ = server
    with pytest.raises(StreamRefused) as refused:
        await RawClient(url).stream("/stream", b"refuse", lambda _: None)
    assert (refused.value.status, refused.value.message, refused.value.location) == (
        307, "not the leader", "//x:1"
    )


async def test_what_the_consumer_raises_ends_the_stream_with_that_error(
    server: tuple[str, list[str]]
) -> None:
    url, _ = server

    def consume(data: bytes) -> None:
        if data.startswith(b"two"):
            raise ValueError("bad record")

    stream = await RawClient(url).stream("/stream", b"wait", consume)
    with pytest.raises(ValueError, match="bad record"):
        await asyncio.wait_for(stream.wait_closed(), 5)


async def test_a_malformed_or_broken_response_is_a_connection_error() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        request_body = await reader.read(100)
        if request_body == b"garbage":
            writer.write(b"SPDY/9 nonsense\r\n\r\n")
        else:  # a head promising more body than it sends
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for body in (b"garbage", b"truncated"):
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(RawClient(f"http://127.0.0.1:{port}").post("/", body), 5)
    finally:
        server.close()
        await server.wait_closed()


async def test_abort_releases_a_call_the_server_never_answers() -> None:
    stop = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await stop.wait()  # a stopped master: reads, never answers
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RawClient(f"http://127.0.0.1:{port}")
    try:
        call = asyncio.create_task(client.post("/", b"x"))
        await asyncio.sleep(0.2)
        assert not call.done()
        client.abort()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(call, 5)
    finally:
        stop.set()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def ws_server() -> AsyncIterator[str]:
    """Echoes every message reversed; `ping` makes it ping, `bye` makes it close, `refuse` in
    the query string refuses the handshake."""

    async def socket(request: web.Request) -> web.StreamResponse:
        if "refuse" in request.query:
            return web.Response(status=503, text="recovering\n")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            if data == b"ping":
                await ws.ping(b"are you there")
            elif data == b"bye":
                await ws.close(message=b"bye")
                break
            await ws.send_bytes(data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/ws", socket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_socket_carries_masked_messages_of_every_length_both_ways(ws_server: str) -> None:
    got: list[bytes] = []
    client = RawClient(ws_server)
    socket = await client.socket("/ws", b"first", got.append)
    # Every header length (7-bit, 16-bit, 64-bit) and a length that is not a multiple of 4.
    sent = [b"first", b"", b"x", b"abcde", b"y" * 125, b"z" * 126, bytes(range(256)) * 300]
    for message in sent[1:]:
        socket.send(message)
    socket.send(b"ping")  # the server pings: answered without the consumer seeing it
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < len(sent) + 1:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.01)
    assert got == [m[::-1] for m in sent] + [b"gnip"]
    socket.send(b"bye")  # the server closes: the socket ends normally
    await asyncio.wait_for(socket.wait_closed(), 10)
    with pytest.raises(ConnectionError):
        socket.send(b"after")
    await client.close()


async def test_a_refused_handshake_raises_with_the_status_and_text(ws_server: str) -> None:
    client = RawClient(ws_server)
    with pytest.raises(StreamRefused) as refused:
        await client.socket("/ws?refuse=1", b"first", lambda message: None)
    assert (refused.value.status, refused.value.message) == (503, "recovering")
