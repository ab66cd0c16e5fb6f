"""Scale benchmark: one real master, thousands of real agent connections, 200 busy frameworks.

Everything real on loopback, nothing simulated:

- a ZooKeeper server (Debian package) and two `mezzo master --zk … --zk_session_timeout 2secs`
  processes (a leader and a standby, `mezzo.testing.ha_cluster`), registry in ZooKeeper;
- emulated agents in several processes (`bench/failover.py`'s agent processes:
  `mezzo.testing.ha_cluster.FollowingEmulatedAgent`, the real master <-> agent protocol over real
  TCP, one socket per agent identity, no-op executors, following the leader through
  ZooKeeper), each `cpus:8;mem:16384;disk:100000;ports:[31000-32000]`;
- 200 frameworks in `--framework-processes` processes (raw v1 clients on
  `mezzo.testing.raw_http`, below), each launching `cpus:1;mem:2048`
  tasks on every offer and killing each after a duration drawn from N(30 s, 10 s) (at least 1 s):
  the paper's §6.5 load, with the emulated agent's TASK_KILLED as the task's end;
- in this process, the measurements (probes on their own connections, `mezzo.cli.session`
  for the test framework).

At each size (agents are added to reach it; frameworks run throughout) one JSON line:

- `master_cpu_pct` (split into `master_user_pct` and `master_system_pct`), `master_rss_mb`: the
  leader's CPU (100 = one core) over a steady window of
  `--window` seconds, and its RSS at the end of it (psutil);
- `launch_overhead_p50_s` / `_p99_s`: a test framework subscribes, launches one task on its first
  fitting offer, and the sample is SUBSCRIBE sent → TASK_RUNNING received (the paper's "time
  beyond the task's 10 s": the emulated agent starts the task at once, so RUNNING marks the start
  of those 10 s; a real FINISHED would add one agent → master → scheduler hop), `--samples`
  test frameworks one after the other;
- `launches_per_s` over the window, against `launches_per_s_needed`, the churn of the tasks
  running if each lasted the drawn ~`--task-mean` seconds: below it, something (the emulated
  agents' or the frameworks' processes, or the master) did not keep up and tasks lived longer,
  or `--launch-rate` (`launch_rate`) bounded it: the frameworks then kill at most that many
  tasks a second in all (and launch as many, in the slots the kills free), so that the load
  generators stay within real time and the cluster stays full with tasks that live longer
  (`filled_s`: how long it took to fill);
- `allocation_cycle_ms`: p50 of the master's `allocator/mesos/allocation_run_ms` (the last
  allocation run's duration), sampled every 5 s of the window;
- `state_ms`: GET `/master/state` (whole body read, not parsed), with `tasks` tasks running;
  `get_state_ms`: the operator API's GET_STATE, likewise;
- `loop_stall_max_ms`: the longest answer to GET `/health`, probed every 10 ms on its own
  connection while `/master/state` is served (the master answers /health at once, so a long
  answer is its event loop busy with something else); `get_state_loop_stall_max_ms` the same
  while GET_STATE is served; `idle_loop_stall_max_ms` the same over 3 s with neither served
  (what the load alone costs: allocation runs, surges, the machine's other work);
- `state_master_cpu_ms` / `get_state_master_cpu_ms`: the leader's CPU time while
  `/master/state` / GET_STATE was served (its whole process, so the request plus whatever
  else it did meanwhile): on a shared machine the wall time minus this is waiting for a CPU;
  `state_client_cpu_ms` / `get_state_client_cpu_ms`: this driver's CPU time reading the answer
  (its thread's: on the loaded CPU with the load generators, the client's share of that CPU
  bounds how fast it reads);
- `metrics_snapshot_ms`: the median of five GET `/metrics/snapshot`, and the longest
  `/health` answer while they are served (`metrics_snapshot_loop_stall_max_ms`);
- `fw_calls_per_s`, `fw_cpu_pct`, `fw_cpu_us_per_call`: the busy frameworks' calls (ACCEPT,
  DECLINE, KILL, ACKNOWLEDGE) per second over the window, their processes' CPU (100 = one
  core; psutil user + system) and that CPU per call: what the load generators cost the machine
  the master shares; `agent_cpu_pct` and `agent_cpu_us_per_launch` the same for the
  emulated agents' processes (per launch of the window: each launch is also a kill, two
  updates and their acknowledgements on the agent's side);
- `agents_unreachable`: agents the master marked unreachable (5 missed pings) so far;
  `agent_process_lag_max_ms`: the longest event-loop lag of any emulated-agent process over its
  last 30 s (a process lagging past the ping interval cannot answer pings in time);
- `failover_s` (with `--failover`): SIGKILL of the leader → the standby elected and every agent
  re-registered and every framework re-subscribed, split into `failover_elected_s` (→ the
  standby serves as leader: the dead leader's ZooKeeper session must expire first, so this is
  at least `--session-timeout`) and `failover_recovery_s` (the rest);
  `failover_agents_back_s` / `failover_frameworks_back_s`: from the kill until every agent /
  every framework was first seen back in the leader's `/metrics/snapshot` (to the poll's
  resolution, which is coarse under load: the poll sleeps 9x what a snapshot took);
  `failover_agents_back_exact_s` / `failover_frameworks_back_exact_s` the same on the clients'
  own clocks (the last agent's / framework's SUBSCRIBED from the new leader), and
  `failover_leader_named_s` when the agents' ZooKeeper detectors first named the new leader;
  when the exact figures exist, `failover_s` is the later of them;
  `failover_agent_lag_before_kill_ms` / `failover_fw_lag_before_kill_s` the load generators'
  backlog as the leader died (their processes' longest event-loop lag just before);
  `failover_new_leader_cpu_s` the new leader's CPU time from the kill until the poll saw
  everything back (its own work, against the wall time); `failover_listen_overflows` the
  connections the kernel refused with the accept queue full meanwhile; `lost` counts tasks
  that had run and were reported LOST, DROPPED, GONE, UNKNOWN or UNREACHABLE to the
  frameworks across it (nothing lost: 0), `lost_before_start` those reported so before they
  ever ran (launches in flight when the leader died, which Mesos reports as lost too). The
  killed master is restarted as the new standby. A failover not complete within
  `--failover-timeout` leaves `failover_s` null with `failover_agents_back` /
  `failover_frameworks_back` saying how far it got, and the run goes on.

With `--pin` the masters run on the first CPU and everything else the benchmark starts
(ZooKeeper, the agent and framework processes, this driver and its probes) on the others, so
that on a small machine the master's figures are not its wait for a CPU the load generators
hold; each row says so in `pinned` (null without). With `--failover` the row also says where
the frameworks' re-subscription time went (`fw_*`: from the kill to the SUBSCRIBE that
succeeded, its answer, the first OFFERS after it, the attempts before it by answer).

    .venv/bin/python bench/scale.py --sizes 1000 2000 5000 9000 --failover
    .venv/bin/python bench/scale.py --sizes 1000 --frameworks 20 --window 10   # a quick look

Per-process open files are capped at 20,000 here: the master holds one connection per agent
(its socket, which carries events and calls; two before issue 11), so ~19,700 agents is the
ceiling (`master_fds` in each row; docs/benchmarks.md, "Agent transport (issue 11)").
Recorded in docs/benchmarks.md, "Scale (issue 12)".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import multiprocessing
import os
import queue
import random
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import psutil  # noqa: E402

from bench.failover import _agents_main  # noqa: E402
from mezzo.api.recordio import RecordIODecoder  # noqa: E402
from mezzo.cli.http1 import Connection  # noqa: E402
from mezzo.cli.session import SchedulerSession  # noqa: E402
from mezzo.core.errors import DecodeError  # noqa: E402
from mezzo.core.gc_tuning import tune_for_daemon  # noqa: E402
from mezzo.net.client import StreamRefused  # noqa: E402
from mezzo.testing.ha_cluster import HaCluster, HaMaster, until  # noqa: E402
from mezzo.testing.raw_http import RawClient  # noqa: E402
from mezzo.testing.zookeeper import start_server  # noqa: E402

TASK_CPUS, TASK_MEM = 1.0, 2048.0  # 8 per agent use it whole: no leftovers to offer
LOST_STATES = {"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_UNKNOWN", "TASK_UNREACHABLE"}
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", *LOST_STATES}


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _scalar(offer: dict[str, Any], name: str) -> float:
    return sum(
        r.get("scalar", {}).get("value", 0.0)
        for r in offer.get("resources", [])
        if r.get("name") == name and r.get("type") == "SCALAR"
    )


# ------------------------------------------------------------------------------ frameworks


SCHEDULER = "/api/v1/scheduler"


class CallSender:
    """One subscription's calls to its master: queued encoded, sent in the order they were made
    over at most `connections` keep-alive `RawClient`s carrying the subscription's
    `Mesos-Stream-Id`, one request at a time on each (the master's fast path answers a
    connection with one request pending; pipelined ones would take its slower aiohttp path).
    With one connection the master sees the calls in order; with more, a burst (an OFFERS
    event of thousands of offers after a failover, each answered by an ACCEPT) is not held to
    one round trip per call, and a later call may overtake one in flight. A connection is
    opened when a call finds the others busy. Answers are read and dropped, as before.

    Calls may be queued before `start` (the stream's first events arrive with its head, before
    its headers are handed back); after `stop` (the subscription ended: its master died or
    closed it) the queue is dropped and new calls are ignored: each would have failed against
    the dead master, and one sent to the next master with this stream id would be refused."""

    def __init__(self, base: str, connections: int) -> None:
        self.base = base
        self.connections = connections
        self._queue: deque[bytes] = deque()
        self._idle: list[asyncio.Future[None]] = []  # workers waiting for a call, the warmest last
        self._workers: list[asyncio.Task[None]] = []
        self._stopped = False

    def put(self, body: bytes) -> None:
        if self._stopped:
            return
        self._queue.append(body)
        if self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(None)

    def start(self, stream_id: str) -> None:
        loop = asyncio.get_running_loop()
        headers = {"Mesos-Stream-Id": stream_id}
        self._workers = [loop.create_task(self._work(RawClient(self.base, headers)))
                         for _ in range(self.connections)]

    def stop(self) -> None:
        self._stopped = True
        self._queue.clear()
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(None)
        self._idle.clear()

    async def _work(self, client: RawClient) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while not self._stopped:
                if not queue:
                    waiter = loop.create_future()
                    self._idle.append(waiter)
                    await waiter
                    continue
                with contextlib.suppress(OSError):  # refused, reset: the master died
                    await client.post(SCHEDULER, queue.popleft())
        finally:
            client.abort()


class ChurnLimit:
    """`--launch-rate`: one framework process's share of the kills a second, so that the load
    generators stay within real time. Kills that come due wait in order for tokens, so a task
    lives at least its drawn duration, longer while kills queue; in a full cluster each kill
    frees the slot the next launch fills, so the churn is bounded by the rate and the cluster
    stays full. Launches are not bounded: a framework fills every offer at once.

    An earlier version also held offers for launch tokens. The master offers a newly subscribed
    framework everything free at once, so the first framework to subscribe held nearly the whole
    cluster's offers at its process's share of the rate while the other processes' frameworks
    got none (the cluster filled at a quarter of the rate); declining what it could not launch
    soon instead turned every allocation run into an offer storm (the master 97 % busy at 250
    launches a second, 9,000 agents: docs/benchmarks.md, "Ninth pass").

    Kills are held (`held`) until the driver has seen the cluster full: the cluster fills in
    one burst of launches, and kills released meanwhile would make it a churn at the paper's
    rate. Released, the kills that came due meanwhile go out in order at the rate. The bucket
    holds a second's tokens."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.held = True
        self._tokens = rate
        self._at = time.monotonic()
        self._kills: deque[tuple[BusyFramework, str]] = deque()
        self._pump: asyncio.TimerHandle | None = None

    def hold(self, held: bool) -> None:
        if held != self.held:
            self.held = held
            self._at = time.monotonic()
            self._drain()

    def take(self, wanted: int) -> int:
        """Up to `wanted` tokens."""
        now = time.monotonic()
        tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        granted = min(wanted, int(tokens))
        self._tokens = tokens - granted
        return granted

    def kill(self, framework: BusyFramework, task_id: str) -> None:
        self._kills.append((framework, task_id))
        self._drain()

    def _pumped(self) -> None:
        self._pump = None
        self._drain()

    def _drain(self) -> None:
        kills = self._kills
        if self.held:
            return
        for _ in range(self.take(len(kills))):
            framework, task_id = kills.popleft()
            framework.kill_now(task_id)
        if kills and self._pump is None:
            # One timer at a time: `_drain` also runs on each kill.
            self._pump = asyncio.get_running_loop().call_later(0.05, self._pumped)


