"""The simulated master: mezzo's real `Master` core behind a single-server queue.

The master is modelled as one server (the real master is one asyncio thread). Every message
that reaches it — a scheduler call, an agent call, a subscription, a timer tick, an
allocation run — is a *job*. Jobs arrive `latency` seconds after the client sent them and are
served one at a time in arrival order. Serving a job means:

1. the virtual clock reads the job's start time (`max(arrival, end of the previous job)`);
2. the master core is called (for messages, after decoding the JSON body the client encoded,
   as the HTTP shell does; events the core emits are JSON-encoded too), and the CPU time that
   took is measured (`time.thread_time`, the `measured` cost model) or looked up in a fixed,
   calibrated table (the `fixed` model: same seed, same output);
3. the server is busy for that service time.

Jobs are grouped in *loop turns*, as the real master's event loop runs them: a turn is the
jobs waiting when it starts (what one `select()` hands the loop); those arriving meanwhile wait
for the next. What a turn's jobs emitted is written at its end, one write per distinct client
(the real shell coalesces each agent socket's and each framework stream's records of one loop
turn into one `send()`: `mezzo.net.message_socket`, `mezzo.net.stream`), which costs the shell
a per-write and a per-record term (`SOCKET_WRITE_OVERHEAD`, `STREAM_WRITE_OVERHEAD`,
`RECORD_OVERHEAD`); then the effects leave, reaching their clients `latency` later.

The core's measured time is charged times a factor for its regime (`CORE_FACTORS`: the first
job after the loop woke runs cold in a real master, the ones after it warmer), and a client
message that is the first job after a wake-up costs the shell `COLD_MESSAGE_OVERHEAD` more.

So a saturated master delays everyone, and the time a framework waits is what mezzo's own
code costs. Timers follow the HTTP shell (`mezzo/master/http.py`): a timer job runs `tick()`
and then sleeps until `next_deadline()`, at most one second; a core that asks for an
allocation (`wake`) gets one allocation job, queued behind the jobs already waiting when it is
due, which is how the shell runs event-triggered allocations at the time the core says (`allocation_due`,
one run per coalescing window).
"""

from __future__ import annotations

import gc
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from mezzo.api.codec import decode, encode
from mezzo.api.common import MasterInfo
from mezzo.api.internal import AgentCall, AgentEvent, AgentSubscribe
from mezzo.api.scheduler import Call, Event, decode_call
from mezzo.core.ids import IdSource
from mezzo.master.allocator import AllocatorOptions, create_allocator
from mezzo.master.base import MasterOptions
from mezzo.master.core import CallRefused, Master
from mezzo.master.registry import Registrar, RegistryOperation
from mezzo.sim.engine import Engine, Timer
from mezzo.store.memory import MemoryStore

# One-way message latency (seconds) between a client and the master, including the client's
# own handling of the message (simulated agents and frameworks are otherwise free): calibrated
# so that the simulated ACCEPT -> TASK_RUNNING latency matches bench/launch.py's on loopback
# (four one-way trips plus two master jobs). Re-fitted when the master's jobs were charged by
# regime (2026-12-06): 0.19 ms puts the simulated p50 at 1.17 ms against 1.07-1.21 ms in four
# real runs, mean 1.155 (0.24 ms before, fitted with the jobs charged as measured in the
# simulator's own process); docs/evaluation.md, "Calibration".
LATENCY = 0.00019

