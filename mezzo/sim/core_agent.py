"""`CoreAgent`: the real agent decision core (`mezzo.agent.core.AgentCore`) in the simulator.

The same `AgentModel` interface as `mezzo.sim.agent.SimAgent`, but every agent decision —
registration and re-registration, running tasks in executors, reliable status updates with
their retries, kills, shutdowns — is made by mezzo's own agent core. What the core asks of
the outside (its `AgentOutbox`) is carried out here on the virtual clock: containers launch
and their executors subscribe at once; an executor runs each task it is given for the
duration its command says (`sleep 12.5`, or a number in `task.data`), reporting TASK_RUNNING
then TASK_FINISHED; KILL answers TASK_KILLED; a command executor exits after its task, as the
real one does. Checkpoints are not written (nothing restarts). Calls to the master made in
one instant leave as one batch (`merge_status_updates`), as the agent's master link sends
them; the core's timers (`next_deadline`, on its monotonic scale) become engine timers.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any

from mezzo.agent.base import AgentOptions, CallRefused
from mezzo.agent.containerizer.records import Termination
from mezzo.agent.core import AgentCore
from mezzo.agent.events import (
    AgentInput,
    ContainerExited,
    ContainerLaunched,
    ExecutorSubscribed,
    ExecutorUpdate,
    MasterDisconnected,
    TasksFetched,
)
from mezzo.agent.outbox import CheckpointRecord, ContainerLaunch, TaskFetch
from mezzo.api import executor as exe
from mezzo.api.common import (
    AgentInfo,
    ExecutorID,
    FrameworkID,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    merge_status_updates,
)
from mezzo.resources import Resources
from mezzo.sim.agent import task_duration
from mezzo.sim.engine import START, Engine, Timer
from mezzo.sim.master_node import Link

if TYPE_CHECKING:
    from mezzo.sim.master_node import MasterNode


class _Executor:
    __slots__ = ("command", "container_id", "executor_id", "framework_id", "live")

    def __init__(self, launch: ContainerLaunch) -> None:
        assert launch.framework.id is not None
        self.container_id = launch.container_id
        self.framework_id: FrameworkID = launch.framework.id
        self.executor_id: ExecutorID = launch.executor.executor_id
        self.command = launch.command
        self.live: dict[str, Timer | None] = {}  # task id -> its completion timer


class _Executors:
    """The core's AgentOutbox: simulated containers and executors (see the module docstring)."""

    def __init__(self, agent: CoreAgent) -> None:
        self.agent = agent
        self.executors: dict[str, _Executor] = {}
        self._pids = itertools.count(100_000)

    def launch_container(self, launch: ContainerLaunch) -> None:
        ex = self.executors[launch.container_id] = _Executor(launch)
        self.agent.later(ContainerLaunched(launch.container_id, next(self._pids)))
        self.agent.later(ExecutorSubscribed(ex.framework_id, ex.executor_id, exe.Subscribe(), ex))

    def destroy_container(self, container_id: str) -> None:
        ex = self.executors.pop(container_id, None)
        if ex is not None:
            for timer in ex.live.values():
                if timer is not None:
                    timer.cancel()
            self.agent.later(ContainerExited(container_id, Termination(9, None, "destroyed")))

    def update_container(self, container_id: str, resources: Resources) -> None:
        pass

    def fetch_task_uris(self, fetch: TaskFetch) -> None:
        # nothing to fetch in a simulation: the group's URIs are "fetched" at once
        self.agent.later(TasksFetched(fetch.container_id, fetch.key))

    def adopt_containers(self, containers: list[tuple[str, int]]) -> None:
        pass

    def send_executor(self, stream: Any, event: exe.Event) -> None:
        ex: _Executor = stream
        if event.type == exe.EventType.LAUNCH and event.launch is not None:
            self._run(ex, [event.launch.task])
        elif event.type == exe.EventType.LAUNCH_GROUP and event.launch_group is not None:
            self._run(ex, list(event.launch_group.task_group.tasks))
        elif event.type == exe.EventType.KILL and event.kill is not None:
            key = event.kill.task_id.value
            if key in ex.live:
                self._end(ex, key, TaskState.TASK_KILLED)
        elif event.type == exe.EventType.SHUTDOWN:
            self.destroy_container(ex.container_id)

    def _run(self, ex: _Executor, tasks: list[TaskInfo]) -> None:
        engine = self.agent.engine
        for task in tasks:
            key = task.task_id.value
            ex.live[key] = None
            self._update(ex, key, TaskState.TASK_RUNNING)
            duration = task_duration(task)
            if duration is not None:
                ex.live[key] = engine.after(duration, self._end, ex, key, TaskState.TASK_FINISHED)

    def _end(self, ex: _Executor, key: str, state: TaskState) -> None:
        timer = ex.live.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._update(ex, key, state)
        if ex.command and not ex.live and self.executors.pop(ex.container_id, None) is not None:
            self.agent.later(ContainerExited(ex.container_id, Termination(0, None, "exited")))

    def _update(self, ex: _Executor, key: str, state: TaskState) -> None:
        status = TaskStatus(task_id=TaskID(value=key), state=state, uuid=self.agent.new_uuid())
        self.agent.later(ExecutorUpdate(ex.framework_id, ex.executor_id, status))

    def close_executor(self, stream: Any, reason: str) -> None:
        pass

    def send_master(self, call: AgentCall) -> None:
        self.agent.post(call)

    def checkpoint(self, record: CheckpointRecord) -> None:
        pass

    def recovery_complete(self) -> None:
        pass

    def schedule_gc(self, paths: list[str]) -> None:
        pass  # no sandboxes on disk

    def stop_agent(self, forget: bool) -> None:
        pass

    @property
    def running(self) -> int:
        return sum(len(ex.live) for ex in self.executors.values())