class BusyFramework:
    """A v1 framework on a raw HTTP/1.1 client (`mezzo.testing.raw_http`, the emulated agents'
    transport: about a third of aiohttp's CPU per call) that fills every offer with tasks and
    kills each after its drawn duration; re-subscribes (same id) to whichever master leads
    after a failover."""

    def __init__(self, masters: list[str], name: str, counters: dict[str, int],
                 duration: tuple[float, float] = (30.0, 10.0), connections: int = 1,
                 checkpoint: bool = False, limit: ChurnLimit | None = None) -> None:
        self.masters = masters
        self.checkpoint = checkpoint
        self.limit = limit
        self.name = name
        self.counters = counters
        self.connections = connections
        self.framework_id: dict[str, str] | None = None
        self.sender: CallSender | None = None  # the current subscription's
        self.base = masters[0]
        self.running: dict[str, dict[str, Any]] = {}  # task id -> agent id
        self.started: set[str] = set()  # tasks seen RUNNING
        self.seq = 0
        self.subscribed = asyncio.Event()
        self.redirected = False
        self.rng = random.Random(name)
        self.duration = duration
        # Re-subscription timings (time.monotonic(), comparable across processes): when the
        # last stream ended, when the SUBSCRIBE that succeeded was sent, when its SUBSCRIBED
        # and the first OFFERS after it arrived, and how many attempts it took.
        self.ended_at: float | None = None
        self.sent_at = 0.0
        self.attempts = 0
        self.first_offers_due = False
        self.resubscriptions: list[dict[str, float]] = []

    async def run(self) -> None:
        while True:
            self.redirected = False
            outcome = "ended"
            try:
                await self._subscribe_and_read()
            except StreamRefused as exc:  # a 307 (followed below), a 503 while it recovers
                outcome = "redirected" if self.redirected else f"http_{exc.status}"
            except ConnectionRefusedError:
                outcome = "refused"
            except (OSError, ValueError, DecodeError) as exc:  # the stream broke; a malformed record
                outcome = type(exc).__name__
            finally:
                if self.sender is not None:
                    self.sender.stop()
                    self.sender = None
            if self.subscribed.is_set():
                self.counters["disconnects"] += 1
                self.ended_at = time.monotonic()
            elif self.ended_at is not None:
                key = f"subscribe_attempts_{outcome}"
                self.counters[key] = self.counters.get(key, 0) + 1
            self.subscribed.clear()
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            if not self.redirected:  # try the next master; after a 307, the one it named
                self.base = self.masters[(self.masters.index(self.base) + 1) % len(self.masters)]

    async def _subscribe_and_read(self) -> None:
        info: dict[str, Any] = {"user": getpass.getuser(), "name": self.name, "failover_timeout": 300.0}
        if self.checkpoint:  # its tasks survive their agent's disconnection
            info["checkpoint"] = True
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id is not None:
            info["id"] = call["framework_id"] = self.framework_id
        self.sent_at = time.monotonic()
        self.attempts += 1
        # The calls made on this subscription's events: queued from its first event on (they
        # arrive with the response's head), sent once its Mesos-Stream-Id is known.
        sender = self.sender = CallSender(self.base, self.connections)
        records = RecordIODecoder()

        def on_data(data: bytes) -> None:
            for record in records.feed(data):
                self._on_event(msgspec.json.decode(record))

        try:
            stream = await RawClient(self.base).stream(SCHEDULER, msgspec.json.encode(call), on_data)
        except StreamRefused as exc:
            if exc.status in (307, 302) and exc.location:
                self.base = "http:" + exc.location.rsplit(SCHEDULER, 1)[0]
                if self.base not in self.masters:
                    self.masters.append(self.base)
                self.redirected = True
            raise
        try:
            sender.start(stream.headers.get("mesos-stream-id", ""))
            await stream.wait_closed()
        finally:
            stream.close()

    def _call(self, call: dict[str, Any]) -> None:
        call["framework_id"] = self.framework_id
        self.counters["calls"] += 1
        if self.sender is not None:
            self.sender.put(msgspec.json.encode(call))

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]
            self.subscribed.set()
            if self.ended_at is not None:
                now = time.monotonic()
                self.resubscriptions.append({"ended": self.ended_at, "sent": self.sent_at,
                                             "subscribed": now, "attempts": self.attempts,
                                             "framework": self.framework_id["value"]})
                self.first_offers_due = True
            self.attempts = 0
        elif kind == "OFFERS":
            if self.first_offers_due:
                self.first_offers_due = False
                self.resubscriptions[-1]["offers"] = time.monotonic()
                self.resubscriptions[-1]["offer_count"] = len(event["offers"]["offers"])
            for offer in event["offers"]["offers"]:
                self._fill(offer)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if "uuid" in status:
                self._call({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
            state = status["state"]
            task_id = status["task_id"]["value"]
            if state in LOST_STATES:
                # Lost after it ran (work lost), or lost before it started (a launch in flight
                # when the leader died: Mesos reports those LOST/DROPPED, frameworks relaunch).
                started = task_id in self.started
                self.counters["lost" if started else "lost_before_start"] += 1
                key = f"lost_{state}_{status.get('reason', '')}{'' if started else '_before_start'}"
                self.counters[key] = self.counters.get(key, 0) + 1
            if state in TERMINAL:
                self.running.pop(task_id, None)
                self.started.discard(task_id)
            elif state == "TASK_RUNNING":
                self.counters["running_updates"] += 1
                self.started.add(task_id)

    def _fill(self, offer: dict[str, Any]) -> None:
        count = int(min(_scalar(offer, "cpus") // TASK_CPUS, _scalar(offer, "mem") // TASK_MEM))
        if count <= 0:
            self._call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                                                        "filters": {"refuse_seconds": 1.0}}})
            return
        self.launch_now(offer, count)

    def launch_now(self, offer: dict[str, Any], count: int) -> None:
        tasks = []
        loop = asyncio.get_running_loop()
        for _ in range(count):
            self.seq += 1
            task_id = f"{self.name}-{self.seq}"
            tasks.append({
                "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM}},
                ],
                "command": {"shell": True, "value": "sleep 30"},
            })
            self.running[task_id] = offer["agent_id"]
            duration = max(1.0, self.rng.gauss(*self.duration))
            loop.call_later(duration, self._kill_due, task_id)
        self.counters["launched"] += count
        self._call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 1.0},
        }})

    def _kill_due(self, task_id: str) -> None:
        if self.limit is not None:
            self.limit.kill(self, task_id)  # in turn, at the bounded rate
        else:
            self.kill_now(task_id)

    def kill_now(self, task_id: str) -> None:
        agent_id = self.running.get(task_id)
        if agent_id is None:
            return
        if not self.subscribed.is_set():
            # Retry once we are back, spread over 5 s: after a failover every kill that came
            # due meanwhile would otherwise go out in the same second, a burst of POSTs that
            # held this process's loop for seconds and delayed the SUBSCRIBE of the other
            # frameworks sharing it (docs/benchmarks.md, "frameworks after a failover").
            asyncio.get_running_loop().call_later(1.0 + self.rng.uniform(0.0, 5.0), self._kill_due, task_id)
            return
        self.counters["kills"] += 1
        self._call({"type": "KILL", "kill": {"task_id": {"value": task_id}, "agent_id": agent_id}})