# What the HTTP shell costs beyond the core and the JSON codec, which the measured core calls
# do not include: per client request (aiohttp parsing it, routing, the 202 answer and its
# send() system call) and per record written to a subscription stream (the stream's write
# loop sends the records queued in one event-loop iteration together, so a record costs far
# less than a request). The split comes from a cProfile of the real master under
# `bench/launch.py rate` (shell time per request : per record about 8 : 1); the scale from
# the real master's CPU time per task in that benchmark on an idle machine (0.172-0.181 ms
# per task with 1.2 requests and 3 records per task). Added to every job that is a client
# request and to every event a job emits. The per-record part is now measured on its own
# (the write constants below), and `REQUEST_OVERHEAD` is what opens a subscription only
# (aiohttp's handler chain: a framework's SUBSCRIBE, an agent's socket handshake); a
# framework's call costs `SCHEDULER_REQUEST_OVERHEAD`, an agent's `AGENT_MESSAGE_OVERHEAD`.
REQUEST_OVERHEAD = 80e-6
# Writing: the shell sends what one agent socket (or one framework stream) was given in one loop
# turn in one write, so a turn costs SOCKET_WRITE_OVERHEAD (or STREAM_WRITE_OVERHEAD) per
# distinct client written plus RECORD_OVERHEAD per record. Measured with the real classes on
# loopback, a reader process taking the bytes (`bench/writes.py --seconds 4 --repeat 3
# --records 40 --clients 100 --rate 100`, 2026-12-06 01:24, load 0.8-1.9: per write 11.1 µs
# on a socket, 14.3 µs on a stream, whose writer is a task woken per write; per record 2.3 and
# 3.4 µs; runs with 10 records a turn at 200 and 50 turns a second gave 10-17 µs and 10-23 µs
# per write, the spread of this measurement): docs/evaluation.md, "Calibration". Until
# 2026-12-06 a record cost a flat 9.5 µs, fitted to `bench/launch.py rate`, where one
# framework's records go out many per write; in `bench/scale.py`'s shape nearly every record
# is a write of its own (docs/evaluation.md).
SOCKET_WRITE_OVERHEAD = 11e-6
STREAM_WRITE_OVERHEAD = 14e-6
RECORD_OVERHEAD = 3e-6
# A scheduler call (ACCEPT, ACKNOWLEDGE, DECLINE...: POST /api/v1/scheduler on a keep-alive
# connection, answered 202) is answered by the master's fast path (mezzo.net.fastpath) since
# issue 11: the real master's CPU per call in `bench/scheduler_calls.py` (16 frameworks posting
# RECONCILE in a loop) less what decoding and handling that call costs the core (3.5 µs):
# 43 µs per call (mean of twelve runs, 37-49, load 1-6), against 78 µs (64-89) through
# aiohttp's chain in runs interleaved with them, which agrees with `REQUEST_OVERHEAD`'s 80
# (docs/benchmarks.md, "Scheduler calls"). Most of what is left is the kernel's loopback send
# and receive and the event loop's poll, not Python.
SCHEDULER_REQUEST_OVERHEAD = 43e-6
# What one message received on an agent's socket costs the shell beyond the decode and the core
# (`mezzo.net.message_socket`: the kernel's read, the event loop waking the socket's reader,
# aiohttp's frame parser; no request parsing, middlewares or answer). Agents' calls (`agent.*`
# jobs) pay this instead of REQUEST_OVERHEAD; an agent's SUBSCRIBE, which opens its socket with
# an HTTP handshake, pays both. Measured on the real master (`bench/pong.py --agents 300 --ping
# 60secs --calls 10`: 300 agents each sending 10 PONG calls a second, ~2,970 a second, one per
# read): 30.5-57.2 µs of master CPU per call over five runs, median 33.4, less ~3 µs for the
# PONG's decode and core: 30 µs. The same calls POSTed to the master before issue 11 cost
# 109-140 µs in runs interleaved with them, and `bench/agent_transport.py` puts a socket
# message at 0.30-0.35 of a POST in one server (0.34 x 80 µs = 27): docs/benchmarks.md,
# "Agent transport (issue 11)". Re-measured at 1,000 agents with the master's loop turns and
# wake-ups counted (`bench/pong.py --agents 1000 --ping 60secs --calls 3 --seconds 15`,
# 2026-12-06 03:32, load 3.5: 41.4 µs a call, 0.31 loop turns and 0.13 wake-ups a call, the
# emulated agents' calls arriving in bursts ~2.5 ms apart): less the PONG's core (3 µs), its
# wake-ups (0.13 x ~65 µs, `WAKE_COSTS`) and turns (0.18 x 2.1 µs), 29.5 µs; at 300 agents
# (`--agents 300 --calls 10`) 32.0 - 3 - 5.2 - 0.2 = 23.6 µs. The simulator charges wake-ups and
# turns on their own (below), so this constant is the message's cost net of them. Since the
# agents' sockets moved to the fast path (frames read by a plain protocol, no coroutine per
# connection; issue 12), the same command gives 25.0 µs a call twice (2026-12-06 05:08, load
# 0.2, 0.20-0.21 turns and 0.19-0.20 wake-ups a call, ~1.6 ms apart): less the core (3 µs)
# and the wake-ups (0.195 x ~62 µs), 10 µs (was 29.5 on aiohttp's sockets).
AGENT_MESSAGE_OVERHEAD = 10e-6
# The event loop's own cost per turn, beyond the handles it runs (docs/evaluation.md, "The event
# loop's turns and wake-ups"). A turn that follows another at once (`select()` polled without
# sleeping, `_run_once`'s bookkeeping) costs LOOP_TURN_OVERHEAD: a callback re-queued with
# `call_soon`, 1,200 connections open (`bench/writes.py --clients 600 --readers 6 --pin
# --turns-only`, 2026-12-06 03:23-03:31, load 1.3-5.6: 2.1-2.2 µs in every run). A turn that
# wakes the loop from `select()` after it slept costs far more (the system call that sleeps, the
# wake-up, and Python resuming on caches other processes have used) and more the longer it
# slept: WAKE_COSTS, (seconds slept, seconds of CPU per wake), measured with a client process
# sending a byte on a TCP connection at a fixed rate to a loop with 1,200 connections open
# (`bench/writes.py --clients 600 --readers 6 --pin --seconds 3 --repeat 3 --wakes 300 1000 2000
# 4000 8000 16000`, 03:31-03:35, load 3.0-6.0, medians of three: 87, 46, 38, 38, 26, 24 µs;
# each includes the byte's read, ~3-5 µs, which the per-message constants also contain) and,
# for 10 ms, a timer re-arming itself 100 times a second (`--turns --rate 100`, 03:14, load
# 3.0-5.3: 113 µs). The real master in `bench/scale.py`'s shape wakes ~1,000 times a second,
# 2.8-4.2 times a launch (its main thread's voluntary context switches, psutil).
LOOP_TURN_OVERHEAD = 2.1e-6
WAKE_COSTS: tuple[tuple[float, float], ...] = (
    (1 / 16000, 24e-6), (1 / 8000, 26e-6), (1 / 4000, 38e-6), (1 / 2000, 38e-6),
    (1 / 1000, 46e-6), (1 / 300, 87e-6), (1 / 100, 113e-6),
)


