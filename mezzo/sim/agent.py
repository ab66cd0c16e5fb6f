"""The simulated agent: speaks the real master <-> agent protocol (`mezzo.api.internal`).

Until mezzo's agent has an I/O-free core this is a faithful stand-in for it, with the same
contract as `mezzo.testing.emulated_agent` (which does the same over HTTP):

- registers with `AgentSubscribe`; after a master change re-registers with its id and the
  frameworks, executors and tasks it runs;
- answers every PING with a PONG;
- RUN_TASK / RUN_TASK_GROUP: the task reports TASK_RUNNING after `launch_delay`, runs for the
  duration its command says (`sleep 12.5`; `task.data` holding a number for custom
  executors), then reports TASK_FINISHED; no duration means it runs until killed;
- status updates are reliable: fresh uuids, one update in flight per task, the next sent when
  the master relays the scheduler's acknowledgement, the head resent every `retry_seconds`
  until acknowledged and at once after re-registering; updates queued in the same instant
  leave as one STATUS_UPDATE call (`merge_status_updates`), as the real agent sends them;
- KILL_TASK answers TASK_KILLED; SHUTDOWN_FRAMEWORK drops the framework's tasks;
  SHUTDOWN_EXECUTOR reports EXECUTOR_EXITED.

`AgentModel` is the small interface the simulator drives, so that an adapter around the real
agent core can replace this class without touching the experiments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from mezzo.api.common import (
    AgentID,
    AgentInfo,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    Source,
    TaskInfo,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentExecutor,
    AgentExecutorExited,
    AgentPong,
    AgentStatusUpdate,
    AgentSubscribe,
    AgentTask,
    merge_status_updates,
)
from mezzo.resources import Resources
from mezzo.sim.engine import Engine, Timer
from mezzo.sim.master_node import Link

if TYPE_CHECKING:
    from mezzo.sim.master_node import MasterNode


class AgentModel(Protocol):
    """What the simulator needs from an agent, real core or stand-in."""

    hostname: str
    agent_id: str | None

    def connect(self, master: MasterNode) -> None:
        """(Re-)register with `master` now."""

    def master_lost(self) -> None:
        """The current master is gone (its stream broke); wait for `connect`."""


def task_duration(task: TaskInfo) -> float | None:
    """Seconds a simulated task runs: `sleep N` in its command, or a number in its data."""
    if task.command is not None and task.command.value:
        words = task.command.value.split()
        if len(words) == 2 and words[0] == "sleep" and words[1] != "forever":
            return float(words[1])
        return None
    if task.data:
        return float(task.data)
    return None


class _Task:
    __slots__ = ("done_timer", "framework_id", "info", "pending", "sent_at", "state")

    def __init__(self, info: TaskInfo, framework_id: str) -> None:
        self.info = info
        self.framework_id = framework_id
        self.state = TaskState.TASK_STAGING
        # Updates not yet acknowledged, oldest first; only the head is in flight.
        self.pending: deque[TaskStatus] = deque()
        self.sent_at = 0.0
        self.done_timer: Timer | None = None


class SimAgent:
    def __init__(
        self,
        engine: Engine,
        index: int,
        hostname: str,
        resources: str | Resources,
        *,
        launch_delay: float = 0.0,
        retry_seconds: float = 10.0,
        on_task_end: Callable[[SimAgent, TaskInfo, TaskState], None] | None = None,
    ) -> None:
        self.engine = engine
        self.index = index
        self.hostname = hostname
        total = resources if isinstance(resources, Resources) else Resources.parse(resources)
        self.info = AgentInfo(hostname=hostname, port=5051, resources=total.to_wire())
        self.launch_delay = launch_delay
        self.retry_seconds = retry_seconds
        self.on_task_end = on_task_end
        self.agent_id: str | None = None
        self.master: MasterNode | None = None
        self.link: Link | None = None
        self.subscribed = False
        self.frameworks: dict[str, FrameworkInfo] = {}
        self.executors: dict[tuple[str, str], ExecutorInfo] = {}
        self.tasks: dict[tuple[str, str], _Task] = {}
        self._outgoing: list[AgentCall] = []
        self._uuid_counter = 0
        self._retry_timer: Timer | None = None
        self.registered_at: float | None = None  # last (re-)registration confirmed

    # ------------------------------------------------------------------ connection

    def connect(self, master: MasterNode) -> None:
        self.master = master
        self.link = Link(self)
        sub = AgentSubscribe(agent_info=self.info)
        if self.agent_id is not None:
            self.info.id = AgentID(value=self.agent_id)
            sub.frameworks = list(self.frameworks.values())
            sub.executors = [
                AgentExecutor(framework_id=FrameworkID(value=fid), executor_info=info)
                for (fid, _eid), info in self.executors.items()
            ]
            sub.tasks = [
                AgentTask(
                    task_id=t.info.task_id,
                    framework_id=FrameworkID(value=t.framework_id),
                    executor_id=t.info.executor.executor_id if t.info.executor else None,
                    name=t.info.name,
                    state=t.state,
                    resources=t.info.resources,
                )
                for t in self.tasks.values()
            ]
        master.agent_subscribe(sub, self.link)

    def master_lost(self) -> None:
        if self.link is not None:
            self.link.closed = True
        self.link = None
        self.subscribed = False

    def stream_closed(self, link: Link) -> None:
        if link is self.link:
            self.subscribed = False

    # ------------------------------------------------------------------ events

    def receive(self, event: AgentEvent) -> None:
        kind = event.type
        if kind == AgentEventType.PING:
            self._post(AgentCall(type=AgentCallType.PONG, pong=AgentPong(
                ping_id=event.ping.ping_id if event.ping else 0)))
        elif kind == AgentEventType.RUN_TASK:
            run = event.run_task
            assert run is not None
            if run.executor_info is not None:
                self._executor(run.framework_info, run.executor_info)
            self._launch(run.framework_info, run.task)
        elif kind == AgentEventType.ACKNOWLEDGE:
            ack = event.acknowledge
            assert ack is not None
            task = self.tasks.get((ack.framework_id.value, ack.task_id.value))
            if task is not None and task.pending and task.pending[0].uuid == ack.uuid:
                task.pending.popleft()
                if task.pending:
                    self._send_head(task)
                elif is_terminal(task.state):
                    del self.tasks[(task.framework_id, task.info.task_id.value)]
        elif kind == AgentEventType.SUBSCRIBED:
            assert event.subscribed is not None
            self.agent_id = event.subscribed.agent_id.value
            self.subscribed = True
            self.registered_at = self.engine.now
            for task in self.tasks.values():  # the new master has not seen these
                if task.pending:
                    self._send_head(task)
        elif kind == AgentEventType.RUN_TASK_GROUP:
            group = event.run_task_group
            assert group is not None
            self._executor(group.framework_info, group.executor_info)
            for info in group.task_group.tasks:
                self._launch(group.framework_info, info)
        elif kind == AgentEventType.KILL_TASK:
            kill = event.kill_task
            assert kill is not None
            task = self.tasks.get((kill.framework_id.value, kill.task_id.value))
            if task is not None and not is_terminal(task.state):
                self._end(task, TaskState.TASK_KILLED)
        elif kind == AgentEventType.SHUTDOWN_FRAMEWORK:
            assert event.shutdown_framework is not None
            fid = event.shutdown_framework.framework_id.value
            for key in [k for k in self.tasks if k[0] == fid]:
                task = self.tasks.pop(key)
                if task.done_timer is not None:
                    task.done_timer.cancel()
            for key in [k for k in self.executors if k[0] == fid]:
                del self.executors[key]
            self.frameworks.pop(fid, None)
        elif kind == AgentEventType.SHUTDOWN_EXECUTOR:
            shut = event.shutdown_executor
            assert shut is not None
            key = (shut.framework_id.value, shut.executor_id.value)
            if self.executors.pop(key, None) is not None:
                self._post(AgentCall(type=AgentCallType.EXECUTOR_EXITED, executor_exited=AgentExecutorExited(
                    framework_id=shut.framework_id, executor_id=shut.executor_id, status=0)))
        elif kind == AgentEventType.UPDATE_FRAMEWORK:
            assert event.update_framework is not None
            info = event.update_framework.framework_info
            if info.id is not None:
                self.frameworks[info.id.value] = info
        # SHUTDOWN (agent marked gone), RECONCILE_TASKS, ERROR, FRAMEWORK_MESSAGE: nothing
        # the simulated workloads use.

    # ------------------------------------------------------------------ tasks

    def _executor(self, framework: FrameworkInfo, executor: ExecutorInfo) -> None:
        assert framework.id is not None
        self.executors[(framework.id.value, executor.executor_id.value)] = executor

    def _launch(self, framework: FrameworkInfo, info: TaskInfo) -> None:
        assert framework.id is not None
        fid = framework.id.value
        self.frameworks[fid] = framework
        task = _Task(info, fid)
        self.tasks[(fid, info.task_id.value)] = task
        self.engine.after(self.launch_delay, self._started, task)

    def _started(self, task: _Task) -> None:
        if is_terminal(task.state) or self.tasks.get((task.framework_id, task.info.task_id.value)) is not task:
            return
        self._update(task, TaskState.TASK_RUNNING)
        duration = task_duration(task.info)
        if duration is not None:
            task.done_timer = self.engine.after(duration, self._end, task, TaskState.TASK_FINISHED)

    def _end(self, task: _Task, state: TaskState) -> None:
        if is_terminal(task.state):
            return
        if task.done_timer is not None:
            task.done_timer.cancel()
            task.done_timer = None
        self._update(task, state)
        if self.on_task_end is not None:
            self.on_task_end(self, task.info, state)

    def _update(self, task: _Task, state: TaskState) -> None:
        task.state = state
        self._uuid_counter += 1
        status = TaskStatus(
            task_id=task.info.task_id,
            state=state,
            source=Source.SOURCE_EXECUTOR,
            agent_id=AgentID(value=self.agent_id or ""),
            executor_id=task.info.executor.executor_id if task.info.executor else None,
            timestamp=self.engine.now,
            uuid=((self.index << 64) | self._uuid_counter).to_bytes(16, "big"),
        )
        task.pending.append(status)
        if len(task.pending) == 1:
            self._send_head(task)

    def _send_head(self, task: _Task) -> None:
        task.sent_at = self.engine.now
        self._post(AgentCall(
            type=AgentCallType.STATUS_UPDATE,
            status_update=AgentStatusUpdate(
                framework_id=FrameworkID(value=task.framework_id),
                status=task.pending[0],
                latest_state=task.state,
            ),
        ))
        if self._retry_timer is None:
            self._retry_timer = self.engine.after(self.retry_seconds, self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        due = self.engine.now - self.retry_seconds
        waiting = False
        for task in self.tasks.values():
            if task.pending:
                if task.sent_at <= due and self.subscribed:
                    self._send_head(task)
                waiting = True
        if waiting and self._retry_timer is None:
            self._retry_timer = self.engine.after(self.retry_seconds, self._retry)

    # ------------------------------------------------------------------ sending

    def _post(self, call: AgentCall) -> None:
        call.agent_id = AgentID(value=self.agent_id or "")
        self._outgoing.append(call)
        if len(self._outgoing) == 1:
            self.engine.soon(self._flush)

    def _flush(self) -> None:
        calls, self._outgoing = self._outgoing, []
        if not self.subscribed or self.master is None or not self.master.alive:
            return  # dropped; status updates are resent after re-registration
        for call in merge_status_updates(calls):
            self.master.agent_call(call)

    @property
    def running_tasks(self) -> int:
        return sum(1 for t in self.tasks.values() if not is_terminal(t.state))
