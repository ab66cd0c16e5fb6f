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

With `--turns` it also measures what a bare loop turn costs with all those connections
registered (`turn_us`: a callback re-arming itself `--rate` times a second, CPU per loop
iteration: a turn that wakes from `select()`; `spin_turn_us`: a callback re-queued with
`call_soon`, a turn of a loop that never sleeps), and every mode reports how many loop iterations it took (`loop_turns`): a
record sent from a timer's turn goes out in the next one (the socket's `call_soon` flush, the
stream's writer task), so a lone record costs a write and a loop turn.

`--wakes RATE ...` measures only what waking the sleeping loop costs, against the gap it slept:
a client process sends a byte RATE times a second on a TCP connection the server ignores
(a timer cannot set a sleep shorter than a millisecond, the resolution of `select()`'s timeout),
`wake_us` the server's CPU per loop turn at each rate (docs/evaluation.md, "The event loop's
wake-ups"):

    .venv/bin/python bench/writes.py --clients 600 --readers 6 --pin --seconds 3 --repeat 3 \
        --wakes 300 1000 2000 4000 8000 16000

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


def poke(port: int, rate: float, seconds: float) -> None:
    """`--wakes`' client: one byte on a plain TCP connection `rate` times a second (paced by
    spinning on the clock, so the gaps are exact), for `seconds`."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    end_at = next_at + seconds
    while next_at < end_at:
        while time.perf_counter() < next_at:
            pass
        sock.send(b"x")
        next_at += interval
    sock.close()


async def run_wakes(args: argparse.Namespace, rate: float) -> tuple[float, float, int]:
    """`wake` mode: a client process (`poke`, on the other CPUs with `--pin`) sends a byte
    `rate` times a second on a TCP connection whose protocol does nothing with it, while every
    other client's connection stays open and registered: each byte wakes the sleeping loop, at
    any gap (a timer cannot set a sleep shorter than a millisecond: `select()`'s timeout's
    resolution). Returns
    the CPU per loop turn, loop turns per byte and the bytes received."""
    loop = asyncio.get_running_loop()
    received = [0]

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received[0] += len(data)

    server = await loop.create_server(Sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--poke", str(port), "--rate", str(rate),
                              "--seconds", str(args.seconds + 1.5)] + (["--pin"] if args.pin else []))
    try:
        await asyncio.sleep(0.5)
        turns0, bytes0, cpu0 = LOOP_TURNS[0], received[0], time.process_time()
        await asyncio.sleep(args.seconds)
        turns, got = LOOP_TURNS[0] - turns0, received[0] - bytes0
        cpu = time.process_time() - cpu0
    finally:
        child.wait()
        server.close()
    return cpu / max(turns, 1), turns / max(got, 1), got


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
        if args.wakes:
            _count_turns(asyncio.get_running_loop())
            for _ in range(args.repeat):
                for rate in args.wakes:
                    per_turn, turns_per_byte, _received = await run_wakes(args, rate)
                    results.setdefault(f"wake@{rate:g}/s", []).append(per_turn)
                    results.setdefault(f"wake@{rate:g}/s turns per byte", []).append(turns_per_byte)
            return results
        modes = ["idle", "socket-spread", "socket-batched", "stream-spread", "stream-batched"]
        if args.turns:
            modes = ["turn", "spin"] if args.turns_only else ["turn", "spin", *modes]
        _count_turns(asyncio.get_running_loop())
        for _ in range(args.repeat):
            for mode in modes:
                before = LOOP_TURNS[0]
                per_iteration = await run_mode(mode, sockets, streams, payload, args)
                results.setdefault(mode, []).append(per_iteration)
                results.setdefault(f"{mode}/loop-turns", []).append(LOOP_TURNS[0] - before)
        return results
    finally:
        for child in children:
            child.terminate()
            child.wait()
        await runner.cleanup()


# Event-loop iterations (`_run_once` calls) so far: what a loop turn costs is CPU over these.
LOOP_TURNS = [0]


def _count_turns(loop: asyncio.AbstractEventLoop) -> None:
    """Count the loop's iterations (a Python call per turn, ~0.1 µs, inside what is measured)."""
    run_once = loop._run_once  # type: ignore[attr-defined]

    def counted() -> None:
        LOOP_TURNS[0] += 1
        run_once()

    loop._run_once = counted  # type: ignore[attr-defined]


async def run_turns(args: argparse.Namespace) -> float:
    """`turn` mode: a callback that re-arms itself `--rate` times a second and does nothing
    else, with every client's connection registered with the selector: the CPU of a loop turn
    that wakes from `select()`, runs one handle and goes back to sleep."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / args.rate
    done = loop.create_future()
    end_at = loop.time() + args.seconds
    count = [0]

    def tick(at: float) -> None:
        count[0] += 1
        if at >= end_at:
            done.set_result(None)
            return
        loop.call_at(at + interval, tick, at + interval)

    start = time.process_time()
    loop.call_at(loop.time() + interval, tick, loop.time() + interval)
    await done
    return (time.process_time() - start) / count[0]


async def run_spin(args: argparse.Namespace) -> float:
    """`spin` mode: a callback that re-queues itself with `call_soon` for `--seconds`: every
    loop turn polls the selector without sleeping (`select(0)`) and runs that one handle, the
    turn of a loop that is never idle."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    end_at = loop.time() + args.seconds
    count = [0]

    def spin() -> None:
        count[0] += 1
        if count[0] % 1000 == 0 and loop.time() >= end_at:
            done.set_result(None)
            return
        loop.call_soon(spin)

    start = time.process_time()
    loop.call_soon(spin)
    await done
    return (time.process_time() - start) / count[0]


async def run_mode(mode: str, sockets: list[MessageSocket], streams: list[RecordStream],
                   payload: bytes, args: argparse.Namespace) -> float:
    """The process's CPU seconds per timed iteration in one mode."""
    if mode == "turn":
        return await run_turns(args)
    if mode == "spin":
        return await run_spin(args)
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
    parser.add_argument("--turns", action="store_true",
                        help="also the CPU per bare loop turn (`turn_us`) with every connection open")
    parser.add_argument("--turns-only", action="store_true", help="--turns, and no write modes")
    parser.add_argument("--wakes", type=float, nargs="+", metavar="RATE",
                        help="only the wake-up's cost: a client process sends a byte RATE times "
                             "a second (each rate in turn), CPU per loop turn (`wake_us`)")
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    parser.add_argument("--poke", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poke:
        if args.pin:
            os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
        poke(args.poke, args.rate, args.seconds)
        return
    if args.reader:
        if args.pin:
            os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
        asyncio.run(reader(args.reader, args.clients))
        return
    args.turns = args.turns or args.turns_only
    results = asyncio.run(serve(args))
    if args.wakes:
        print(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("reader", "poke")},
                          "wake_us": {m: round(statistics.median(v) * 1e6, 1) for m, v in results.items()
                                      if not m.endswith("per byte")},
                          "turns_per_byte": {m: round(statistics.median(v), 2) for m, v in results.items()
                                             if m.endswith("per byte")},
                          "runs_us": {m: [round(x * 1e6, 1) for x in v] for m, v in results.items()
                                      if not m.endswith("per byte")},
                          "load": os.getloadavg()}, indent=1))
        return
    n = args.records
    median = {mode: statistics.median(values) for mode, values in results.items()}
    counts = {m: vs for m, vs in results.items() if m.endswith("/loop-turns")}
    out: dict[str, object] = {"args": {k: v for k, v in vars(args).items() if k != "reader"},
                              "cpu_us_per_iteration": {m: [round(v * 1e6, 1) for v in vs]
                                                       for m, vs in results.items() if m not in counts},
                              "loop_turns": counts,
                              "load": os.getloadavg()}
    if args.turns:
        # The bare turn: CPU per iteration of the self-re-arming callback over loop turns per
        # iteration (one, unless something else woke the loop).
        iterations = args.seconds * args.rate * args.repeat
        out["turn_us"] = round(median["turn"] * 1e6 * iterations / sum(counts["turn/loop-turns"]), 1)
        # The busy turn: a `spin` iteration is one loop turn.
        out["spin_turn_us"] = round(median["spin"] * 1e6, 2)
    for kind in () if args.turns_only else ("socket", "stream"):
        spread, batched = median[f"{kind}-spread"], median[f"{kind}-batched"]
        if n > 1:
            per_write = (spread - batched) / (n - 1)
            per_record = (batched - median["idle"] - per_write) / n
            out[f"{kind}_write_us"] = round(per_write * 1e6, 1)
            out[f"{kind}_record_us"] = round(per_record * 1e6, 1)
        out[f"{kind}_alone_us"] = round((spread - median["idle"]) / n * 1e6, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
