"""A whole cluster in one process on one FakeClock: the master core, agent cores, schedulers.

`SimCluster` wires the real decision cores together with no sockets, no processes and no real
time: the master core of `mezzo.testing.master_cluster.MasterCluster` (seeded ids, the real
allocator, an in-memory registry) and one `mezzo.agent.core.AgentCore` per `SimAgent`, whose
outbox is `mezzo.testing.fake_executors.FakeExecutors` (containers and executors that "run"
tasks at once). Schedulers are `ScriptedScheduler`s (real scheduler `Call`s; "next / drop the
next event of type X" helpers).

Messages between the cores (master events to agents, agent calls to the master, what the fake
executors do) go through one FIFO queue, so a run is deterministic; `settle()` delivers until
nothing is left, and `advance(seconds)` moves the clock deadline by deadline, running the
master's and every agent's timers (offers, pings, update retries, executor timeouts) and
settling after each. The API, in full:

    cluster = SimCluster()                         # MasterOptions / AgentOptions optional
    agent = cluster.add_agent("cpus:4;mem:4096")   # registered (SimAgent)
    sched = cluster.add_scheduler()                # subscribed (ScriptedScheduler)
    cluster.advance(1)                             # an allocation cycle
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info("t1", offer)])
    cluster.settle()                               # RUN_TASK -> agent core -> TASK_RUNNING
    update = sched.next_event("UPDATE")
    sched.acknowledge(update.update.status); cluster.settle()
    agent.finish_task("t1")                        # its executor reports TASK_FINISHED
    agent.disconnect(); cluster.advance(5); agent.reconnect()   # re-registration

`SimAgent.core` is the agent's decision core (its frameworks, executors, update streams);
`SimAgent.sent` lists every call it sent the master. The simulator (`mezzo.sim`) builds on
this; tests use it to check master and agent together (`tests/test_sim_cluster.py`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from mezzo.agent.base import AgentOptions, CallRefused
from mezzo.agent.core import AgentCore
from mezzo.agent.events import AgentInput, MasterDisconnected
from mezzo.api.common import AgentInfo, FrameworkInfo, TaskID, TaskState
from mezzo.api.internal import AgentCall, AgentCallType, AgentEvent
from mezzo.core.clock import FakeClock
from mezzo.master.base import MasterOptions
from mezzo.master.core import CallRefused as MasterRefused
from mezzo.resources import Resources
from mezzo.testing.fake_executors import FakeExecutors
from mezzo.testing.master_cluster import FakeStream, MasterCluster, ScriptedScheduler

__all__ = ["SimAgent", "SimCluster"]


class AgentLink(FakeStream):
    """An agent's subscription stream: what the master sends is queued for the agent core."""

    def __init__(self, agent: SimAgent) -> None:
        super().__init__()
        self.agent = agent

    def push(self, event: Any) -> None:
        if not self.closed:
            self.events.append(event)
            self.agent.cluster.queue(lambda: self.agent.deliver(self, event))

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            self.agent.cluster.queue(lambda: self.agent.link_closed(self))


