"""The master's CPU cost per v1 scheduler call over HTTP (issue 11: the HTTP shell's share).

A real `mezzo master` process; `--frameworks` frameworks subscribe (`bench/raw_scheduler.py`)
and each then posts one call after another on its own keep-alive connection, the next as soon
as the 202 is back, as a pymesos scheduler does (one call at a time per driver). The requests
are the bytes pymesos's `http.client` sends (Host, Accept-Encoding: identity, Content-Length,
Content-Type, Mesos-Stream-Id), written on a raw socket from `--clients` processes: the
clients must cost the shared CPUs as little as possible, since the master is what is measured.
`http.client` writes a request's head and body apart (two `send()`s); `--split` does too, else
each request is one write.

The call (`--call`) is one the master accepts with 202 and really handles, but that emits no
event, so that the figure is the cost of a request and not of stream records as well:

- `reconcile` (default): implicit RECONCILE of a framework with no tasks: decoded, the
  framework and stream id checked, counted, the (empty) task set walked;
- `suppress` / `revive`: the allocator's suppression of the framework's role toggled (revive
  also asks for an allocation run; with no agents the run is cheap);

ACKNOWLEDGE, the launch path's most frequent call, needs real updates from agents, whose own
requests would then share the master's CPU: `bench/launch.py rate` is that figure.

The result: requests per second, the master's CPU time (user + system, psutil) per request
over the window, and what the same call costs the decoder and the master core alone (measured
in this process on an in-process `Master` with a subscribed framework); the difference is the
HTTP shell's cost per request (aiohttp, middlewares, the handler, the 202 and its write).

    .venv/bin/python bench/scheduler_calls.py --frameworks 16 --clients 2 --seconds 10
    MEZZO_BENCH_PROFILE=/tmp/master.prof .venv/bin/python bench/scheduler_calls.py  # cProfile

Results are recorded in docs/benchmarks.md ("Scheduler calls: the HTTP shell's cost").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.launch import start_master  # noqa: E402
from bench.raw_scheduler import RawScheduler  # noqa: E402
from mezzo.api.scheduler import decode_call  # noqa: E402
from mezzo.testing.master_cluster import MasterCluster  # noqa: E402

CALLS = {
    "reconcile": {"type": "RECONCILE", "reconcile": {"tasks": []}},
    "suppress": {"type": "SUPPRESS"},
    "revive": {"type": "REVIVE"},
}


def call_body(kind: str, framework_id: dict) -> bytes:
    return json.dumps({**CALLS[kind], "framework_id": framework_id}).encode()


def request_bytes(host: str, body: bytes, stream_id: str) -> bytes:
    """The request pymesos sends for a call (http.client's header order)."""
    return (
        f"POST /api/v1/scheduler HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        f"Mesos-Stream-Id: {stream_id}\r\n\r\n"
    ).encode() + body


class Poster:
    """One framework's keep-alive connection, posting its call in a loop; `done[slot]` counts
    the calls answered (shared with the measuring process when posting from another one)."""

    def __init__(self, request: bytes, done: Any, slot: int, split: bool) -> None:
        # http.client (pymesos) writes the head, then the body: with asyncio's TCP_NODELAY,
        # two segments, which the master may read apart.
        head, _, body = request.partition(b"\r\n\r\n")
        self.writes = [head + b"\r\n\r\n", body] if split else [request]
        self.done = done
        self.slot = slot

    async def run(self, host: str, port: int, stop: Any) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                for chunk in self.writes:
                    writer.write(chunk)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                if status != 202:
                    raise SystemExit(f"the master answered {status}: {body[:200]!r}")
                self.done[self.slot] += 1
        finally:
            writer.close()


def core_us(kind: str, budget: float = 1.0) -> float:
    """Median µs of decoding the call and handling it in an in-process master core."""
    cluster = MasterCluster()
    sched = cluster.add_scheduler()
    body = call_body(kind, {"value": sched.framework_id})
    master, stream_id = cluster.master, sched.stream_id
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(samples) < 100:
        start = time.thread_time()
        for _ in range(100):
            master.scheduler_call(decode_call(body), stream_id)
        samples.append((time.thread_time() - start) / 100)
    return statistics.median(samples) * 1e6


def _client_main(host: str, port: int, requests: list[tuple[int, bytes]], done: Any, stop: Any,
                 split: bool) -> None:
    """A client process: its share of the frameworks' connections."""

    async def run() -> None:
        flag = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            flag.set()

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(Poster(raw, done, slot, split).run(host, port, flag) for slot, raw in requests))
        await watcher

    asyncio.run(run())


async def measure(args: argparse.Namespace) -> dict:
    proc, url = start_master(["--allocation_interval", "1secs"])
    host, port = url.removeprefix("http://").rsplit(":", 1)
    schedulers: list[RawScheduler] = []
    try:
        requests = []
        for i in range(args.frameworks):
            sched = RawScheduler(url, f"calls-{i}")
            await sched.subscribe()
            schedulers.append(sched)
            assert sched.framework_id is not None
            requests.append((i, request_bytes(f"{host}:{port}", call_body(args.call, sched.framework_id),
                                              sched.stream_id)))
        done = multiprocessing.Array("q", args.frameworks, lock=False)
        stop = multiprocessing.Event()
        clients = [multiprocessing.Process(target=_client_main, daemon=True,
                                           args=(host, int(port), requests[k::args.clients], done, stop,
                                                 args.split))
                   for k in range(args.clients)]
        for client in clients:
            client.start()
        await asyncio.sleep(args.warmup)
        master = psutil.Process(proc.pid)
        them = [psutil.Process(c.pid) for c in clients]
        cpu0, theirs0, done0, t0 = _cpu(master), sum(map(_cpu, them)), sum(done), time.perf_counter()
        await asyncio.sleep(args.seconds)
        cpu1, theirs1, done1, t1 = _cpu(master), sum(map(_cpu, them)), sum(done), time.perf_counter()
        stop.set()
        for client in clients:
            await asyncio.to_thread(client.join, 10)
            if client.exitcode != 0:
                raise SystemExit(f"a client process failed (exit status {client.exitcode})")
        answered = done1 - done0
        per_request = (cpu1 - cpu0) / max(answered, 1) * 1e6
        return {
            "call": args.call, "frameworks": args.frameworks, "clients": args.clients, "split": args.split,
            "seconds": round(t1 - t0, 2),
            "requests": answered, "requests_per_second": round(answered / (t1 - t0)),
            "master_cpu_us_per_request": round(per_request, 1),
            "master_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 2),
            "client_cpu_us_per_request": round((theirs1 - theirs0) / max(answered, 1) * 1e6, 1),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    finally:
        for sched in schedulers:
            await sched.close()
        proc.terminate()
        proc.wait()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--call", choices=sorted(CALLS), default="reconcile")
    parser.add_argument("--frameworks", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1, help="processes posting the calls")
    parser.add_argument("--split", action="store_true",
                        help="write each request's head and body apart, as http.client (pymesos) does")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    result = asyncio.run(measure(args))
    core = core_us(args.call)
    result["core_and_codec_us"] = round(core, 1)
    result["shell_us_per_request"] = round(result["master_cpu_us_per_request"] - core, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
