"""The inputs of the agent's decision core (`mezzo.agent.core.AgentCore.handle`).

Every change of agent state starts as one of these typed events; the shell builds them from
what it observes and hands them to the core, which answers with effects through its
`AgentOutbox` (`mezzo.agent.outbox`). Where they come from:

- the master's stream: `mezzo.api.internal.AgentEvent` itself (RUN_TASK, RUN_TASK_GROUP,
  KILL_TASK, ACKNOWLEDGE, SHUTDOWN_FRAMEWORK, SHUTDOWN_EXECUTOR, FRAMEWORK_MESSAGE,
  UPDATE_FRAMEWORK, RECONCILE_TASKS, PING, SUBSCRIBED, SHUTDOWN, ERROR), and
  `MasterDisconnected` when that stream breaks;
- the executor API (`mezzo.agent.executor_api`): `ExecutorSubscribed`, `ExecutorUpdate`,
  `ExecutorMessage`, and `ExecutorDisconnected` when an executor's stream ends;
- the containerizer: `ContainerLaunched` / `ContainerLaunchFailed` (the answer to a
  `launch_container` effect), `ContainerLimited` (an isolator saw a limit broken: the core
  has the container destroyed) and `ContainerExited` (with the limitation that ended it, if
  any);
  the fetcher: `TasksFetched` (the answer to a `fetch_task_uris` effect);
- recovery: `RecoverCheckpoint` with the checkpoint tree the shell read from disk.

Streams are opaque handles: the shell passes them in, the core stores them and names them in
effects (`send_executor`, `close_executor`), never touching them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mezzo.agent.checkpoint import AgentState
from mezzo.agent.containerizer.records import Limitation, Termination
from mezzo.api import executor as exe
from mezzo.api.common import ExecutorID, FrameworkID, TaskStatus
from mezzo.api.internal import AgentEvent


@dataclass(frozen=True, slots=True)
class MasterDisconnected:
    """The stream to the master broke (updates wait until the next SUBSCRIBED)."""


@dataclass(frozen=True, slots=True)
class ExecutorSubscribed:
    """An executor's SUBSCRIBE call; `stream` is where its events go."""

    framework_id: FrameworkID
    executor_id: ExecutorID
    subscribe: exe.Subscribe
    stream: Any


@dataclass(frozen=True, slots=True)
class ExecutorUpdate:
    """An executor's UPDATE call. `limitation` is a limit breach the containerizer already
    recorded for the executor's container (the shell asks it: that is I/O), if any."""

    framework_id: FrameworkID
    executor_id: ExecutorID
    status: TaskStatus
    limitation: Limitation | None = None


@dataclass(frozen=True, slots=True)
class ExecutorMessage:
    """An executor's MESSAGE call: data for its scheduler."""

    framework_id: FrameworkID
    executor_id: ExecutorID
    data: bytes


@dataclass(frozen=True, slots=True)
class ExecutorDisconnected:
    """The executor's subscription stream `stream` ended."""

    framework_id: FrameworkID
    executor_id: ExecutorID
    stream: Any


@dataclass(frozen=True, slots=True)
class ContainerLaunched:
    """The container of a `launch_container` effect runs; `pid` is its root process."""

    container_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class ContainerLaunchFailed:
    """The container of a `launch_container` effect could not be started."""

    container_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ContainerLimited:
    """An isolator reports that a running container broke a limit (memory, disk, ports...);
    the container keeps running until the core has it destroyed (its ContainerExited follows,
    with the same limitation)."""

    container_id: str
    limitation: Limitation


@dataclass(frozen=True, slots=True)
class ContainerExited:
    """A container ended (exit, kill, destroy, or a limit breach: `termination.limitation`)."""

    container_id: str
    termination: Termination


@dataclass(frozen=True, slots=True)
class TasksFetched:
    """The `fetch_task_uris` effect of launch `key` (its first task's id) in container
    `container_id` is done; `error` says why it failed, if it did."""

    container_id: str
    key: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RecoverCheckpoint:
    """Rebuild frameworks, executors, tasks and update streams from the checkpoint tree the
    shell read (`mezzo.agent.checkpoint.recover`); sent once, before anything else."""

    state: AgentState


AgentInput = (
    AgentEvent
    | MasterDisconnected
    | ExecutorSubscribed
    | ExecutorUpdate
    | ExecutorMessage
    | ExecutorDisconnected
    | ContainerLaunched
    | ContainerLaunchFailed
    | ContainerLimited
    | ContainerExited
    | TasksFetched
    | RecoverCheckpoint
)
