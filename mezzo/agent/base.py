"""The agent core's state and the helpers every handler family shares.

`AgentCoreBase` owns the lifecycle collections (see `mezzo.agent.state` for when tasks and
executors move between them), the status update manager (`mezzo.agent.updates`), the injected
collaborators (clock, uuid source, outbox, options) and the operations several handler
families need: minting agent-generated updates, recording an update of an executor's task,
forwarding to the master, resource accounting, checkpoint helpers. The handler families
(`launches`, `executors`, `endings`) derive from it; `mezzo.agent.core.AgentCore` combines
them and is the only entry point (`handle`, `tick`).

Rules: no asyncio, no files, no sockets here. Timestamps are `clock.now()`; every deadline is
on the `clock.monotonic()` scale; ids and uuids come from `uuid_bytes`; effects leave through
`self.outbox`.

Two indexes keep the hot paths (a launch, an update) independent of how many executors run:
`task_index` (task id -> executor, for tasks queued, launched or terminated but not yet
acknowledged) and `containers` (container id -> executor, while the executor is not completed);
`used` is the sum of the resources of executors whose container has not terminated.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mezzo.agent.operations import AgentOperations
from mezzo.agent.outbox import (
    AckRecord,
    AgentOutbox,
    FrameworkRecord,
    RemoveExecutorRecord,
    RemoveFrameworkRecord,
    UpdateRecord,
)
from mezzo.agent.state import (
    MAX_COMPLETED_FRAMEWORKS,
    Executor,
    ExecutorPhase,
    Framework,
    record_status,
    resources_of,
)
from mezzo.agent.updates import Forward, StatusUpdateManager
from mezzo.api import executor as exe
from mezzo.api.common import (
    AgentInfo,
    ContainerID,
    ContainerStatus,
    ExecutorID,
    FrameworkID,
    FrameworkInfo,
    Reason,
    Source,
    Task,
    TaskID,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.internal import AgentCall, AgentCallType, AgentStatusUpdate
from mezzo.core.clock import Clock
from mezzo.core.errors import CallRefused
from mezzo.resources import Resources

log = logging.getLogger("mezzo.agent")

__all__ = ["AgentCoreBase", "AgentOptions", "CallRefused"]


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """What the core is configured with (the shell builds it from `AgentFlags`)."""

    work_dir: str = ""
    executor_registration_timeout: float = 60.0
    executor_shutdown_grace_period: float = 5.0
    executor_reregistration_timeout: float = 2.0
    status_update_retry_interval: float = 10.0
    status_update_retry_max: float = 600.0


METRIC_NAMES = (
    "valid_status_updates",
    "invalid_status_updates",
    "valid_framework_messages",
    "invalid_framework_messages",
    "container_launch_errors",
    "recovery_errors",
    "executors_terminated",
)


class AgentCoreBase:
    def __init__(
        self,
        info: AgentInfo,
        outbox: AgentOutbox,
        *,
        clock: Clock,
        uuid_bytes: Callable[[], bytes],
        options: AgentOptions | None = None,
        recovering: bool = False,
    ) -> None:
        self.info = info
        self.total = Resources.from_wire(info.resources)
        self.outbox = outbox
        self.clock = clock
        self.uuid_bytes = uuid_bytes
        self.options = options or AgentOptions()
        self.start_time = clock.now()

        # Frameworks with executors here (or launches on the way); leave when their last
        # executor is completed -> `completed_frameworks` (bounded).
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        self.updates = StatusUpdateManager(
            self.options.status_update_retry_interval, self.options.status_update_retry_max
        )
        # Checkpointed resources and operations (`mezzo.agent.operations`); `total` follows
        # them (static resources with the dynamic reservations and volumes carved out).
        # Operation statuses are resent on the same schedule as task status updates.
        self.operations = AgentOperations(
            self.total, initial=self.options.status_update_retry_interval,
            maximum=self.options.status_update_retry_max)
        self.task_index: dict[TaskID, Executor] = {}
        self.containers: dict[str, Executor] = {}
        self.used = Resources()
        # Executor deadlines (registration, shutdown grace) in a heap: (when, seq, executor).
        # An entry is stale once the executor's deadline changed; `tick` skips those.
        self.timers: list[tuple[float, int, Executor]] = []
        self._timer_seq = itertools.count()

        # Registered with a master (SUBSCRIBED received, stream not broken since).
        self.registered = False
        self.master_info: object | None = None
        # True from start-up until recovered executors re-subscribed (or timed out); the
        # executor API answers 503 to everything but SUBSCRIBE meanwhile.
        self.recovering = recovering
        self.recovery_deadline: float | None = None
        # Set by the master's SHUTDOWN: no new launches; the shell stops once told.
        self.stopping = False

        self.metrics: dict[str, int] = dict.fromkeys(METRIC_NAMES, 0)
        # Terminal updates per state (the `slave/tasks_<state>` counters).
        self.task_counts: dict[str, int] = {}

    # ----------------------------------------------------------------- time

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def wake_at(self, ex: Executor, when: float) -> None:
        """Have `tick` look at `ex` at `when` (its registration or shutdown deadline)."""
        heapq.heappush(self.timers, (when, next(self._timer_seq), ex))

    # ----------------------------------------------------------------- lookups

    def executor(self, framework_id: FrameworkID, executor_id: ExecutorID) -> Executor | None:
        fw = self.frameworks.get(framework_id.value)
        return fw.executors.get(executor_id.value) if fw is not None else None

    def find_task(self, task_id: TaskID) -> tuple[Executor, Task | None] | None:
        """The executor holding a task (queued, launched or terminated) and its Task record
        (None while it is only queued)."""
        ex = self.task_index.get(task_id)
        if ex is None:
            return None
        return ex, ex.find_task(task_id)

    # ----------------------------------------------------------------- frameworks

    def framework(self, info: FrameworkInfo) -> Framework:
        """The framework record for `info` (created, or its info replaced), checkpointed."""
        assert info.id is not None
        fw = self.frameworks.get(info.id.value)
        if fw is None:
            fw = self.frameworks[info.id.value] = Framework(info)
        else:
            fw.info = info
        if fw.checkpoint and self.info.id is not None:
            self.outbox.checkpoint(FrameworkRecord(info))
        return fw

    # ----------------------------------------------------------------- resources

    def set_resources(self, ex: Executor, resources: Resources) -> None:
        """Change what an executor holds, keeping `used` in step."""
        if ex.phase != ExecutorPhase.TERMINATED:
            used = self.used - ex.resources if ex.resources else self.used
            self.used = used + resources if resources else used
        ex.resources = resources

    def used_resources(self) -> Resources:
        return self.used

    # ----------------------------------------------------------------- status updates

    def agent_status(
        self,
        task_id: TaskID,
        state: TaskState,
        reason: Reason | None,
        message: str,
        executor_id: ExecutorID | None,
    ) -> TaskStatus:
        """An update generated by the agent itself (reliable: it carries a uuid)."""
        return TaskStatus(
            task_id=task_id, state=state, message=message, source=Source.SOURCE_AGENT,
            reason=reason, agent_id=self.info.id, executor_id=executor_id,
            timestamp=self.clock.now(), uuid=self.uuid_bytes(),
        )

    def executor_status(self, fw: Framework, ex: Executor, status: TaskStatus) -> bool:
        """Record an update of one of the executor's tasks; returns False for a duplicate.
        Raises ValueError when the task already had its terminal update."""
        if status.agent_id is None:
            status.agent_id = self.info.id
        if status.executor_id is None:
            status.executor_id = ex.id
        if status.container_status is None:
            status.container_status = ContainerStatus(
                container_id=ContainerID(value=ex.container_id), executor_pid=ex.pid
            )
        new, forwards = self.updates.update(fw.id, status, self.monotonic())
        if not new:
            return False
        if ex.checkpoint and fw.checkpoint and not fw.terminating:
            self.outbox.checkpoint(
                UpdateRecord(fw.id.value, ex.id.value, ex.container_id, status)
            )
        task = ex.launched.get(status.task_id)
        if task is not None:
            record_status(task, status)
            if is_terminal(status.state):
                del ex.launched[status.task_id]
                ex.terminated[status.task_id] = task
                self.set_resources(ex, ex.resources - resources_of([task.resources]))
                self.count_terminal(status.state)
                if not ex.command and ex.launched and ex.pid is not None:
                    # The executor runs on with other tasks: its container shrinks (Mesos's
                    # agent updates the container to what the executor still holds).
                    self.outbox.update_container(ex.container_id, ex.resources)
        elif (task := ex.terminated.get(status.task_id)) is not None:
            record_status(task, status)
        self.metrics["valid_status_updates"] += 1
        self.send_forwards(forwards)
        return True

    def accept_update(self, framework_id: FrameworkID, status: TaskStatus) -> None:
        """An update for a task that has no executor here (rejected launch, unknown task)."""
        try:
            _, forwards = self.updates.update(framework_id, status, self.monotonic())
        except ValueError:
            return
        self.send_forwards(forwards)
        self.count_terminal(status.state)

    def count_terminal(self, state: TaskState) -> None:
        self.task_counts[state.value] = self.task_counts.get(state.value, 0) + 1

    def acknowledge(self, framework_id: FrameworkID, task_id: TaskID, uuid: bytes) -> None:
        """The scheduler acknowledged an update (relayed by the master)."""
        acked, forwards = self.updates.acknowledge(task_id, uuid, self.monotonic())
        if acked is None:
            log.debug("ignoring acknowledgement of an unknown update of task %s", task_id)
            return
        fw = self.frameworks.get(framework_id.value)
        found = self.find_task(task_id)
        if fw is not None and found is not None:
            ex, _task = found
            if ex.checkpoint:
                self.outbox.checkpoint(
                    AckRecord(fw.id.value, ex.id.value, ex.container_id, task_id.value, uuid)
                )
            if is_terminal(acked.state) and task_id in ex.terminated:
                ex.completed.append(ex.terminated.pop(task_id))
                self.task_index.pop(task_id, None)
                self.maybe_complete_executor(fw, ex)
        self.send_forwards(forwards)

    def send_forwards(self, forwards: list[Forward]) -> None:
        for f in forwards:
            self.outbox.send_master(
                AgentCall(
                    type=AgentCallType.STATUS_UPDATE, agent_id=self.info.id,
                    status_update=AgentStatusUpdate(
                        framework_id=f.framework_id, status=f.status, latest_state=f.latest_state
                    ),
                )
            )

    # ----------------------------------------------------------------- executors

    def send_to_executor(self, ex: Executor, event: exe.Event) -> bool:
        """Queue an event on the executor's stream; False if it has none."""
        if ex.stream is None:
            return False
        self.outbox.send_executor(ex.stream, event)
        return True

    def maybe_complete_executor(self, fw: Framework, ex: Executor) -> None:
        """Container gone and every terminal update acknowledged: the executor is completed
        (and its framework too once it has no executor left)."""
        if not ex.is_done() or fw.executors.get(ex.id.value) is not ex:
            return
        del fw.executors[ex.id.value]
        fw.completed_executors.append(ex)
        if self.containers.get(ex.container_id) is ex:
            del self.containers[ex.container_id]
        if ex.checkpoint:
            self.outbox.checkpoint(RemoveExecutorRecord(fw.id.value, ex.id.value))
        self.outbox.schedule_gc([ex.directory])
        self.maybe_remove_framework(fw)

    def maybe_remove_framework(self, fw: Framework) -> None:
        if fw.executors or self.frameworks.get(fw.id.value) is not fw:
            return
        del self.frameworks[fw.id.value]
        self.completed_frameworks.append(fw)
        if fw.checkpoint:
            self.outbox.checkpoint(RemoveFrameworkRecord(fw.id.value))