def _frameworks_main(
    masters: list[str], first: int, count: int, ready: Any, stop: Any, report: Any,
    duration: tuple[float, float], connections: int, launch_rate: float = 0.0,
    churn: Any = None,
) -> None:
    """A framework process: `count` busy frameworks; `report` (a dict proxy) gets counters.
    With `launch_rate` (this process's share of `--launch-rate`) their kills are bounded to it
    (`ChurnLimit`: the launches fill the slots they free) and held until `churn` (an Event)
    is set."""
    _raise_fd_limit()
    tune_for_daemon()  # the daemons' collector thresholds (the agents' processes have them too)

    async def run() -> None:
        counters = {"launched": 0, "lost": 0, "lost_before_start": 0, "disconnects": 0,
                    "running_updates": 0, "kills": 0, "calls": 0}
        lags: list[tuple[float, float]] = []  # (when, lag) of the process's loop, > 0.2 s

        async def watch_lag() -> None:
            while True:
                start = time.monotonic()
                await asyncio.sleep(0.1)
                lag = time.monotonic() - start - 0.1
                if lag > 0.2:
                    lags.append((time.monotonic(), round(lag, 3)))
                    del lags[:-200]

        watcher = asyncio.create_task(watch_lag())
        limit = ChurnLimit(launch_rate) if launch_rate > 0 else None
        frameworks = [
            BusyFramework(list(masters), f"busy{first + i}", counters, duration, connections,
                          limit=limit)
            for i in range(count)
        ]
        runners = [asyncio.create_task(f.run()) for f in frameworks]
        await asyncio.gather(*(f.subscribed.wait() for f in frameworks))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.5)
            if limit is not None and churn is not None:
                limit.hold(not churn.is_set())
            report.update(counters)
            report["subscribed"] = sum(1 for f in frameworks if f.subscribed.is_set())
            report["resubscriptions"] = [r for f in frameworks for r in f.resubscriptions]
            report["lags"] = list(lags)
        watcher.cancel()
        for r in runners:
            r.cancel()

    asyncio.run(run())