def wake_seconds(slept: float) -> float:
    """What waking the loop costs after it slept `slept` seconds: `WAKE_COSTS` interpolated
    linearly in log(slept), held at its ends; no sleep at all (a message arriving the instant
    the loop ran out of work: `select()` finds it ready) is a plain turn."""
    points = WAKE_COSTS
    if slept <= 0.0:
        return LOOP_TURN_OVERHEAD
    if slept <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in pairwise(points):
        if slept <= x1:
            f = (math.log(slept) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + f * (y1 - y0)
    return points[-1][1]

# How much more CPU the master core's code takes in a real master than the same code measured
# in the simulator's process, charged on the core's measured (or tabled) time only, not on the
# shell's constants above, which were measured in real processes already. Measured (not fitted)
# with the same timers around the same core functions in both processes (`mezzo.sim.coretime`,
# `bench/coretime.py`; docs/evaluation.md, "The core's CPU in the real process"): in
# `bench/scale.py`'s shape at 1,000 agents, pinned, 1.60-2.04 weighted over the core's calls
# (four pairs of runs, 2026-12-06 04:10-04:24, load 2.5-4.8; ACCEPT, STATUS_UPDATE, ACKNOWLEDGE,
# KILL and the allocation run each 1.6-2.2); in `bench/launch.py rate`'s shape (calls back to
# back, ten tasks or updates each) 1.52 and 1.56 over the same calls. Not charged (1.0): the
# factor differs with the shape, and charged as a constant (1.8) it puts the scale shape's row
# within 7 % of the real master but the ten-tasks-per-ACCEPT rate row 32-53 % above it; see the
# docs for what that says about the other constants. `mezzo sim calibrate --core-factor F` and
# `mezzo sim run --core-factor F` show what a factor does. Since the factor was measured by
# regime (a call's position since the loop woke, below: CORE_FACTORS), it is charged per job
# from there, and this stays a plain multiplier on top (1.0).
CORE_SLOWDOWN = 1.0

# The two regimes (since 2026-12-06 07:10; docs/evaluation.md, "Cold and warm messages"). What a
# message costs the real master depends on what the loop did just before it: the first core
# call after the loop woke from `select()` runs on caches, TLB and branch predictors that the
# sleep (other processes, the kernel, the vCPU's halt) left cold; the calls that follow it
# back to back run warmer. The simulator's own process never sleeps, so it measures every call
# warm (and warmer than any real one). So the core's measured time is charged times
# CORE_FACTORS at the job's position since the loop last woke (1: the first job after a wake),
# as measured with the same timers around the same core functions in real masters and in the
# simulator, each real call tagged with its position by watching the loop's `select()`
# (`mezzo.sim.coretime`, `bench/coretime.py`): `bench/launch.py rate` with 10 and 1 tasks per
# ACCEPT, two runs each (2026-12-06 06:37 and 06:49, load 1.6-2.8, 227,000 calls: ACCEPT,
# STATUS_UPDATE and ACKNOWLEDGE pooled, the real CPU over the simulator's for the same calls). Not measured in
# `bench/scale.py`'s shape, which is what they predict; in that shape the real master's own
# factors by position are flatter (cold 2.2, then 1.9-2.1; see the docs).
CORE_FACTORS: tuple[tuple[float, float], ...] = (
    (1, 2.41), (2, 1.94), (4, 1.73), (8, 1.57), (16, 1.51), (64, 1.42), (math.inf, 1.28))
# The shell's part of the same effect: a client message that is the first job after a wake-up
# costs the shell this much more than one that follows others (beyond the wake-up itself,
# `WAKE_COSTS`, measured with a one-byte read). From `bench/pong.py --agents 1000 --ping 60secs
# --seconds 15` at --calls 1, 3 and 10 (1,000, 3,000 and 9,900 PONGs a second; 47.4, 26.9 and
# 20.6 µs of master CPU a call with 0.48, 0.18 and 0.11 wake-ups a call; 2026-12-06 06:46, load
# 0.5-0.7): net of the wake-ups' `WAKE_COSTS`, the first PONG after a wake-up costs 44 µs and
# the others 12 (solved from the 1,000 and 9,900 runs; the 3,000 run predicted 25.4 against
# 26.9 measured), so 32 µs more. Measured on agents' socket messages, charged to any client
# message (a scheduler call's first read after a wake goes through the same loop and kernel).
COLD_MESSAGE_OVERHEAD = 32e-6
# Whether new master nodes charge the two regimes (`mezzo sim calibrate --no-regimes` and
# `mezzo sim run --no-regimes` show the model without them: every call as the simulator's
# process measures it, times CORE_SLOWDOWN).
REGIMES = True

# The shell's constants above (and `LATENCY`) are absolute times measured on one machine, the
# 2-vCPU machine of 2026-12-05/06 ("the reference machine"); the core's times are measured in
# the simulator's own process, so they follow whatever machine it runs on. On a machine whose
# real master runs its shell slower or faster, those constants are charged times SHELL_FACTOR:
# the ratio of the real master's shell cost there to the reference machine's, measured with the
# same benchmarks the constants came from (`bench/pong.py`, `bench/scheduler_calls.py`), not
# fitted: `--shell-factor measure` on `mezzo sim calibrate` and `mezzo sim run` runs them on the
# machine at hand (`mezzo.testing.shell_probe`: the geometric mean of the two ratios), and
# `--shell-factor F` sets it (docs/evaluation.md, "On another machine"). 1.0 is the reference
# machine.
SHELL_FACTOR = 1.0


def core_factor(position: int) -> float:
    """CORE_FACTORS at a job's position since the loop woke (0: not a loop job, e.g. a new
    leader's recovery, charged the warmest factor: a long call warms its own caches)."""
    if position <= 0:
        return CORE_FACTORS[-1][1]
    for bound, factor in CORE_FACTORS:
        if position <= bound:
            return factor
    return CORE_FACTORS[-1][1]


# How often (virtual seconds) the measured cost model's share of garbage collection is
# re-measured: the master's share of the heap's tracked objects (`mezzo.sim.heap`; 0.22-0.24
# at 1,000-5,000 agents in the scalability shape). 0: never, every collection inside a job is
# charged whole.
GC_SHARE_EVERY = 30.0


class Endpoint(Protocol):
    """A client of the master (simulated agent or framework)."""

    def receive(self, event: Any) -> None: ...

    def stream_closed(self, link: Link) -> None: ...


class Link:
    """One subscription stream: the handle the master core stores and hands back."""

    __slots__ = ("closed", "owner", "socket", "stream_id")

    def __init__(self, owner: Endpoint) -> None:
        self.owner = owner
        self.closed = False
        self.stream_id: str | None = None  # a framework's Mesos-Stream-Id
        self.socket = False  # an agent's message socket (else a framework's record stream)

    def deliver(self, event: Any) -> None:
        if not self.closed:
            self.owner.receive(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.stream_closed(self)


# --------------------------------------------------------------------------- cost models

# Service times (seconds) of the core in the `fixed` cost model, per job kind, plus a per-item
# term (items: tasks in an ACCEPT, offers in a DECLINE or made by an allocation run, updates in
# a status-update call, tasks reported by a re-registering agent). From the medians of a
# `--cost measured` run of the scalability shape on this machine (`mezzo sim calibrate`
# prints them; docs/evaluation.md). The shell's overhead is added on top in both models.
FIXED_COSTS: dict[str, tuple[float, float]] = {
    "scheduler.SUBSCRIBE": (22e-6, 0.0),
    "scheduler.ACCEPT": (20e-6, 25e-6),
    "scheduler.DECLINE": (10e-6, 5e-6),
    "scheduler.ACKNOWLEDGE": (11e-6, 0.0),
    "scheduler.other": (10e-6, 0.0),
    "agent.SUBSCRIBE": (40e-6, 10e-6),
    "agent.STATUS_UPDATE": (4e-6, 10e-6),
    "agent.PONG": (3e-6, 0.0),
    "agent.other": (10e-6, 0.0),
    "allocate": (20e-6, 23e-6),
    "tick": (9e-6, 0.0),
    "recover": (30e-6, 0.0),
}


class CostModel(Protocol):
    name: str

    def serve(self, kind: str, fn: Callable[[], int]) -> float:
        """Run the job; return its service time in seconds. `fn` returns its item count."""
        ...


# CPU time (ns) this thread has spent in garbage collections, and when the current one began.
_GC_NS = [0, 0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _GC_NS[1] = time.thread_time_ns()
    else:
        _GC_NS[0] += time.thread_time_ns() - _GC_NS[1]


class MeasuredCost:
    """Service time = the CPU time the real code took (this thread only), with the garbage
    collections that happened inside it charged at `gc_share` of their time: the master's
    share of the heap, which the node measures (`mezzo.sim.heap`), since the simulator's heap
    also holds every simulated agent and a collection's cost grows with what it walks. 1.0
    (the whole pause) until measured. All of it times `core_factor` (`CORE_SLOWDOWN`: what
    the same code costs in a real master against the simulator's process)."""

    name = "measured"

    def __init__(self, core_factor: float | None = None) -> None:
        self.core_factor = CORE_SLOWDOWN if core_factor is None else core_factor
        self.gc_share = 1.0
        self.gc_seconds = 0.0  # collections inside jobs, whole
        self.gc_charged = 0.0  # what of them was charged
        if _gc_timer not in gc.callbacks:
            gc.callbacks.append(_gc_timer)

    def serve(self, kind: str, fn: Callable[[], int]) -> float:
        gc0 = _GC_NS[0]
        started = time.thread_time_ns()
        fn()
        spent = time.thread_time_ns() - started
        collecting = _GC_NS[0] - gc0
        if not collecting:
            return spent * 1e-9 * self.core_factor
        self.gc_seconds += collecting * 1e-9
        self.gc_charged += collecting * self.gc_share * 1e-9
        return (spent - collecting + collecting * self.gc_share) * 1e-9 * self.core_factor


class FixedCost:
    """Service time from a calibrated table: deterministic, so same seed ⇒ same output.
    `FIXED_COSTS` (measured in the simulator's process) is charged times `CORE_SLOWDOWN` and the
    regimes' factors, as the measured model charges what it measures; a table given is charged
    as it is, unless `core_factor` says otherwise."""

    name = "fixed"

    def __init__(self, table: dict[str, tuple[float, float]] | None = None,
                 core_factor: float | None = None) -> None:
        self.table = table or FIXED_COSTS
        if core_factor is None:
            core_factor = CORE_SLOWDOWN if table is None else 1.0
        self.core_factor = core_factor
        # Nor times the regimes' factors (`CORE_FACTORS`, `COLD_MESSAGE_OVERHEAD`): a test's table.
        self.regimes = table is None

    def serve(self, kind: str, fn: Callable[[], int]) -> float:
        items = fn()
        found = self.table.get(kind) or self.table.get(kind.split(".")[0] + ".other")
        base, per_item = found if found is not None else (0.0, 0.0)
        return (base + per_item * items) * self.core_factor


def cost_model(name: str) -> CostModel:
    if name == "measured":
        return MeasuredCost()
    if name == "fixed":
        return FixedCost()
    raise ValueError(f"unknown cost model {name!r} (expected 'measured' or 'fixed')")


# --------------------------------------------------------------------------- outbox


class _SimOutbox:
    """The core's Outbox: effects of the job being served, sent when its service ends."""

    def __init__(self, registrar: Registrar, codec: bool) -> None:
        self.registrar = registrar
        self.codec = codec
        self.effects: list[tuple[Link, Any]] = []
        self.closing: list[Link] = []
        # The core's `registry_applied`, told at once: this registry is synchronous.
        self.applied: Callable[[RegistryOperation], None] = lambda operation: None

    def send_framework(self, stream: Link, event: Event) -> None:
        if self.codec:
            encode(event)  # the shell's JSON encoding is part of what the master costs
        self.effects.append((stream, event))

    def close_framework(self, stream: Link) -> None:
        self.closing.append(stream)

    def send_agent(self, stream: Link, event: AgentEvent) -> None:
        if self.codec:
            encode(event)
        stream.socket = True
        self.effects.append((stream, event))

    def close_agent(self, stream: Link) -> None:
        self.closing.append(stream)

    def registry(self, operation: RegistryOperation) -> None:
        self.registrar.apply(operation)
        self.applied(operation)


# --------------------------------------------------------------------------- the node


@dataclass
class KindStats:
    count: int = 0
    seconds: float = 0.0
    samples: list[float] = field(default_factory=list)


class MasterNode:
    def __init__(
        self,
        engine: Engine,
        *,
        latency: float | None = None,
        cost: CostModel | None = None,
        options: MasterOptions | None = None,
        seed: int = 0,
        store: MemoryStore | None = None,
        master_id: str = "sim-master",
        codec: bool = True,
        keep_samples: bool = False,
        shell_overhead: bool = True,
        gc_share_every: float = GC_SHARE_EVERY,
    ) -> None:
        self.engine = engine
        self.shell_overhead = shell_overhead
        # The clients' own handling and the kernel's hop, on this machine (`SHELL_FACTOR`).
        self.latency = LATENCY * SHELL_FACTOR if latency is None else latency
        self.cost = cost or FixedCost()
        self.codec = codec
        self.store = store or MemoryStore()
        self.registrar = Registrar(self.store)
        self.outbox = _SimOutbox(self.registrar, codec)
        self.master = Master(
            clock=engine.clock,
            ids=IdSource(master_id=master_id, seed=seed),
            allocator=create_allocator("hierarchical", AllocatorOptions(seed=seed)),
            outbox=self.outbox,
            master_info=MasterInfo(id=master_id, hostname="sim-master", port=5050, version="1.11.0"),
            options=options or MasterOptions(),
            wake=self._wake,
        )
        self.outbox.applied = self.master.registry_applied
        self.alive = True
        self._queue: deque[tuple[str, Callable[[], int]]] = deque()
        self._busy = False
        # When the loop last went to sleep in `select()` (None while it is running turns).
        self._idle_since: float | None = engine.now
        self._allocation_timer: Timer | None = None
        self._reschedule_allocation = False
        self.busy_seconds = 0.0
        self.jobs = 0
        self.turns = 0  # event-loop turns the real master would have taken
        self.wakes = 0  # of which woke the loop from sleep
        # The regimes (CORE_FACTORS, COLD_MESSAGE_OVERHEAD), unless off or the cost is a given table.
        self.regimes = REGIMES and getattr(self.cost, "regimes", True)
        self._since_wake = 0  # jobs served since the loop last woke (the next one's position - 1)
        # Told how long the loop slept at each wake-up (`mezzo.sim.coretime` tags the core's
        # calls with it, as it does in a real master by watching its `select()`).
        self.on_wake: Callable[[float], None] | None = None
        self.stats: dict[str, KindStats] = defaultdict(KindStats)
        self.keep_samples = keep_samples
        self.refused = 0
        self._next_tick_delay = 1.0
        # The loop turn being served: its jobs not yet served, and after each served job its
        # kind and how many effects the turn had emitted by its end (to charge each write to
        # the kind of job that first wrote to that client in the turn).
        self._turn_left = 0
        self._turn_marks: list[tuple[str, int]] = []
        self._recover()
        self._timer = engine.soon(self._timer_due)
        if isinstance(self.cost, MeasuredCost) and gc_share_every:
            self._gc_share_every = gc_share_every
            engine.after(1.0, self._measure_gc_share)

    def _measure_gc_share(self) -> None:
        """The master's share of the heap, for the collections charged to it (not a job:
        a real master does not walk its heap; this costs the simulator only)."""
        if not self.alive:
            return
        from mezzo.sim.heap import master_share

        self.cost.gc_share = master_share(self.master)  # type: ignore[attr-defined]
        self.engine.after(self._gc_share_every, self._measure_gc_share)

    def _recover(self) -> None:
        """The new leader recovers the registry before it serves anything (a warm standby
        from its copy: the records read back and the core rebuilt from them, both measured);
        what arrives meanwhile waits."""
        def job() -> int:
            self.master.recover(self.registrar.recover())
            return 0

        seconds = self._run_job("recover", job)
        self._busy = True
        self._idle_since = None
        self.engine.after(seconds, self._flushed)

    # ------------------------------------------------------------------ client API

    def scheduler_subscribe(self, call: Call, link: Link) -> None:
        body = encode(call) if self.codec else call
        self._send("scheduler.SUBSCRIBE", self._subscribe_job, body, link)

    def scheduler_call(self, call: Call, stream_id: str | None) -> None:
        body = encode(call) if self.codec else call
        kind = f"scheduler.{call.type}"
        self._send(kind if kind in FIXED_COSTS else "scheduler.other", self._call_job, body, stream_id)

    def agent_subscribe(self, sub: AgentSubscribe, link: Link) -> None:
        body = encode(sub) if self.codec else sub
        self._send("agent.SUBSCRIBE", self._agent_subscribe_job, body, link)

    def agent_call(self, call: AgentCall) -> None:
        body = encode(call) if self.codec else call
        kind = f"agent.{call.type}"
        self._send(kind if kind in FIXED_COSTS else "agent.other", self._agent_call_job, body)

    def framework_disconnected(self, framework_id: str, link: Link) -> None:
        self._send("scheduler.other", lambda: self.master.framework_disconnected(framework_id, link) or 0)

    def _send(self, kind: str, job: Callable[..., int], *args: Any) -> None:
        self.engine.after(self.latency, self._arrive, kind, job, args)

    # ------------------------------------------------------------------ jobs

    def _subscribe_job(self, body: Any, link: Link) -> int:
        call = decode_call(body) if self.codec else body
        link.stream_id = self.master.subscribe(call, link).stream_id
        return 0

    def _call_job(self, body: Any, stream_id: str | None) -> int:
        # Decoded and checked as the HTTP shell does (`mezzo.api.scheduler.decode_call`).
        call = decode_call(body) if self.codec else body
        try:
            self.master.scheduler_call(call, stream_id)
        except CallRefused:
            self.refused += 1
        if call.accept is not None:
            return sum(len(op.launch.task_infos) for op in call.accept.operations if op.launch)
        if call.decline is not None:
            return len(call.decline.offer_ids)
        return 0

    def _agent_subscribe_job(self, body: Any, link: Link) -> int:
        sub = decode(body, AgentSubscribe) if self.codec else body
        self.master.agent_subscribe(sub, link)
        return len(sub.tasks)

    def _agent_call_job(self, body: Any) -> int:
        call = decode(body, AgentCall) if self.codec else body
        try:
            self.master.agent_call(call)
        except CallRefused:
            self.refused += 1
        return len(call.status_updates) + (call.status_update is not None)

    def _allocate_job(self) -> int:
        master = self.master
        if not master.allocation_pending:
            return 0  # a batch run (in a tick) came first
        if master.allocation_due is not None and master.now() < master.allocation_due:
            self._reschedule_allocation = True
            return 0
        return master.allocate()

    def _tick_job(self) -> int:
        master = self.master
        master.tick()
        delay = master.next_deadline() - master.now()
        # As the shell's timer loop: sleep until the next deadline, at most a second; a
        # deadline already due (e.g. a pending allocation) is run again right away.
        self._next_tick_delay = min(max(delay, 0.001), 1.0)
        return len(master.agents) + len(master.frameworks)

    def _wake(self) -> None:
        # As the shell's `_schedule_allocation`: one timer, at the time the core says the
        # event-triggered run is due (coalescing window); when it fires the run queues
        # behind the jobs already waiting.
        if not self.alive:
            return
        if self._allocation_timer is not None:
            self._allocation_timer.cancel()
        due = self.master.allocation_due
        self._allocation_timer = self.engine.at(
            self.engine.now if due is None else due, self._allocation_due)

    def _allocation_due(self) -> None:
        self._allocation_timer = None
        self._arrive("allocate", self._allocate_job, ())

    def _timer_due(self) -> None:
        self._arrive("tick", self._tick_job, ())

    # ------------------------------------------------------------------ the server

    def _arrive(self, kind: str, job: Callable[..., int], args: tuple[Any, ...]) -> None:
        if not self.alive:
            return
        self._queue.append((kind, job, args))  # type: ignore[arg-type]
        if not self._busy:
            # An idle master's loop wakes with everything that arrived at this instant.
            self._busy = True
            self.engine.soon(self._serve)

    def _serve(self) -> None:
        if not self.alive or not self._queue:
            self._sleep()
            return
        turn = 0.0
        if self._turn_left == 0:  # a new loop turn: the jobs waiting now
            self._turn_left = len(self._queue)
            turn = self._turn_seconds()
        kind, job, args = self._queue.popleft()  # type: ignore[misc]
        self._turn_left -= 1
        self._busy = True
        self._since_wake += 1
        seconds = self._run_job(kind, lambda: job(*args), self._since_wake)
        self.engine.after(turn + seconds, self._served, kind)

    def _turn_seconds(self) -> float:
        """One turn of the real master's event loop, beyond the handles it runs: a turn that
        wakes the loop from `select()` after it slept costs `wake_seconds(slept)` (kind
        `loop.wake`), a turn that follows another at once (`select()` polled without sleeping)
        `LOOP_TURN_OVERHEAD` (kind `loop.turn`)."""
        self.turns += 1
        slept = 0.0 if self._idle_since is None else self.engine.now - self._idle_since
        self._idle_since = None
        if slept > 0.0:
            self.wakes += 1
            self._since_wake = 0
            if self.on_wake is not None:
                self.on_wake(slept)
            kind, seconds = "loop.wake", wake_seconds(slept)
        else:
            kind, seconds = "loop.turn", LOOP_TURN_OVERHEAD
        if not self.shell_overhead:
            return 0.0
        seconds *= SHELL_FACTOR
        stat = self.stats[kind]
        stat.count += 1
        stat.seconds += seconds
        self.busy_seconds += seconds
        return seconds

    def _shell_seconds(self, kind: str, position: int) -> float:
        """The HTTP shell's share of a job as received: one request for a scheduler call (the
        fast path's; a SUBSCRIBE opens its stream through aiohttp's chain), one socket message
        for an agent's call (and the handshake's request for its SUBSCRIBE), plus
        `COLD_MESSAGE_OVERHEAD` for a message that is the first job after a wake-up. What it
        emits is charged when the turn's writes go out (`_write_seconds`)."""
        if kind.startswith("scheduler."):
            seconds = REQUEST_OVERHEAD if kind == "scheduler.SUBSCRIBE" else SCHEDULER_REQUEST_OVERHEAD
        elif kind.startswith("agent."):
            seconds = AGENT_MESSAGE_OVERHEAD + (REQUEST_OVERHEAD if kind == "agent.SUBSCRIBE" else 0.0)
        else:
            return 0.0
        if self.regimes and position == 1:
            seconds += COLD_MESSAGE_OVERHEAD
        return seconds * SHELL_FACTOR

    def _run_job(self, kind: str, fn: Callable[[], int], position: int = 0) -> float:
        """Serve one job: the core's cost (times `core_factor(position)` with the regimes on)
        plus the shell's. `position`: the job's place since the loop last woke (1: first)."""
        seconds = self.cost.serve(kind, fn)
        if self.regimes:
            seconds *= core_factor(position)
        if self.keep_samples:  # the core's charged time (FIXED_COSTS: with the regimes off)
            self.stats[kind].samples.append(seconds)
        if self.shell_overhead:
            seconds += self._shell_seconds(kind, position)
        self.busy_seconds += seconds
        self.jobs += 1
        stat = self.stats[kind]
        stat.count += 1
        stat.seconds += seconds
        return seconds

    def _write_seconds(self) -> float:
        """What writing the turn's effects costs the shell: per distinct client a write (a
        socket's or a stream's), per record a record; each write charged to the kind of the
        turn's first job that wrote to that client, each record to the job that emitted it."""
        marks, self._turn_marks = self._turn_marks, []
        effects = self.outbox.effects
        if not self.shell_overhead or not effects:
            return 0.0
        written: set[Link] = set()
        charged: dict[str, float] = defaultdict(float)
        i = 0
        for kind, end in marks:
            while i < end:
                link = effects[i][0]
                if link not in written:
                    written.add(link)
                    charged[kind] += (SOCKET_WRITE_OVERHEAD if link.socket else STREAM_WRITE_OVERHEAD) * SHELL_FACTOR
                charged[kind] += RECORD_OVERHEAD * SHELL_FACTOR
                i += 1
        stats = self.stats
        for kind, seconds in charged.items():
            stats[kind].seconds += seconds
        total = sum(charged.values())
        self.busy_seconds += total
        return total

    def _served(self, kind: str) -> None:
        if not self.alive:
            return
        self._turn_marks.append((kind, len(self.outbox.effects)))
        if kind == "tick":
            self._timer = self.engine.after(self._next_tick_delay, self._timer_due)
        elif kind == "allocate" and self._reschedule_allocation:
            self._reschedule_allocation = False
            self._wake()
        if self._turn_left > 0:
            self._serve()  # the turn's next job; its writes wait for the turn's end
            return
        seconds = self._write_seconds()
        if self.outbox.effects and not self._queue:
            # The real shell writes a turn's records from callbacks it queues for the loop's
            # next turn (the socket's `call_soon` flush, the stream's writer task): with
            # nothing else waiting, that next turn runs for the writes alone. (With messages
            # waiting, it is the turn that serves them: counted when it starts.)
            seconds += self._turn_seconds()
        if seconds > 0.0:
            self.engine.after(seconds, self._flushed)
        else:
            self._flushed()

    def _flushed(self) -> None:
        """The turn's writes are out: its effects leave, and the next turn starts."""
        if not self.alive:
            return
        outbox = self.outbox
        effects, outbox.effects = outbox.effects, []
        closing, outbox.closing = outbox.closing, []
        latency = self.latency
        at = self.engine.after
        for link, event in effects:
            at(latency, link.deliver, event)
        for link in closing:
            at(latency, link.close)
        if self._queue:
            self._serve()
        else:
            self._sleep()

    def _sleep(self) -> None:
        """Nothing to do: the loop blocks in `select()` until the next message or timer."""
        self._busy = False
        self._idle_since = self.engine.now

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ failure

    def crash(self) -> None:
        """The master process dies: queued work and unsent effects are lost."""
        self.alive = False
        self._queue.clear()
        self._turn_left = 0
        self._turn_marks.clear()
        self.outbox.effects.clear()
        self.outbox.closing.clear()
        self._timer.cancel()
