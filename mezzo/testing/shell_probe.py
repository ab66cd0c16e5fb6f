"""The shell probe: what a real master's HTTP shell costs on the machine at hand.

The simulator (`mezzo.sim`) measures the master core's CPU in its own process, so that part
follows whatever machine it runs on; the shell's costs (a message read from an agent's socket,
a scheduler call's request and answer, the loop's wake-ups, the writes) are constants measured
once on the reference machine (`mezzo.sim.master_node`). This module measures the same two
figures those constants came from, against a real `mezzo master` process on loopback, and
divides them by the reference machine's:

- `agent_message_cost`: `--agents` emulated agents (the real agent core and message socket,
  `mezzo.testing.emulated_agent`) each send `calls` PONG calls a second, unasked; the master's
  CPU time (psutil, user + system) over the window per PONG it received (`bench/pong.py`).
  Reference: 26.9 µs at 1,000 agents, 3 calls a second each, `--agent_ping_timeout 60secs`.
- `scheduler_call_cost`: 16 frameworks post an implicit RECONCILE one after another, each on
  its keep-alive connection, from two client processes writing pymesos's bytes on raw sockets;
  the master's CPU per call less what decoding and handling the call costs an in-process core
  (`bench/scheduler_calls.py`). Reference: 43 µs (`SCHEDULER_REQUEST_OVERHEAD`).

`measure_shell_factor` runs both and returns the geometric mean of the two ratios: the factor
`mezzo sim calibrate --shell-factor measure` charges the shell's constants and the message
latency with (`mezzo.sim.master_node.SHELL_FACTOR`; docs/evaluation.md, "On another machine").
It takes about 40 s and both CPUs: run it on an otherwise idle machine.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from mezzo.api.internal import AgentCall, AgentCallType, AgentPong
from mezzo.api.scheduler import decode_call
from mezzo.testing.emulated_agent import EmulatedAgent
from mezzo.testing.master_cluster import MasterCluster
from mezzo.testing.processes import log_tail
from mezzo.testing.raw_scheduler import RawScheduler

# The reference machine's figures for the two probes at their default shapes (2026-12-06,
# docs/evaluation.md): what `SHELL_FACTOR` 1.0 stands for.
REFERENCE_PONG_US = 26.9
REFERENCE_SCHEDULER_CALL_US = 43.0


def master_command() -> list[str]:
    """The `mezzo` entry point of this interpreter's environment (cProfiled when
    MEZZO_BENCH_PROFILE names a file: the benchmarks' way of profiling the master)."""
    profile = os.environ.get("MEZZO_BENCH_PROFILE")
    prefix = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    script = Path(sys.executable).parent / "mezzo"
    if not script.exists():  # not installed as a console script beside this interpreter
        return [sys.executable, "-c", "from mezzo.cli.main import main; main()"]
    return [*prefix, str(script)]