# ------------------------------------------------------------------------------ measurements


def metrics(master: HaMaster) -> dict[str, float]:
    conn = Connection(master.url, timeout=300)  # a master busy with a surge answers late
    try:
        return json.loads(conn.request("GET", "/metrics/snapshot").body)
    finally:
        conn.close()


class StallProbe:
    """GET /health every 10 ms on its own connection, from a thread; the longest answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = Connection(self.base, timeout=60)
        while not self._stop.is_set():
            start = time.perf_counter()
            conn.request("GET", "/health")
            self.longest = max(self.longest, time.perf_counter() - start)
            time.sleep(0.01)
        conn.close()

    def __enter__(self) -> StallProbe:
        self._thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@contextlib.contextmanager
def client_priority(nice: int) -> Iterator[None]:
    """`--client-nice`: this thread, and the probe threads it starts meanwhile, at that nice
    value (Linux keeps one per thread; lowering it needs root)."""
    if not nice:
        yield
        return
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def timed_get(base: str, method: str, path: str, body: bytes | None = None) -> tuple[float, int]:
    elapsed, size, _ = timed_request(base, method, path, body)
    return elapsed, size


def timed_request(base: str, method: str, path: str, body: bytes | None = None) -> tuple[float, int, float]:
    """(wall seconds, body bytes, this client's CPU seconds reading it)."""
    conn = Connection(base, timeout=120)
    try:
        headers = {"Content-Type": "application/json", "Accept": "application/json"} if body else {}
        start = time.perf_counter()
        cpu = time.thread_time()
        response = conn.request(method, path, body, headers)
        elapsed = time.perf_counter() - start
        cpu = time.thread_time() - cpu
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")
        return elapsed, len(response.body), cpu
    finally:
        conn.close()


def launch_overhead(base: str, timeout: float = 60.0) -> tuple[float, float]:
    """One test framework: SUBSCRIBE sent → its task's TASK_RUNNING received, and → the first
    offer that fits the task (seconds)."""
    session = SchedulerSession(base, {"user": getpass.getuser(), "name": "overhead-probe"},
                               connect_timeout=timeout)
    start = time.perf_counter()
    session.subscribe()
    deadline = time.monotonic() + timeout
    task_id = f"probe-{random.getrandbits(48):x}"
    launched = False
    offered = 0.0
    try:
        while time.monotonic() < deadline:
            try:
                event = session.next_event(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue  # the deadline check above ends the wait
            if event is None:
                raise RuntimeError(f"the test framework's stream ended ({session.stream_error})")
            if event["type"] == "OFFERS":
                offers = event["offers"]["offers"]
                unused = []
                for offer in offers:
                    if not launched and _scalar(offer, "cpus") >= TASK_CPUS and _scalar(offer, "mem") >= TASK_MEM:
                        launched = True
                        offered = time.perf_counter() - start
                        task = {
                            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM}},
                            ],
                            "command": {"shell": True, "value": "sleep 10"},
                        }
                        session.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
                            {"type": "LAUNCH", "launch": {"task_infos": [task]}}]})
                    else:
                        unused.append(offer["id"])
                if unused:  # one call for all: a fresh framework is offered every free agent
                    session.call("DECLINE", decline={"offer_ids": unused})
            elif event["type"] == "UPDATE":
                status = event["update"]["status"]
                if "uuid" in status:
                    session.call("ACKNOWLEDGE", acknowledge={
                        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]})
                if status["task_id"]["value"] == task_id and status["state"] == "TASK_RUNNING":
                    return time.perf_counter() - start, offered
        raise RuntimeError("the test framework's task did not start in time")
    finally:
        with contextlib.suppress(Exception):
            session.call("TEARDOWN")
        session.close()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------ driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cprofile", metavar="DIR",
                        help="run the masters under cProfile, on over each steady window only "
                             "(mezzo.testing.profiled; DIR/master.<pid>.prof, read with pstats) "
                             "and, with --failover, the standby from the kill until all are back "
                             "(DIR/failover.<pid>.prof)")
    parser.add_argument("--log-level", default="WARNING",
                        help="--logging_level of the masters (INFO logs each phase change and "
                             "agent/framework (re)registration: a failover's timeline)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (the masters' logs; removed otherwise) and print its path")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 9000])
    parser.add_argument("--frameworks", type=int, default=200)
    parser.add_argument("--agent-processes", type=int, default=6)
    parser.add_argument("--framework-processes", type=int, default=4)
    parser.add_argument("--fw-connections", type=int, default=1,
                        help="connections each busy framework sends its calls on, at most "
                             "(one: strictly in order, as a real scheduler's one connection)")
    parser.add_argument("--launch-rate", type=float, default=0.0,
                        help="bound the busy frameworks' kills, and so their launches into the "
                             "slots the kills free, to this many a second in all (0: unbounded, "
                             "the paper's churn if the machine keeps up): "
                             "tasks then live at least their drawn duration and the cluster "
                             "stays full, at a churn the load generators sustain")
    parser.add_argument("--fill-timeout", type=float, default=600.0,
                        help="with --launch-rate, seconds to wait for the cluster to fill (95 %% "
                             "of its slots) before the settle")
    parser.add_argument("--task-mean", type=float, default=30.0, help="task duration mean (s)")
    parser.add_argument("--task-sd", type=float, default=10.0, help="task duration sd (s)")
    parser.add_argument("--probe-timeout", type=float, default=60.0,
                        help="seconds a test framework waits for its task to start")
    parser.add_argument("--session-timeout", default="2secs",
                        help="the masters' --zk_session_timeout (failover detection)")
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds between reaching a size and measuring (steady state)")
    parser.add_argument("--window", type=float, default=20.0, help="steady-state window (s)")
    parser.add_argument("--samples", type=int, default=10, help="test frameworks per size")
    parser.add_argument("--failover", action="store_true", help="also measure a failover per size")
    parser.add_argument("--failover-at-max", action="store_true",
                        help="with --failover: only at the largest size")
    parser.add_argument("--failover-timeout", type=float, default=None,
                        help="seconds to wait for everything back (default: max(120, agents / 25))")
    parser.add_argument("--profile", default=None,
                        help="py-spy the leader for the window of the largest size into this SVG "
                             "(a .txt path: collapsed stacks)")
    parser.add_argument("--profile-failover", default=None, metavar="DIR",
                        help="py-spy the standby master and each framework and agent process from the kill "
                             "for --profile-seconds, into DIR (collapsed stacks, *.txt)")
    parser.add_argument("--profile-seconds", type=float, default=40.0)
    parser.add_argument("--profile-window", default=None, metavar="DIR",
                        help="py-spy the leader and each agent and framework process over the "
                             "steady window of the largest size, into DIR (collapsed stacks)")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="nice value of this driver's thread while it times the documents, "
                             "/metrics/snapshot and their /health probes (e.g. -10): with --pin "
                             "the client shares the loaded CPU with the load generators, and its "
                             "share of it, not the master, can set how fast it reads 40-90 MB")
    parser.add_argument("--pin", action="store_true",
                        help="the masters on the first CPU, everything else the benchmark starts "
                             "(ZooKeeper, agents, frameworks, this driver) on the others")
    args = parser.parse_args()
    _raise_fd_limit()
    pinned = pin_plan() if args.pin else None
    if pinned is not None:
        # Before anything is started: ZooKeeper and the agent and framework processes inherit it.
        os.sched_setaffinity(0, pinned["others_cpus"])
    began = time.monotonic()
    # SIGTERM stops the benchmark like Ctrl-C: the `finally` below stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = multiprocessing.get_context("spawn")
    work = Path(tempfile.mkdtemp(prefix="mezzo-scale-"))
    zk_server = start_server(work / "zk")
    zk = f"zk://127.0.0.1:{zk_server.client_port}/mezzo"
    cluster = HaCluster(zk, count=2, work_dir=work, session_timeout=args.session_timeout,
                        extra=["--allocation_interval", "1secs", "--logging_level", args.log_level],
                        launcher=[sys.executable, "-m", "mezzo.testing.profiled", args.cprofile]
                        if args.cprofile else None)
    agent_procs: list[Any] = []
    stop = ctx.Event()
    churn = ctx.Event()  # --launch-rate: the cluster is full, the frameworks may kill
    manager = ctx.Manager()
    reports: list[Any] = []
    agent_reports: list[Any] = []  # each agent process's event-loop lag
    frameworks_procs: list[Any] = []
    try:
        cluster.start()
        if pinned is not None:
            for master in cluster.masters:
                pin_process(master, pinned["master_cpus"])
        leader = cluster.wait_leader(60)
        rss_base = rss_mb_of(leader)
        rss_per_agent_kb: float | None = None
        agents = 0
        for size in sorted(args.sizes):
            # Add agents in several processes until `size` are registered.
            while agents < size:
                per_proc = -(-(size - agents) // args.agent_processes)
                for _ in range(args.agent_processes):
                    count = min(per_proc, size - agents)
                    if count <= 0:
                        break
                    ready, lag_report = ctx.Event(), manager.dict()
                    proc = ctx.Process(target=_agents_main, args=(zk, agents, count, ready, stop, lag_report),
                                       daemon=True)
                    proc.start()
                    agent_procs.append((proc, ready))
                    agent_reports.append(lag_report)
                    agents += count
            start = time.monotonic()
            until(lambda m=leader, n=size: metrics(m).get("master/slaves_active", 0) >= n,
                  1800, f"{size} agents registered", interval=2.0)
            registered_s = time.monotonic() - start
            if rss_per_agent_kb is None:
                # Agents but no tasks yet: what an agent costs the master, alone.
                time.sleep(5.0)
                rss_per_agent_kb = (rss_mb_of(leader) - rss_base) * 1024 / size
            if not frameworks_procs and args.frameworks:
                per_proc = -(-args.frameworks // args.framework_processes)
                waits = []
                for first in range(0, args.frameworks, per_proc):
                    ready, report = ctx.Event(), manager.dict()
                    proc = ctx.Process(
                        target=_frameworks_main,
                        args=([m.url for m in cluster.masters], first,
                              min(per_proc, args.frameworks - first), ready, stop, report,
                              (args.task_mean, args.task_sd), args.fw_connections,
                              args.launch_rate * min(per_proc, args.frameworks - first) / args.frameworks,
                              churn),
                        daemon=True,
                    )
                    proc.start()
                    frameworks_procs.append(proc)
                    reports.append(report)
                    waits.append(ready)
                for ready in waits:
                    if not ready.wait(300):
                        raise RuntimeError("frameworks did not subscribe")
            filled_s = None
            if args.launch_rate and args.frameworks:
                # The frameworks fill every offer at once but hold their kills until the
                # cluster is full (its tasks RUNNING: the agents' processes may take tens of
                # seconds to start a burst of 72,000), then kill at the bounded rate.
                churn.clear()
                start = time.monotonic()

                def full(m: HaMaster = leader, n: int = size) -> bool:
                    snapshot = metrics(m)
                    # RUNNING only: a staging task's agent process has not started it yet.
                    return bool(snapshot.get("master/tasks_running", 0) >= 0.95 * 8 * n)

                until(full, args.fill_timeout, f"{size} agents' slots filled", interval=5.0)
                filled_s = round(time.monotonic() - start, 1)
                churn.set()
            # Let the load reach its steady state at this size: the tasks launched together on
            # the new agents end over the next ~30 ± 10 s, and new ones replace them.
            time.sleep(args.settle if args.frameworks else 2.0)
            row = measure(leader, size, args, registered_s, reports, agent_reports,
                          [p.pid for p in frameworks_procs], [p.pid for p, _ in agent_procs],
                          profile=args.profile if size == max(args.sizes) else None)
            row["rss_kb_per_agent_alone"] = round(rss_per_agent_kb or 0.0, 1)
            row["launch_rate"] = args.launch_rate or None  # the bound on the churn, if any
            row["filled_s"] = filled_s
            if rss_per_agent_kb is not None and row["tasks"]:
                row["rss_base_mb"] = round(rss_base, 1)
                row["rss_kb_per_agent"] = round(rss_per_agent_kb, 1)
                row["rss_kb_per_task"] = round(
                    ((row["master_rss_mb"] - rss_base) * 1024 - rss_per_agent_kb * size) / row["tasks"], 2)
            if args.failover and (size == max(args.sizes) or not args.failover_at_max):
                timeout = args.failover_timeout or max(120.0, size / 25)
                spies = []
                if args.profile_failover:
                    standby = next(m for m in cluster.masters if m is not leader and m.alive)
                    targets = [("standby", standby.proc.pid if standby.proc else 0)] + [
                        (f"frameworks{i}", p.pid) for i, p in enumerate(frameworks_procs)] + [
                        (f"agents{i}", p.pid) for i, (p, _) in enumerate(agent_procs)]
                    spies = start_spies(targets, Path(args.profile_failover), args.profile_seconds)
                leader = failover(cluster, leader, size, args.frameworks, reports, agent_reports, row,
                                  timeout, Path(args.cprofile) if args.cprofile else None)
                for spy in spies:
                    spy.wait(args.profile_seconds + 60)
                if pinned is not None:  # the killed master, restarted as the standby
                    for master in cluster.masters:
                        pin_process(master, pinned["master_cpus"])
            row["pinned"] = pinned
            row["elapsed_s"] = round(time.monotonic() - began)  # since the benchmark started
            print(json.dumps(row), flush=True)
    finally:
        stop.set()
        time.sleep(1.0)
        for proc, _ in agent_procs:
            proc.terminate()
        for proc in frameworks_procs:
            proc.terminate()
        for proc, _ in agent_procs:
            proc.join(10)
        cluster.close()
        zk_server.stop()
        manager.shutdown()
        if args.keep:
            print(f"work directory (the masters' logs): {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure(leader: HaMaster, size: int, args: Any, registered_s: float, reports: list[Any],
            agent_reports: list[Any], fw_pids: list[int], agent_pids: list[int],
            profile: str | None) -> dict[str, Any]:
    assert leader.proc is not None
    proc = psutil.Process(leader.proc.pid)
    spy = None
    py_spy = Path(sys.executable).parent / "py-spy"
    if profile and not py_spy.exists():
        print(f"--profile: no {py_spy} (pip install py-spy): not profiling", file=sys.stderr)
        profile = None
    if profile:
        import subprocess

        spy = subprocess.Popen(
            [str(py_spy), "record", "-p", str(proc.pid), "-o", profile,
             *(["-f", "raw"] if profile.endswith(".txt") else []),  # collapsed stacks
             "-d", str(int(args.window)), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    window_spies = []
    if args.profile_window and size == max(args.sizes):
        window_spies = start_spies(
            [("leader", proc.pid)] + [(f"agents{i}", pid) for i, pid in enumerate(agent_pids)]
            + [(f"frameworks{i}", pid) for i, pid in enumerate(fw_pids)],
            Path(args.profile_window), args.window)
    if args.cprofile:
        os.kill(proc.pid, signal.SIGUSR1)  # mezzo.testing.profiled: the window only
    proc.cpu_percent(None)
    times_before = proc.cpu_times()
    fw_procs = [psutil.Process(pid) for pid in fw_pids]
    fw_cpu_before = procs_cpu_s(fw_procs)
    agent_procs = [psutil.Process(pid) for pid in agent_pids]
    agent_cpu_before = procs_cpu_s(agent_procs)
    before = counters(reports)
    launched_before, window_start = before.get("launched", 0), time.monotonic()
    cycles: list[float] = []
    end = time.monotonic() + args.window
    while time.monotonic() < end:
        m = metrics(leader)
        cycles.append(m.get("allocator/mesos/allocation_run_ms", 0.0))
        time.sleep(5.0)  # a snapshot walks every agent and framework: not too often
    cpu = proc.cpu_percent(None)
    times_after = proc.cpu_times()
    if args.cprofile:
        os.kill(proc.pid, signal.SIGUSR2)  # writes DIR/master.<pid>.prof
    fw_cpu = procs_cpu_s(fw_procs) - fw_cpu_before
    agent_cpu = procs_cpu_s(agent_procs) - agent_cpu_before
    after, elapsed = counters(reports), time.monotonic() - window_start
    # The master's CPU split: the kernel's share is mostly loopback TCP (a send() does the
    # receiver's side too), the part a simulator must model as per-write cost.
    master_system_pct = 100 * (times_after.system - times_before.system) / elapsed
    master_user_pct = 100 * (times_after.user - times_before.user) / elapsed
    launches_per_s = (after.get("launched", 0) - launched_before) / elapsed
    fw_calls = after.get("calls", 0) - before.get("calls", 0)
    rss_mb = proc.memory_info().rss / 2**20
    fds = proc.num_fds()
    for spy_ in [spy, *window_spies]:
        if spy_ is not None:
            spy_.wait(120)
    m = metrics(leader)
    samples, failures = [], 0
    for _ in range(args.samples):
        try:
            samples.append(launch_overhead(leader.url, args.probe_timeout))
        except (OSError, RuntimeError) as exc:  # counted, not fatal: the row says how many
            print(f"launch overhead sample failed: {exc}", file=sys.stderr)
            failures += 1
    overheads = [total for total, _ in samples] or [float("nan")]
    tasks = int(m.get("master/tasks_running", 0) + m.get("master/tasks_staging", 0))
    def cpu_s() -> float:  # the leader's CPU time so far (its own work during a request)
        times = proc.cpu_times()
        return float(times.user + times.system)

    with client_priority(args.client_nice):
        with StallProbe(leader.url) as idle_probe:
            time.sleep(3.0)  # the same probe with nothing asked of the master: the load's own stalls
        with StallProbe(leader.url) as probe:
            before_cpu = cpu_s()
            state_s, state_bytes, state_client_s = timed_request(leader.url, "GET", "/master/state")
            state_cpu_s = cpu_s() - before_cpu
        with StallProbe(leader.url) as get_state_probe:
            before_cpu = cpu_s()
            get_state_s, _, get_state_client_s = timed_request(
                leader.url, "POST", "/api/v1", json.dumps({"type": "GET_STATE"}).encode())
            get_state_cpu_s = cpu_s() - before_cpu
        snapshot_s = []
        with StallProbe(leader.url) as snapshot_probe:
            for _ in range(5):
                snapshot_s.append(timed_get(leader.url, "GET", "/metrics/snapshot")[0])
                time.sleep(0.2)
    end_metrics = metrics(leader)
    active_after = end_metrics.get("master/slaves_active", 0)
    lags = [dict(r).get("lag_max_ms", 0.0) for r in agent_reports]
    return {
        "agents": size,
        "agents_active_at_end": int(active_after),
        "agents_unreachable": int(end_metrics.get("master/slaves_unreachable", 0)),
        "agent_process_lag_max_ms": max(lags) if lags else None,
        "frameworks": args.frameworks,
        "tasks": tasks,
        "master_cpu_pct": round(cpu, 1),
        "master_user_pct": round(master_user_pct, 1),
        "master_system_pct": round(master_system_pct, 1),
        "master_rss_mb": round(rss_mb, 1),
        "launch_overhead_p50_s": round(statistics.median(overheads), 3),
        "launch_overhead_p99_s": round(percentile(overheads, 0.99), 3),
        "first_offer_p50_s": round(statistics.median(o for _, o in samples), 3) if samples else None,
        "launch_overhead_failures": failures,
        "allocation_cycle_ms": round(statistics.median(cycles), 1) if cycles else None,
        "state_ms": round(state_s * 1000, 1),
        "get_state_ms": round(get_state_s * 1000, 1),
        "state_master_cpu_ms": round(state_cpu_s * 1000, 1),
        "get_state_master_cpu_ms": round(get_state_cpu_s * 1000, 1),
        "client_nice": args.client_nice,
        "state_client_cpu_ms": round(state_client_s * 1000, 1),
        "get_state_client_cpu_ms": round(get_state_client_s * 1000, 1),
        "state_mb": round(state_bytes / 2**20, 1),
        "loop_stall_max_ms": round(probe.longest * 1000, 1),
        "idle_loop_stall_max_ms": round(idle_probe.longest * 1000, 1),
        "get_state_loop_stall_max_ms": round(get_state_probe.longest * 1000, 1),
        "metrics_snapshot_ms": round(statistics.median(snapshot_s) * 1000, 1),
        "metrics_snapshot_loop_stall_max_ms": round(snapshot_probe.longest * 1000, 1),
        "failover_s": None,
        "launches_per_s": round(launches_per_s, 1),
        # The paper's churn for the tasks running: each ends after ~--task-mean seconds and is
        # replaced. Below it, the load generators (or the master) could not keep up.
        "launches_per_s_needed": round(tasks / args.task_mean, 1) if args.task_mean else None,
        "fw_calls_per_s": round(fw_calls / elapsed, 1),
        "fw_cpu_pct": round(100 * fw_cpu / elapsed, 1),
        "fw_cpu_us_per_call": round(1e6 * fw_cpu / fw_calls, 1) if fw_calls else None,
        "agent_cpu_pct": round(100 * agent_cpu / elapsed, 1),
        "agent_cpu_us_per_launch": round(1e6 * agent_cpu / (launches_per_s * elapsed), 1)
        if launches_per_s else None,
        "registered_s": round(registered_s, 1),
        "master_fds": fds,
        "machine_load": round(os.getloadavg()[0], 1),
    }


def procs_cpu_s(procs: list[psutil.Process]) -> float:
    """These processes' CPU time so far (user + system, seconds)."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def py_spy() -> str | None:
    import shutil

    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else os.environ.get("PY_SPY") or shutil.which("py-spy")


def start_spies(targets: list[tuple[str, int]], out: Path, seconds: float) -> list[Any]:
    """py-spy record (collapsed stacks, 100 Hz) of each (name, pid) for `seconds`."""
    import subprocess

    spy = py_spy()
    if spy is None:
        print("--profile-failover: no py-spy (beside python, $PY_SPY or on PATH)", file=sys.stderr)
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-o", str(out / f"{name}.txt"),
                              "-f", "raw", "-d", str(int(seconds)), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in targets if pid]


def pin_plan() -> dict[str, list[int]]:
    """`--pin`: the first CPU this process may use for the masters, the rest for the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit(f"--pin needs at least 2 CPUs, this process may use {cpus}")
    return {"master_cpus": cpus[:1], "others_cpus": cpus[1:]}


def pin_process(master: HaMaster, cpus: list[int]) -> None:
    """Every thread of the master's process (and of any child) onto `cpus`; threads it makes
    later inherit it."""
    if master.proc is None or master.proc.poll() is not None:
        return
    root = psutil.Process(master.proc.pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for thread in proc.threads():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(thread.id, cpus)


def rss_mb_of(master: HaMaster) -> float:
    assert master.proc is not None
    return psutil.Process(master.proc.pid).memory_info().rss / 2**20


def counters(reports: list[Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for report in reports:
        for key, value in dict(report).items():
            if isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
    return total


def resubscriptions(reports: list[Any], since: float) -> list[dict[str, float]]:
    """The frameworks' re-subscriptions after `since` (time.monotonic() of the kill)."""
    return [r for report in reports for r in dict(report).get("resubscriptions", [])
            if r["ended"] >= since]


def spread(values: list[float]) -> dict[str, float] | None:
    """p50 / p90 / max, rounded (None without values)."""
    if not values:
        return None
    return {"p50": round(percentile(values, 0.5), 2), "p90": round(percentile(values, 0.9), 2),
            "max": round(max(values), 2)}


def listen_overflows() -> int:
    """The kernel's TcpExt ListenOverflows counter (machine-wide, since boot)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def clients_back(agent_reports: list[Any], reports: list[Any], start: float, agents: int,
                 frameworks: int) -> dict[str, Any]:
    """A failover that began at `start` (time.monotonic() of the kill) as the clients saw it:
    when the agent processes' ZooKeeper detectors named the new leader
    (`failover_leader_named_s`, the first of them), and when the last agent and the last
    framework got SUBSCRIBED from it (`failover_*_back_exact_s`; None while any is not back)."""
    agent_sides = [dict(r) for r in agent_reports]
    named = [r["leader_changed_at"] for r in agent_sides
             if r.get("leader_changed_at") is not None and r["leader_changed_at"] >= start]
    spans = [r.get("subscribed_at") for r in agent_sides]
    agents_whole = (sum(r.get("subscribed", 0) for r in agent_sides) >= agents
                    and all(s is not None and s[0] >= start for s in spans))
    resubs = resubscriptions(reports, start)
    return {
        "failover_leader_named_s": round(min(named) - start, 2) if named else None,
        # Per agent process: when its detector named the new leader, and its first and last
        # agent were back (a process short of CPU shows here, not in the master's figures).
        "failover_agent_procs": [
            [round(r["leader_changed_at"] - start, 2) if r.get("leader_changed_at") else None,
             *([round(t - start, 2) for t in r["subscribed_at"]] if r.get("subscribed_at") else [])]
            for r in agent_sides],
        "failover_agents_back_exact_s":
            round(max(s[1] for s in spans if s is not None) - start, 2) if agents_whole else None,
        "failover_frameworks_back_exact_s":
            round(max(r["subscribed"] for r in resubs) - start, 2)
            if len({r["framework"] for r in resubs}) >= frameworks else None,
    }


def failover(cluster: HaCluster, leader: HaMaster, size: int, frameworks: int, reports: list[Any],
             agent_reports: list[Any], row: dict[str, Any], timeout: float,
             cprofile: Path | None = None) -> HaMaster:
    """SIGKILL the leader; time until the standby leads (`failover_elected_s`: the leader's
    ZooKeeper session must expire first, so at least the session timeout) and until every agent
    has re-registered and every framework re-subscribed (`failover_s`). Tasks the frameworks
    heard as lost across it: `lost` (0: nothing lost). If not everything is back within
    `timeout`, the row says how much was (`failover_agents_back`, `failover_frameworks_back`)
    and `failover_s` stays null: the run goes on to the next size. With `cprofile` (the masters
    run under `mezzo.testing.profiled`), the standby is profiled from the kill until everything
    is back, into `cprofile/failover.<pid>.prof`."""
    before = counters(reports)
    # The load generators' backlog as the leader dies: the longest lag of any agent process's
    # loop over the last 30 s, and of any framework process's over the last 10 s.
    agent_lags = [dict(r).get("lag_max_ms", 0.0) for r in agent_reports]
    row["failover_agent_lag_before_kill_ms"] = max(agent_lags) if agent_lags else None
    now = time.monotonic()
    fw_lags = [lag for report in reports for when, lag in dict(report).get("lags", []) if when >= now - 10]
    row["failover_fw_lag_before_kill_s"] = max(fw_lags) if fw_lags else 0.0
    overflows = listen_overflows()
    standbys = [psutil.Process(m.proc.pid) for m in cluster.masters
                if m is not leader and m.alive and m.proc is not None]
    standby_cpu = {p.pid: sum(p.cpu_times()[:2]) for p in standbys}
    if cprofile is not None:
        for standby in standbys:
            os.kill(standby.pid, signal.SIGUSR1)
    start = time.monotonic()
    leader.kill()
    new = cluster.wait_leader(120, exclude=leader)
    row["failover_elected_s"] = round(time.monotonic() - start, 2)
    seen: dict[str, float] = {}

    def back() -> bool:
        try:
            m = metrics(new)
        except ValueError:  # not JSON: the new leader answers 503 while it recovers
            return False
        seen["agents"] = m.get("master/slaves_active", 0)
        seen["frameworks"] = m.get("master/frameworks_active", 0)
        # When each side was first seen whole (to the poll's resolution): the agents'
        # re-registration is the master's work, the frameworks' also their processes'.
        for side, whole in (("agents", size), ("frameworks", frameworks)):
            if seen[side] >= whole and f"failover_{side}_back_s" not in row:
                row[f"failover_{side}_back_s"] = round(time.monotonic() - start, 2)
        return seen["agents"] >= size and seen["frameworks"] >= frameworks

    # Poll /metrics/snapshot at most ~10 % of the time: it walks every agent and task (about
    # 0.1–0.8 s at 9,000 agents under load), and polling it back to back every 0.1 s took most
    # of the new leader's CPU while it worked through the re-registrations, so that it read
    # re-registered agents' PONGs too late and marked thousands of them unreachable.
    deadline = start + timeout
    while True:
        asked = time.monotonic()
        if back():
            # The new leader's own CPU over the failover: how much of it was its work, and
            # how much waiting for the clients (on this machine, for a CPU they share).
            assert new.proc is not None
            row["failover_new_leader_cpu_s"] = round(
                sum(psutil.Process(new.proc.pid).cpu_times()[:2]) - standby_cpu.get(new.proc.pid, 0.0), 2)
            row["failover_s"] = round(time.monotonic() - start, 2)
            row["failover_recovery_s"] = round(row["failover_s"] - row["failover_elected_s"], 2)
            break
        now = time.monotonic()
        if now >= deadline:
            print(f"failover at {size} agents: not everything back within {timeout:.0f} s", file=sys.stderr)
            break
        time.sleep(min(max(0.1, 9 * (now - asked)), 5.0, max(0.0, deadline - now)))
    if cprofile is not None:
        for standby in standbys:
            os.kill(standby.pid, signal.SIGUSR2)
            dumped = cprofile / f"master.{standby.pid}.prof"
            with contextlib.suppress(TimeoutError):
                until(dumped.exists, 30, "the standby's profile")
                time.sleep(0.5)  # written in one go by dump_stats, but let it finish
                dumped.rename(cprofile / f"failover.{standby.pid}.prof")
    row["failover_agents_back"] = int(seen.get("agents", 0))
    row["failover_frameworks_back"] = int(seen.get("frameworks", 0))
    time.sleep(2.0)  # the client processes report every 0.2 s; the counters settle
    # Connections the kernel turned away with a full accept queue (machine-wide): each costs
    # its client a SYN retransmission, 1 s, then 3 s, 7 s... later.
    row["failover_listen_overflows"] = listen_overflows() - overflows
    after = counters(reports)
    # The same moments on the clients' own clocks (the poll above sleeps up to 9x the time
    # /metrics/snapshot took, so its figures can be seconds late under load).
    exact = clients_back(agent_reports, reports, start, size, frameworks)
    row.update(exact)
    if all(exact.get(k) is not None for k in ("failover_agents_back_exact_s",
                                                 "failover_frameworks_back_exact_s")):
        row["failover_s"] = max(exact["failover_agents_back_exact_s"],
                                exact["failover_frameworks_back_exact_s"])
        row["failover_recovery_s"] = round(row["failover_s"] - row["failover_elected_s"], 2)
    # Where the frameworks' time went: from the kill to their SUBSCRIBE that succeeded (the
    # attempts before it, by answer), from it to SUBSCRIBED (the new leader's handling), and
    # to the first OFFERS after it.
    resubs = resubscriptions(reports, start)
    row["fw_resubscribed_after_kill_s"] = spread([r["subscribed"] - start for r in resubs])
    row["fw_subscribe_sent_after_kill_s"] = spread([r["sent"] - start for r in resubs])
    row["fw_subscribe_answer_s"] = spread([r["subscribed"] - r["sent"] for r in resubs])
    row["fw_first_offers_after_subscribed_s"] = spread(
        [r["offers"] - r["subscribed"] for r in resubs if "offers" in r])
    row["fw_first_offers_count"] = spread([r["offer_count"] for r in resubs if "offer_count" in r])
    lags = [lag for report in reports for when, lag in dict(report).get("lags", []) if when >= start]
    row["fw_process_lag_max_s"] = max(lags) if lags else 0.0
    row["fw_kills_sent"] = after.get("kills", 0) - before.get("kills", 0)
    row["fw_subscribe_attempts"] = {k.removeprefix("subscribe_attempts_"): v - before.get(k, 0)
                                    for k, v in after.items() if k.startswith("subscribe_attempts_")
                                    and v != before.get(k, 0)}
    row["lost"] = after.get("lost", 0) - before.get("lost", 0)
    row["lost_before_start"] = after.get("lost_before_start", 0) - before.get("lost_before_start", 0)
    row["lost_by_state"] = {k[5:]: v - before.get(k, 0) for k, v in after.items()
                            if k.startswith("lost_") and k != "lost_before_start"
                            and v != before.get(k, 0)}
    leader.start()  # the old leader comes back as the standby
    return new


if __name__ == "__main__":
    main()
