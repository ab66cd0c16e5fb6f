"""The master shell's CPU per write and per record on loopback, written the way the master writes.

The master sends agents' messages on `mezzo.net.message_socket.MessageSocket`s and frameworks'
events on `mezzo.net.stream.RecordStream`s. Both coalesce: what one socket or stream is sent in
one turn of the event loop goes out in one write (one `send()`). So a record costs the master
a share of a write when it goes out with others to the same client, and a whole write when it
goes out alone (200 frameworks' streams and 1,000 agents' sockets, as in `bench/scale.py`,
where nearly every record is alone). This benchmark measures the two terms of

    CPU per loop turn = per_write x distinct clients written + per_record x records

with the real classes: an aiohttp server in this process opens `--clients` sockets and
`--clients` streams to `--readers` subprocesses (which only read and discard: on loopback the
sender's `send()` also does the receiving side's TCP work and wakes the reader, as it does
for the real master's agents and frameworks). A timer turns the loop `--rate` times a second
and in each turn sends `--records` pre-encoded records (`--size` bytes, an UPDATE-sized JSON
record) either one each to that many different clients ("spread": that many writes) or all
to one client ("batched": one write). A third mode sends nothing (the timer's own cost). The
process's CPU time (user + system) over `--seconds` in each mode, repeated and interleaved,
gives per write = (spread - batched) / (turns x (records - 1)) and per record =
(batched - idle - turns x per_write) / (turns x records), each for sockets and for streams.

    .venv/bin/python bench/writes.py --seconds 5 --repeat 3

Recorded in docs/evaluation.md, "Calibration"; used by mezzo/sim/master_node.py's
`SOCKET_WRITE_OVERHEAD`, `STREAM_WRITE_OVERHEAD` and `RECORD_OVERHEAD`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from mezzo.net.message_socket import MessageSocket, SocketSubscriber, serve_socket  # noqa: E402
from mezzo.net.stream import RecordStream, Subscriber, serve_subscription  # noqa: E402


async def reader(url: str, clients: int) -> None:
    """Open the sockets and streams and read everything until the server goes away."""
    connector = aiohttp.TCPConnector(limit=0)  # every socket and stream at once
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:

        async def socket() -> None:
            async with session.ws_connect(f"{url}/socket", autoping=True, max_msg_size=0) as ws:
                await ws.send_bytes(b"{}")
                async for _ in ws:
                    pass

        async def stream() -> None:
            async with session.get(f"{url}/stream") as response:
                async for _ in response.content.iter_any():
                    pass

        await asyncio.gather(*(socket() for _ in range(clients)), *(stream() for _ in range(clients)),
                             return_exceptions=True)


async def serve(args: argparse.Namespace) -> dict[str, list[float]]:
    sockets: list[MessageSocket] = []
    streams: list[RecordStream] = []

    async def socket_handler(request: web.Request) -> web.StreamResponse:
        def register(socket: MessageSocket, first: bytes) -> SocketSubscriber:
            sockets.append(socket)
            return SocketSubscriber(on_message=lambda message: None)
        return await serve_socket(request, register)

    async def stream_handler(request: web.Request) -> web.StreamResponse:
        def register(stream: RecordStream) -> Subscriber:
            streams.append(stream)
            return Subscriber()
        return await serve_subscription(request, register)

    app = web.Application()
    app.router.add_get("/socket", socket_handler)
    app.router.add_get("/stream", stream_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if args.pin:  # as bench/scale.py pins: the master on CPU 0, its clients on the others
        os.sched_setaffinity(0, {0})
    per_reader = -(-args.clients // args.readers)
    children = [subprocess.Popen([sys.executable, __file__, "--reader", f"http://127.0.0.1:{port}",
                                  "--clients", str(per_reader)] + (["--pin"] if args.pin else []))
                for _ in range(args.readers)]
    args.clients = per_reader * args.readers
    try:
        deadline = time.monotonic() + 30
        while len(sockets) < args.clients or len(streams) < args.clients:
            if time.monotonic() > deadline:
                raise RuntimeError("the reader did not connect")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        payload = json.dumps({"type": "UPDATE", "update": {"status": {"x": "y" * (args.size - 40)}}}).encode()
        results: dict[str, list[float]] = {}
        modes = ["idle", "socket-spread", "socket-batched", "stream-spread", "stream-batched"]
        for _ in range(args.repeat):
            for mode in modes:
                results.setdefault(mode, []).append(await run_mode(mode, sockets, streams, payload, args))
        return results
    finally:
        for child in children:
            child.terminate()
            child.wait()
        await runner.cleanup()


async def run_mode(mode: str, sockets: list[MessageSocket], streams: list[RecordStream],
                   payload: bytes, args: argparse.Namespace) -> float:
    """The process's CPU seconds per loop turn in one mode."""
    clients: list[MessageSocket] | list[RecordStream] = sockets if mode.startswith("socket") else streams
    records = args.records
    interval = 1.0 / args.rate
    turns = 0
    loop = asyncio.get_running_loop()
    start = time.process_time()
    end_at = loop.time() + args.seconds
    next_at = loop.time()
    nth = 0
    while loop.time() < end_at:
        if mode.endswith("spread"):
            for i in range(records):
                clients[(nth + i) % len(clients)].send(payload)
        elif mode.endswith("batched"):
            client = clients[nth % len(clients)]
            for _ in range(records):
                client.send(payload)
        nth += records
        turns += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    await asyncio.sleep(0.2)  # the last turn's writes
    used = time.process_time() - start
    return used / turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--records", type=int, default=10, help="records sent per loop turn")
    parser.add_argument("--rate", type=float, default=200.0, help="loop turns a second")
    parser.add_argument("--size", type=int, default=400, help="bytes per record")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", type=int, default=1, help="reader processes")
    parser.add_argument("--pin", action="store_true", help="this process on CPU 0, the readers on the others")
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        if args.pin:
            os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
        asyncio.run(reader(args.reader, args.clients))
        return
    results = asyncio.run(serve(args))
    n = args.records
    median = {mode: statistics.median(values) for mode, values in results.items()}
    out: dict[str, object] = {"args": {k: v for k, v in vars(args).items() if k != "reader"},
                              "cpu_us_per_turn": {m: [round(v * 1e6, 1) for v in vs] for m, vs in results.items()},
                              "load": os.getloadavg()}
    for kind in ("socket", "stream"):
        spread, batched = median[f"{kind}-spread"], median[f"{kind}-batched"]
        per_write = (spread - batched) / (n - 1)
        per_record = (batched - median["idle"] - per_write) / n
        out[f"{kind}_write_us"] = round(per_write * 1e6, 1)
        out[f"{kind}_record_us"] = round(per_record * 1e6, 1)
        out[f"{kind}_alone_us"] = round((spread - median["idle"]) / n * 1e6, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
