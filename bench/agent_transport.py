"""The server's CPU per agent->master message, by transport (issue 11's measurement).

A server process (aiohttp, `mezzo.net.request.new_app` and the master's metrics middleware in
front, as the master has them) receives small AgentCalls (a PONG's size) from `--connections`
clients in this process, each sending one message every `--interval` seconds, so that a read
on the server carries about one message, as it does from many agents. Over `--seconds` the
server's CPU time (user + sys, read in the server) is divided by the messages it decoded:

- `post`: one POST per message on a kept-alive connection, answered 202 (today's calls);
- `ws`: one WebSocket per client (`web.WebSocketResponse`), one message each;
- `socket`: the same through mezzo's own server side (`mezzo.net.message_socket.serve_socket`,
  as the master serves agents);
- `stream`: one long chunked POST per client whose body is RecordIO, one record each.

    .venv/bin/python bench/agent_transport.py --connections 300 --interval 0.1 --seconds 10

Recorded in docs/benchmarks.md, "Agent transport (issue 11)".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from mezzo.api.codec import decode, encode  # noqa: E402
from mezzo.api.common import AgentID  # noqa: E402
from mezzo.api.internal import AgentCall, AgentCallType, AgentPong  # noqa: E402
from mezzo.api.recordio import RecordIODecoder, encode_record  # noqa: E402
from mezzo.core.metrics import DaemonMetrics  # noqa: E402
from mezzo.net.http_metrics import http_metrics_middleware  # noqa: E402
from mezzo.net.message_socket import MessageSocket, SocketSubscriber, serve_socket  # noqa: E402
from mezzo.net.request import new_app, read_body  # noqa: E402

BODY = encode(AgentCall(type=AgentCallType.PONG, agent_id=AgentID(value="a" * 36 + "-S1"),
                        pong=AgentPong(ping_id=1234)))


def serve(port_file: str) -> None:
    """The server process: counts messages; `GET /cpu` answers its CPU seconds and count."""
    count = [0]

    @web.middleware
    async def passthrough(request: web.Request, handler: object) -> web.StreamResponse:
        return await handler(request)  # type: ignore[operator, no-any-return]

    async def post(request: web.Request) -> web.Response:
        body = await read_body(request, max_bytes=1 << 20)
        decode(body, AgentCall)
        count[0] += 1
        return web.Response(status=202)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse(autoping=True)
        await socket_.prepare(request)
        async for message in socket_:
            if message.type == aiohttp.WSMsgType.BINARY:
                decode(message.data, AgentCall)
                count[0] += 1
        return socket_

    async def message_socket(request: web.Request) -> web.StreamResponse:
        def register(socket: MessageSocket, first: bytes) -> SocketSubscriber:
            def received(payload: bytes) -> None:
                decode(payload, AgentCall)
                count[0] += 1

            received(first)
            return SocketSubscriber(on_message=received)

        return await serve_socket(request, register)

    async def stream(request: web.Request) -> web.Response:
        decoder = RecordIODecoder()
        async for chunk in request.content.iter_any():
            for record in decoder.feed(chunk):
                decode(record, AgentCall)
                count[0] += 1
        return web.Response(status=202)

    async def cpu(request: web.Request) -> web.Response:
        times = os.times()
        return web.Response(text=json.dumps([times.user + times.system, count[0]]))

    app = new_app(middlewares=[http_metrics_middleware(DaemonMetrics(http=True)), passthrough, passthrough])
    app.router.add_post("/post", post)
    app.router.add_get("/ws", ws)
    app.router.add_get("/socket", message_socket)
    app.router.add_post("/stream", stream)
    app.router.add_get("/cpu", cpu)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    Path(port_file).write_text(str(sock.getsockname()[1]))
    web.run_app(app, sock=sock, print=None, handle_signals=True)


async def client_post(url: str, interval: float, stop: asyncio.Event) -> None:
    from mezzo.testing.raw_http import RawClient
    client = RawClient(url)
    await asyncio.sleep(random.random() * interval)
    while not stop.is_set():
        await client.post("/post", BODY)
        await asyncio.sleep(interval)
    await client.close()


async def client_ws(session: aiohttp.ClientSession, url: str, interval: float, stop: asyncio.Event,
                    path: str = "/ws") -> None:
    async with session.ws_connect(url + path, autoping=True) as socket_:
        await asyncio.sleep(random.random() * interval)
        while not stop.is_set():
            await socket_.send_bytes(BODY)
            await asyncio.sleep(interval)


async def client_stream(host: str, port: int, interval: float, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    record = encode_record(BODY)
    chunk = f"{len(record):x}\r\n".encode() + record + b"\r\n"
    await asyncio.sleep(random.random() * interval)
    while not stop.is_set():
        writer.write(chunk)
        await asyncio.sleep(interval)
    writer.write(b"0\r\n\r\n")
    await reader.read()
    writer.close()


async def measure(args: argparse.Namespace, transport: str, url: str, port: int) -> dict[str, float]:
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def cpu() -> tuple[float, int]:
            async with session.get(url + "/cpu") as resp:
                seconds, count = json.loads(await resp.text())
                return float(seconds), int(count)

        if transport == "post":
            tasks = [client_post(url, args.interval, stop) for _ in range(args.connections)]
        elif transport in ("ws", "socket"):
            tasks = [client_ws(session, url, args.interval, stop, "/" + transport)
                     for _ in range(args.connections)]
        else:
            tasks = [client_stream("127.0.0.1", port, args.interval, stop) for _ in range(args.connections)]
        running = [asyncio.create_task(t) for t in tasks]
        await asyncio.sleep(2.0)  # connections open, steady state
        cpu0, n0 = await cpu()
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, n1 = await cpu()
        wall = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
    messages = n1 - n0
    return {"messages_per_second": round(messages / wall), "server_cpu_share": round((cpu1 - cpu0) / wall, 3),
            "server_cpu_us_per_message": round((cpu1 - cpu0) / max(messages, 1) * 1e6, 1)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    for transport in args.transports.split(","):
        port_file = f"/tmp/mezzo-agent-transport-{os.getpid()}"
        server = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
        try:
            deadline = time.monotonic() + 20
            while not (os.path.exists(port_file) and Path(port_file).read_text().strip()):
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            port = int(Path(port_file).read_text())
            results[transport] = await measure(args, transport, f"http://127.0.0.1:{port}", port)
        finally:
            server.terminate()
            server.wait()
            os.unlink(port_file)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between a client's messages")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--transports", default="post,ws,socket,stream")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    print(json.dumps({"connections": args.connections, "interval": args.interval,
                      "load": os.getloadavg()[0], **asyncio.run(run(args))}, indent=2))


if __name__ == "__main__":
    main()
