"""What the four example frameworks share: the run loop, task bookkeeping, progress, reports.

`ExampleFramework` is a `mezzo.scheduler.Scheduler` with:
- `run()`: subscribe with a `SchedulerClient`, call `tick(now)` periodically (timers of the
  decision cores: gang hold timeouts, service restart backoff), stop when `finished` is set or
  the time limit passes, tear the framework down (its tasks are killed) unless it fails over;
- task counters (running / finished / failed) kept from status updates, for live progress;
- `progress()`: a snapshot the demo's live table and the CLIs' progress lines read;
- `report()`: the closing summary lines, computed from what actually happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mezzo.api.common import (
    Attribute,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    Offer,
    TaskState,
    TaskStatus,
    ValueType,
    is_terminal,
)
from mezzo.core.clock import Clock, RealClock
from mezzo.scheduler import SchedulerClient, SchedulerOptions, parse_master_address
from mezzo.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """A snapshot for live displays."""

    name: str
    framework_id: str | None
    running: int
    finished: int
    failed: int
    headline: str
    done: bool


@dataclass
class CommonOptions:
    master: str
    name: str
    cpus: float = 0.1
    mem: float = 32.0
    role: str | None = None
    user: str = field(default_factory=getpass.getuser)
    python: str = sys.executable  # the interpreter agents use to run our Python tasks
    timeout: float | None = None  # give up after this many seconds
    tick: float = 0.25
    quiet: bool = False

    @property
    def task_resources(self) -> str:
        return f"cpus:{self.cpus};mem:{self.mem}"


def attribute_text(attributes: list[Attribute], name: str) -> str | None:
    for a in attributes:
        if a.name == name:
            if a.type == ValueType.TEXT and a.text is not None:
                return a.text.value
            if a.type == ValueType.SCALAR and a.scalar is not None:
                return str(a.scalar.value)
    return None


def offer_host(offer: Offer) -> str:
    """Which machine an offer is on: the agent's `host` attribute if it has one (several agents
    on one machine, as `mezzo local` runs them), else its hostname."""
    return attribute_text(offer.attributes, "host") or offer.hostname


def state_agent_host(agent: dict[str, Any]) -> str:
    """`offer_host` for an agent entry of the master's `/master/state`."""
    attrs = agent.get("attributes") or {}
    host = attrs.get("host") if isinstance(attrs, dict) else None
    return str(host) if host is not None else str(agent.get("hostname", ""))