class CoreAgent:
    def __init__(self, engine: Engine, index: int, hostname: str, resources: str | Resources,
                 *, options: AgentOptions | None = None) -> None:
        self.engine = engine
        self.index = index
        self.hostname = hostname
        total = resources if isinstance(resources, Resources) else Resources.parse(resources)
        info = AgentInfo(hostname=hostname, port=5051, resources=total.to_wire())
        self._uuids = itertools.count(1)
        self.executors = _Executors(self)
        self.core = AgentCore(info, self.executors, clock=engine.clock, uuid_bytes=self.new_uuid,
                              options=options or AgentOptions(work_dir="/sim"))
        self.master: MasterNode | None = None
        self.link: Link | None = None
        self.subscribed = False
        self.registered_at: float | None = None
        self._outgoing: list[AgentCall] = []
        self._timer: Timer | None = None

    @property
    def agent_id(self) -> str | None:
        return self.core.info.id.value if self.core.info.id is not None else None

    @property
    def running_tasks(self) -> int:
        return self.executors.running

    def new_uuid(self) -> bytes:
        return ((self.index << 64) | next(self._uuids)).to_bytes(16, "big")

    # ------------------------------------------------------------------ connection

    def connect(self, master: MasterNode) -> None:
        self.master = master
        self.link = Link(self)
        call = self.core.subscribe_call()
        assert call.subscribe is not None
        master.agent_subscribe(call.subscribe, self.link)

    def master_lost(self) -> None:
        if self.link is not None:
            self.link.closed = True
        self.link = None
        self.subscribed = False
        self.handle(MasterDisconnected())

    def stream_closed(self, link: Link) -> None:
        if link is self.link:
            self.link = None
            self.subscribed = False
            self.handle(MasterDisconnected())

    def receive(self, event: AgentEvent) -> None:
        if event.type == AgentEventType.SUBSCRIBED:
            self.subscribed = True
            self.registered_at = self.engine.now
        self.handle(event)

    # ------------------------------------------------------------------ the core

    def handle(self, event: AgentInput) -> None:
        with contextlib.suppress(CallRefused):  # an executor call refused is dropped
            self.core.handle(event)
        self._arm()

    def later(self, event: AgentInput) -> None:
        self.engine.soon(self.handle, event)

    def _arm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        when = deadline + START  # the core's monotonic scale -> engine time
        if self._timer is not None and self._timer.active and self._timer.when <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.engine.at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.core.tick()
        self._arm()

    # ------------------------------------------------------------------ to the master

    def post(self, call: AgentCall) -> None:
        self._outgoing.append(call)
        if len(self._outgoing) == 1:
            self.engine.soon(self._flush)

    def _flush(self) -> None:
        calls, self._outgoing = self._outgoing, []
        if self.link is None or self.link.closed or self.master is None or not self.master.alive:
            return  # dropped, as calls to an unreachable master are; updates are retried
        for call in merge_status_updates([c for c in calls if c.type != AgentCallType.SUBSCRIBE]):
            self.master.agent_call(call)