class SimAgent:
    """One agent core with fake executors, talking to the master through the cluster queue."""

    def __init__(self, cluster: SimCluster, info: AgentInfo, options: AgentOptions,
                 finish: bool) -> None:
        self.cluster = cluster
        self.finish = finish
        self._uuids = (i.to_bytes(16, "big") for i in itertools.count(1))
        self.executors = FakeExecutors(self)
        self.core = AgentCore(info, self.executors, clock=cluster.clock,
                              uuid_bytes=self.new_uuid, options=options)
        self.link: AgentLink | None = None
        self.sent: list[AgentCall] = []
        self.stopped = False

    @property
    def agent_id(self) -> str | None:
        return self.core.info.id.value if self.core.info.id is not None else None

    # --- FakeExecutorHost -----------------------------------------------------------------

    def new_uuid(self) -> bytes:
        return next(self._uuids)

    def later(self, event: AgentInput) -> None:
        self.cluster.queue(lambda: self.handle(event))

    def post(self, call: AgentCall) -> None:
        self.sent.append(call)
        self.cluster.queue(lambda: self._to_master(call))

    def shutdown_requested(self) -> None:
        self.stopped = True

    # --- the connection ---------------------------------------------------------------------

    def connect(self) -> None:
        """(Re-)register: SUBSCRIBE with what this agent runs."""
        call = self.core.subscribe_call()
        assert call.subscribe is not None
        self.link = AgentLink(self)
        self.cluster.master.agent_subscribe(call.subscribe, self.link)

    def disconnect(self) -> None:
        """The agent's stream breaks (both sides notice)."""
        link, self.link = self.link, None
        if link is None:
            return
        link.closed = True
        if self.agent_id is not None:
            self.cluster.master.agent_disconnected(self.agent_id, link)
        self.handle(MasterDisconnected())

    def reconnect(self) -> None:
        self.disconnect()
        self.connect()
        self.cluster.settle()

    def deliver(self, link: AgentLink, event: AgentEvent) -> None:
        if link is self.link:
            self.handle(event)

    def link_closed(self, link: AgentLink) -> None:
        if link is self.link:
            self.link = None
            self.handle(MasterDisconnected())

    def _to_master(self, call: AgentCall) -> None:
        if self.link is None or self.link.closed or call.type == AgentCallType.SUBSCRIBE:
            return  # dropped, as a call to an unreachable master is
        # A refusal is a 4xx answer: the agent's retries take care of updates.
        with contextlib.suppress(MasterRefused):
            self.cluster.master.agent_call(call)

    # --- inputs -------------------------------------------------------------------------

    def handle(self, event: AgentInput) -> None:
        # A fake executor's call refused is dropped, as a real executor's would be.
        with contextlib.suppress(CallRefused):
            self.core.handle(event)

    def finish_task(self, task_id: str, state: str = "TASK_FINISHED") -> None:
        """The task's executor reports `state` (default TASK_FINISHED)."""
        if not self.executors.finish_task(TaskID(value=task_id), TaskState(state)):
            raise AssertionError(f"no running task {task_id} on {self.agent_id}")
        self.cluster.settle()


class SimCluster:
    """The master core, agent cores and scripted schedulers on one FakeClock."""

    def __init__(
        self,
        options: MasterOptions | None = None,
        *,
        agent_options: AgentOptions | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.masters = MasterCluster(options, clock=clock)
        self.clock = self.masters.clock
        self.master = self.masters.master
        self.agent_options = agent_options or AgentOptions(work_dir="/sim")
        self.agents: list[SimAgent] = []
        self._queue: deque[Callable[[], None]] = deque()
        self._hosts = itertools.count()

    def add_agent(self, resources: str = "cpus:4;mem:4096;disk:10000;ports:[31000-32000]",
                  *, hostname: str | None = None, finish: bool = False) -> SimAgent:
        """A registered agent; with `finish`, its tasks finish as soon as they run."""
        info = AgentInfo(hostname=hostname or f"agent{next(self._hosts)}", port=5051,
                         resources=Resources.parse(resources).to_wire())
        agent = SimAgent(self, info, self.agent_options, finish)
        self.agents.append(agent)
        agent.connect()
        self.settle()
        return agent

    def add_scheduler(self, info: FrameworkInfo | None = None,
                      subscribe: bool = True) -> ScriptedScheduler:
        return self.masters.add_scheduler(info, subscribe)

    # --- delivery and time ------------------------------------------------------------------

    def queue(self, delivery: Callable[[], None]) -> None:
        self._queue.append(delivery)

    def settle(self, limit: int = 1_000_000) -> int:
        """Deliver queued messages until none is left; returns how many were delivered."""
        done = 0
        while self._queue:
            if done >= limit:
                raise AssertionError(f"still delivering after {limit} messages")
            self._queue.popleft()()
            done += 1
        return done

    def advance(self, seconds: float) -> None:
        """Move the clock by `seconds`, stopping at every deadline of the master or an agent
        on the way to run its timers and deliver what they sent."""
        target = self.clock.now() + seconds
        self.settle()
        while True:
            deadline = self._next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.set(max(deadline, self.clock.now()))
            self._tick()
            if (after := self._next_deadline()) is not None and after <= self.clock.now():
                self._tick()  # a pending allocation is due again at once; run it, go on
                if (after := self._next_deadline()) is not None and after <= self.clock.now():
                    break
        self.clock.set(target)
        self._tick()

    def _tick(self) -> None:
        self.master.tick()
        for agent in self.agents:
            agent.core.tick()
        self.settle()

    def _next_deadline(self) -> float | None:
        """The earliest deadline of the master or an agent, on the clock's `now` scale (agent
        cores keep theirs on the monotonic scale)."""
        offset = self.clock.now() - self.clock.monotonic()
        deadlines = [self.master.next_deadline()]
        for agent in self.agents:
            d = agent.core.next_deadline()
            if d is not None:
                deadlines.append(d + offset)
        return min(deadlines)