def start_master(extra: Sequence[str], command: Sequence[str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A real `mezzo master` on 127.0.0.1, port 0, in-memory registry; returns it and its URL."""
    work = Path(tempfile.mkdtemp(prefix="mezzo-probe-"))
    port_file, log = work / "port", work / "master.log"
    with log.open("wb") as stderr:  # the master's warnings stay out of the caller's output
        proc = subprocess.Popen(
            [*(command or master_command()), "master", "--ip", "127.0.0.1", "--port", "0",
             "--registry", "in_memory", "--work_dir", str(work), "--port_file", str(port_file),
             "--logging_level", "WARNING", *extra],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the master did not start: {log_tail(log, 5)}")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


async def get_json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return dict(await resp.json())


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --- agent messages ----------------------------------------------------------------------


class _CountingAgent(EmulatedAgent):
    """Counts the PONG calls it posts (into the shared `counter`)."""

    def __init__(self, url: str, hostname: str, counter: list[int]) -> None:
        super().__init__(url, hostname=hostname)
        self.counter = counter

    def post(self, call: AgentCall) -> None:
        if call.type == AgentCallType.PONG:
            self.counter[0] += 1
        super().post(call)


async def _send_pongs(agent: EmulatedAgent, per_second: float) -> None:
    """`per_second` PONG calls a second from `agent`, at a random phase."""
    await asyncio.sleep(random.random() / per_second)
    while True:
        agent.post(AgentCall(type=AgentCallType.PONG, agent_id=agent.core.info.id,
                             pong=AgentPong(ping_id=0)))
        await asyncio.sleep(1.0 / per_second)


async def agent_message_cost(url: str, master_pid: int, agents: int = 1000, calls: float = 3.0,
                             seconds: float = 10.0,
                             extra: Callable[[], dict[str, float]] | None = None) -> dict[str, Any]:
    """Against the master at `url` (pid `master_pid`, started with a long
    `--agent_ping_timeout`): `agents` emulated agents each posting `calls` PONGs a second;
    the master's CPU per PONG over `seconds`. `extra` reads counters of the caller's own
    (e.g. the loop's turns) at both ends of the window; their differences per PONG are added
    under the same keys."""
    counter = [0]
    members = [_CountingAgent(url, f"a{i}", counter) for i in range(agents)]
    for agent in members:
        await agent.start()
    deadline = time.monotonic() + 120
    while (await get_json(url + "/metrics/snapshot")).get("master/slaves_active", 0) < agents:
        if time.monotonic() > deadline:
            raise RuntimeError("the emulated agents did not all register")
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)
    flood = [asyncio.create_task(_send_pongs(agent, calls)) for agent in members if calls > 0]
    proc = psutil.Process(master_pid)
    # The main thread's voluntary context switches: each is the loop going to sleep in
    # `select()` (its one blocking call), so the count is how often it woke up.
    before = (counter[0], cpu_seconds(proc), proc.num_ctx_switches().voluntary, time.monotonic(),
              extra() if extra else {})
    await asyncio.sleep(seconds)
    after = (counter[0], cpu_seconds(proc), proc.num_ctx_switches().voluntary, time.monotonic(),
             extra() if extra else {})
    metrics = await get_json(url + "/metrics/snapshot")
    for task in flood:
        task.cancel()
    await asyncio.gather(*flood, return_exceptions=True)
    for agent in members:
        await agent.stop()
    pongs = after[0] - before[0]
    elapsed = after[3] - before[3]
    result: dict[str, Any] = {
        "agents": agents, "calls": calls, "seconds": round(elapsed, 1),
        "pongs": pongs, "pongs_per_s": round(pongs / elapsed, 1),
        "master_cpu_pct": round(100 * (after[1] - before[1]) / elapsed, 1),
        "master_cpu_us_per_pong": round(1e6 * (after[1] - before[1]) / pongs, 1) if pongs else None,
        "wakeups_per_pong": round((after[2] - before[2]) / pongs, 2) if pongs else None,
        "unreachable": metrics.get("master/slaves_unreachable", 0),
    }
    for key, value in after[4].items():
        result[key] = round((value - before[4].get(key, 0)) / pongs, 2) if pongs else None
    return result


# --- scheduler calls ---------------------------------------------------------------------

CALLS: dict[str, dict[str, Any]] = {
    "reconcile": {"type": "RECONCILE", "reconcile": {"tasks": []}},
    "suppress": {"type": "SUPPRESS"},
    "revive": {"type": "REVIVE"},
}


def call_body(kind: str, framework_id: dict[str, Any]) -> bytes:
    return json.dumps({**CALLS[kind], "framework_id": framework_id}).encode()


def request_bytes(host: str, body: bytes, stream_id: str) -> bytes:
    """The request pymesos sends for a call (http.client's header order)."""
    return (
        f"POST /api/v1/scheduler HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        f"Mesos-Stream-Id: {stream_id}\r\n\r\n"
    ).encode() + body


class _Poster:
    """One framework's keep-alive connection, posting its call in a loop; `done[slot]` counts
    the calls answered (shared with the measuring process)."""

    def __init__(self, request: bytes, done: Any, slot: int, split: bool) -> None:
        # http.client (pymesos) writes the head, then the body: with asyncio's TCP_NODELAY,
        # two segments, which the master may read apart.
        head, _, body = request.partition(b"\r\n\r\n")
        self.writes = [head + b"\r\n\r\n", body] if split else [request]
        self.done = done
        self.slot = slot

    async def run(self, host: str, port: int, stop: asyncio.Event) -> None:
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
        await asyncio.gather(*(_Poster(raw, done, slot, split).run(host, port, flag) for slot, raw in requests))
        await watcher

    asyncio.run(run())


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


async def scheduler_call_cost(call: str = "reconcile", frameworks: int = 16, clients: int = 2,
                              split: bool = False, seconds: float = 10.0,
                              warmup: float = 2.0) -> dict[str, Any]:
    """A master of its own; `frameworks` frameworks post `call` back to back from `clients`
    processes; the master's CPU per call over `seconds`, and the shell's share of it."""
    proc, url = start_master(["--allocation_interval", "1secs"])
    host, port = url.removeprefix("http://").rsplit(":", 1)
    schedulers: list[RawScheduler] = []
    try:
        requests = []
        for i in range(frameworks):
            sched = RawScheduler(url, f"calls-{i}")
            await sched.subscribe()
            schedulers.append(sched)
            assert sched.framework_id is not None
            requests.append((i, request_bytes(f"{host}:{port}", call_body(call, sched.framework_id),
                                              sched.stream_id)))
        done = multiprocessing.Array("q", frameworks, lock=False)
        stop = multiprocessing.Event()
        posters = [multiprocessing.Process(target=_client_main, daemon=True,
                                           args=(host, int(port), requests[k::clients], done, stop, split))
                   for k in range(clients)]
        for poster in posters:
            poster.start()
        await asyncio.sleep(warmup)
        master = psutil.Process(proc.pid)
        them = [psutil.Process(p.pid) for p in posters]
        cpu0, theirs0, done0, t0 = (cpu_seconds(master), sum(map(cpu_seconds, them)), sum(done),
                                    time.perf_counter())
        await asyncio.sleep(seconds)
        cpu1, theirs1, done1, t1 = (cpu_seconds(master), sum(map(cpu_seconds, them)), sum(done),
                                    time.perf_counter())
        stop.set()
        for poster in posters:
            await asyncio.to_thread(poster.join, 10)
            if poster.exitcode != 0:
                raise RuntimeError(f"a client process failed (exit status {poster.exitcode})")
    finally:
        for sched in schedulers:
            await sched.close()
        proc.terminate()
        proc.wait()
    answered = done1 - done0
    per_request = (cpu1 - cpu0) / max(answered, 1) * 1e6
    core = core_us(call)
    return {
        "call": call, "frameworks": frameworks, "clients": clients, "split": split,
        "seconds": round(t1 - t0, 2),
        "requests": answered, "requests_per_second": round(answered / (t1 - t0)),
        "master_cpu_us_per_request": round(per_request, 1),
        "master_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 2),
        "client_cpu_us_per_request": round((theirs1 - theirs0) / max(answered, 1) * 1e6, 1),
        "core_and_codec_us": round(core, 1),
        "shell_us_per_request": round(per_request - core, 1),
    }


# --- the factor --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShellMeasurement:
    pong_us: float
    scheduler_call_us: float

    @property
    def pong_ratio(self) -> float:
        return self.pong_us / REFERENCE_PONG_US

    @property
    def scheduler_call_ratio(self) -> float:
        return self.scheduler_call_us / REFERENCE_SCHEDULER_CALL_US

    @property
    def factor(self) -> float:
        """The two ratios' geometric mean: agents' messages and scheduler calls weigh alike."""
        return round(math.sqrt(self.pong_ratio * self.scheduler_call_ratio), 2)


async def _agent_probe(agents: int, calls: float, seconds: float) -> dict[str, Any]:
    proc, url = start_master(["--agent_ping_timeout", "60secs", "--max_agent_ping_timeouts", "5"])
    try:
        return await agent_message_cost(url, proc.pid, agents=agents, calls=calls, seconds=seconds)
    finally:
        proc.terminate()
        proc.wait()


def measure_shell_factor(agents: int = 1000, calls: float = 3.0, seconds: float = 10.0,
                         frameworks: int = 16, clients: int = 2) -> ShellMeasurement:
    """Both probes at the reference shapes (the defaults), each against a master of its own."""
    pong = asyncio.run(_agent_probe(agents, calls, seconds))
    scheduler = asyncio.run(scheduler_call_cost(frameworks=frameworks, clients=clients, seconds=seconds))
    if not pong["master_cpu_us_per_pong"] or scheduler["requests"] == 0:
        raise RuntimeError("the probe measured nothing (no PONG or no call answered)")
    return ShellMeasurement(float(pong["master_cpu_us_per_pong"]), float(scheduler["shell_us_per_request"]))