class ExampleFramework(Scheduler):
    """Base of the example frameworks. Subclasses override the Scheduler callbacks they need,
    `tick`, `headline` and `report`, and set `self.finished` when their work is done."""

    failover_timeout: float | None = None
    checkpoint: bool = False

    def __init__(self, options: CommonOptions, clock: Clock | None = None) -> None:
        self.options = options
        self.clock: Clock = clock or RealClock()
        self.client: SchedulerClient | None = None
        self.framework_id: FrameworkID | None = None
        self.running: set[str] = set()
        self.finished_tasks = 0
        self.failed_tasks = 0
        self.started_at = self.clock.monotonic()
        self.ended_at: float | None = None
        self.log_lines: deque[str] = deque(maxlen=200)
        self.on_log: Callable[[str], None] | None = None
        self._finished: asyncio.Event | None = None
        self.aborted: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def finished(self) -> asyncio.Event:
        if self._finished is None:
            self._finished = asyncio.Event()
        return self._finished

    def framework_info(self) -> FrameworkInfo:
        return FrameworkInfo(
            user=self.options.user,
            name=self.options.name,
            id=self.framework_id,
            role=self.options.role,
            failover_timeout=self.failover_timeout,
            checkpoint=self.checkpoint or None,
            hostname=None,
        )

    async def run(self, *, failover: bool = False) -> list[str]:
        """Run until done (or the time limit), then stop; returns the report lines."""
        self.started_at = self.clock.monotonic()
        master = parse_master_address(self.options.master)
        self.client = SchedulerClient(
            master, self.framework_info(), self, SchedulerOptions(backoff_max=2.0)
        )
        await self.client.start()
        ticker = asyncio.create_task(self._tick_loop(), name=f"{self.options.name}-tick")
        stopper = asyncio.create_task(self.client.join())
        finished = asyncio.create_task(self.finished.wait())
        try:
            done, _ = await asyncio.wait(
                {finished, stopper},
                timeout=self.options.timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                self.say(f"time limit of {self.options.timeout:.0f}s reached; stopping")
            elif stopper in done and not self.finished.is_set():
                self.aborted = self.client.aborted_message or "the scheduler client stopped"
                self.say(f"stopped: {self.aborted}")
        finally:
            self.ended_at = self.clock.monotonic()
            for task in (ticker, stopper, finished):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.before_stop()
            await self.client.stop(failover=failover)
        return self.report()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick)
            if self.client is None or not self.client.connected:
                continue
            try:
                await self.tick(self.clock.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: tick failed", self.options.name)

    async def tick(self, now: float) -> None:
        """Timers of the decision core (called every `options.tick` seconds while subscribed)."""

    async def before_stop(self) -> None:
        """Last words to executors before the teardown (e.g. tell them to exit)."""

    # ------------------------------------------------------------------ callbacks

    def registered(
        self, driver: Any, framework_id: FrameworkID, master_info: MasterInfo | None
    ) -> None:
        self.framework_id = framework_id
        self.say(f"registered as framework {framework_id.value}")

    def reregistered(self, driver: Any, master_info: MasterInfo | None) -> None:
        self.say("re-registered with the master")

    def disconnected(self, driver: Any) -> None:
        if not self.finished.is_set():
            self.say("disconnected from the master; reconnecting")

    def error(self, driver: Any, message: str) -> None:
        self.aborted = message
        self.say(f"error from the master: {message}")

    def track(self, status: TaskStatus) -> None:
        """Keep the running/finished/failed counters from a status update."""
        tid = status.task_id.value
        if status.state == TaskState.TASK_RUNNING:
            self.running.add(tid)
        elif is_terminal(status.state):
            if tid in self.running or status.state != TaskState.TASK_FINISHED:
                self.running.discard(tid)
            if status.state == TaskState.TASK_FINISHED:
                self.finished_tasks += 1
            else:
                self.failed_tasks += 1

    # ------------------------------------------------------------------ progress and reports

    @property
    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else self.clock.monotonic()
        return end - self.started_at

    def say(self, message: str) -> None:
        line = f"[{self.options.name} {self.elapsed:6.1f}s] {message}"
        self.log_lines.append(line)
        if self.on_log is not None:
            self.on_log(line)
        elif not self.options.quiet:
            print(line, flush=True)

    def headline(self) -> str:
        return ""

    def progress(self) -> Progress:
        return Progress(
            name=self.options.name,
            framework_id=self.framework_id.value if self.framework_id else None,
            running=len(self.running),
            finished=self.finished_tasks,
            failed=self.failed_tasks,
            headline=self.headline(),
            done=self.finished.is_set(),
        )

    def report(self) -> list[str]:
        return [self.headline()]


async def fetch_master_state(master_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET the master's `/master/state` (the legacy JSON state endpoint)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{master_url.rstrip('/')}/master/state", timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response,
    ):
        response.raise_for_status()
        return await response.json(content_type=None)


def run_framework(framework: ExampleFramework, *, failover: bool = False) -> int:
    """Run a framework from a plain `main()` (Ctrl-C stops it cleanly); print its report."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        lines = asyncio.run(framework.run(failover=failover))
    except KeyboardInterrupt:
        lines = framework.report()
        print("interrupted", file=sys.stderr)
    print(f"== {framework.options.name}: report ==")
    for line in lines:
        print(f"  {line}")
    return 0 if framework.finished.is_set() and not framework.aborted else 1
