"""The agent's in-memory records: frameworks, executors, tasks, grouped by lifecycle stage.

Owns the data model only (no I/O). Collections and when entries move between them:

- `Framework.executors`: executors launched and not yet finished with; an executor moves to
  `Framework.completed_executors` once its container has terminated *and* every terminal
  update of its tasks has been acknowledged.
- `Executor.queued`: launches (a task, or a task group) received from the master but not yet
  delivered to the executor (it has not subscribed yet); delivered after SUBSCRIBED.
- `Executor.launched`: tasks delivered (LAUNCH / LAUNCH_GROUP sent) and not terminal.
- `Executor.terminated`: tasks whose latest state is terminal but whose updates are not all
  acknowledged; `Executor.completed` once they are (bounded).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from mezzo.agent.containerizer.records import Limitation
from mezzo.api.codec import encode
from mezzo.api.common import (
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    Reason,
    Resource,
    Task,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mezzo.resources import EMPTY, Resources
from mezzo.resources.memo import WireMemo

MAX_COMPLETED_TASKS_PER_EXECUTOR = 200
MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK = 150
MAX_COMPLETED_FRAMEWORKS = 50
# Statuses kept per task (the last few are enough for /state and re-registration).
MAX_STATUSES_PER_TASK = 10


class ExecutorPhase(StrEnum):
    REGISTERING = "REGISTERING"  # launched (or recovered), waiting for SUBSCRIBE
    RUNNING = "RUNNING"  # subscribed
    TERMINATING = "TERMINATING"  # shutdown requested, container not gone yet
    TERMINATED = "TERMINATED"  # container gone; waiting for terminal updates to be acked


@dataclass(frozen=True)
class PendingTermination:
    """Why the agent is ending an executor: the state and reason its live tasks then get."""

    state: TaskState
    reason: Reason
    message: str


def _no_resources() -> Resources:
    return EMPTY  # immutable: every new executor shares it


@dataclass
class Launch:
    """One launch from the master: a single task, or a task group (delivered together).
    `fetching`: a group for the default executor whose tasks' URIs are being fetched into
    their sandboxes; it is delivered once they are."""

    tasks: list[TaskInfo]
    group: bool
    fetching: bool = False


@dataclass
class Executor:
    framework_id: FrameworkID
    info: ExecutorInfo
    container_id: str
    directory: str  # the sandbox (see `sandbox`)
    command: bool  # the built-in command executor
    checkpoint: bool
    phase: ExecutorPhase = ExecutorPhase.REGISTERING
    pid: int | None = None
    stream: Any = None  # the subscription stream: an opaque handle of the shell
    queued: list[Launch] = field(default_factory=list)
    launched: dict[TaskID, Task] = field(default_factory=dict)
    terminated: dict[TaskID, Task] = field(default_factory=dict)
    completed: deque[Task] = field(
        default_factory=partial(deque, maxlen=MAX_COMPLETED_TASKS_PER_EXECUTOR)
    )
    pending_termination: PendingTermination | None = None
    # Timers of the core (on its clock's monotonic scale): the executor must subscribe by
    # `registration_deadline`; after SHUTDOWN its container is destroyed at `shutdown_deadline`.
    registration_deadline: float | None = None
    shutdown_deadline: float | None = None
    # Resources of the executor itself plus its tasks (what the container is limited to).
    resources: Resources = field(default_factory=_no_resources)
    # Set while recovering: the executor must re-subscribe or it is shut down.
    recovered: bool = False
    # A limit its container broke (ContainerLimited): the container is being destroyed and its
    # live tasks end TASK_FAILED with the limitation's reason.
    limitation: Limitation | None = None

    @property
    def id(self) -> ExecutorID:
        return self.info.executor_id

    @property
    def sandbox(self) -> Path:
        return Path(self.directory)

    def queued_task(self, task_id: TaskID) -> Launch | None:
        for launch in self.queued:
            if any(t.task_id == task_id for t in launch.tasks):
                return launch
        return None

    def queued_tasks(self) -> list[TaskInfo]:
        return [t for launch in self.queued for t in launch.tasks]

    def find_task(self, task_id: TaskID) -> Task | None:
        return self.launched.get(task_id) or self.terminated.get(task_id)

    def has_live_work(self) -> bool:
        return bool(self.queued or self.launched)

    def is_done(self) -> bool:
        """Container gone and nothing left to deliver or acknowledge."""
        return self.phase == ExecutorPhase.TERMINATED and not (
            self.queued or self.launched or self.terminated
        )


@dataclass
class Framework:
    info: FrameworkInfo
    executors: dict[str, Executor] = field(default_factory=dict)
    completed_executors: deque[Executor] = field(
        default_factory=lambda: deque(maxlen=MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK)
    )
    terminating: bool = False

    @property
    def id(self) -> FrameworkID:
        assert self.info.id is not None
        return self.info.id

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.checkpoint)


def new_task(info: TaskInfo, framework_id: FrameworkID, executor: Executor) -> Task:
    """The agent's Task record for a TaskInfo it was asked to run (state TASK_STAGING)."""
    return Task(
        name=info.name,
        task_id=info.task_id,
        framework_id=framework_id,
        executor_id=None if executor.command else executor.info.executor_id,
        agent_id=info.agent_id,
        state=TaskState.TASK_STAGING,
        resources=info.resources,
        labels=info.labels,
        discovery=info.discovery,
        container=info.container,
        health_check=info.health_check,
        check=info.check,
        kill_policy=info.kill_policy,
        limits=info.limits,
    )


def record_status(task: Task, status: TaskStatus) -> None:
    """Apply an update to the task: latest state, and the status history (bounded)."""
    task.state = status.state
    task.statuses.append(status)
    if len(task.statuses) > MAX_STATUSES_PER_TASK:
        del task.statuses[0]


def resources_of(lists: Iterable[list[Resource]]) -> Resources:
    """The sum of wire resource lists, without allocation info (what the agent accounts)."""
    total: Resources | None = None
    for resources in lists:
        if resources:
            parsed = accounted(resources)
            total = parsed if total is None else total + parsed
    return EMPTY if total is None else total


# Parsed resource lists by their wire encoding (`mezzo.resources.memo`).
_PARSED: WireMemo[Resources] = WireMemo()


def accounted(resources: list[Resource]) -> Resources:
    """One non-empty wire resource list as the agent accounts it (ValidationError if bad)."""
    return _PARSED.get(encode(resources), lambda: Resources.from_wire(resources).unallocate())
