"""The AgentOutbox: the only way effects leave the agent's decision core.

The core (`mezzo.agent.core`) never touches processes, files or sockets. It asks its outbox to:

- `launch_container(ContainerLaunch)` / `destroy_container(id)` / `update_container(id, r)`,
  and `adopt_containers([(id, pid)])` after recovery (re-attach to live executors); the shell
  answers with `ContainerLaunched` / `ContainerLaunchFailed` / `ContainerExited` events;
- `fetch_task_uris(TaskFetch)`: a task group's URIs into its tasks' sandboxes before the group
  is delivered to the default executor; answered with `TasksFetched`;
- `send_executor(stream, event)` / `close_executor(stream, reason)` on an executor's
  subscription stream (an opaque handle the shell passed in);
- `send_master(call)`: an AgentCall to the leading master (dropped while disconnected: status
  updates are retried by the core);
- `checkpoint(record)`: write one `CheckpointRecord` under `<work_dir>/meta` (or the runtime
  `containers/` tree) before returning — `mezzo.agent.checkpoint.Checkpointer` does the files;
- `recovery_complete()`: every recovered executor re-subscribed or timed out;
- `stop_agent(forget)`: the master asked this agent to shut down and every executor was told
  to end; the shell waits for the containers, forgets the agent id if `forget`, and exits.

`RecordingOutbox` keeps everything in one list of `(name, args...)` tuples, in order: tests
assert on it (`tests/test_agent_core.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mezzo.agent.operations import (
    OperationCheckpoint,
    RemoveOperationCheckpoint,
    ResourcesCheckpoint,
)
from mezzo.api import executor as exe
from mezzo.api.common import URI, AgentInfo, ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from mezzo.api.internal import AgentCall
from mezzo.resources import Resources


@dataclass(frozen=True, slots=True)
class ContainerLaunch:
    """Start an executor's container (the shell builds its environment and limits)."""

    container_id: str
    framework: FrameworkInfo
    executor: ExecutorInfo
    sandbox: str  # the directory the shell creates and runs the executor in
    command: bool  # the built-in command executor
    resources: Resources  # the executor's and its tasks' (the container's limits)
    first_task: TaskInfo  # a command task: decides the user to run as, and its rlimits
    # CommandInfo.uris to fetch into the sandbox before the executor starts (mezzo.agent.fetcher);
    # a failed fetch is answered with ContainerLaunchFailed.
    uris: tuple[URI, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskFetch:
    """Fetch the CommandInfo.uris of a task group's tasks into their own sandboxes (the
    default executor's nested containers, `<executor sandbox>/tasks/<task_id>`) before the
    group is delivered; the shell answers with TasksFetched. `key` names the launch (its
    first task's id); `framework` and `executor` decide the user the files are for."""

    container_id: str
    key: str
    framework: FrameworkInfo
    executor: ExecutorInfo
    fetches: tuple[tuple[str, tuple[URI, ...]], ...]  # (task sandbox, its uris), in order


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class AgentRecord:
    info: AgentInfo


@dataclass(frozen=True, slots=True)
class FrameworkRecord:
    info: FrameworkInfo


@dataclass(frozen=True, slots=True)
class ExecutorRecord:
    framework_id: str
    info: ExecutorInfo
    container_id: str
    pid: int
    command: bool


@dataclass(frozen=True, slots=True)
class TaskRecord:
    framework_id: str
    executor_id: str
    container_id: str
    task: TaskInfo


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    framework_id: str
    executor_id: str
    container_id: str
    status: TaskStatus


@dataclass(frozen=True, slots=True)
class AckRecord:
    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    uuid: bytes


@dataclass(frozen=True, slots=True)
class RemoveExecutorRecord:
    framework_id: str
    executor_id: str


@dataclass(frozen=True, slots=True)
class RemoveFrameworkRecord:
    framework_id: str


@dataclass(frozen=True, slots=True)
class ContainerPidRecord:
    """Runtime pid file, written for every container (checkpointing or not)."""

    container_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class RemoveContainerRecord:
    container_id: str


CheckpointRecord = (
    ResourcesCheckpoint
    | OperationCheckpoint
    | RemoveOperationCheckpoint
    | AgentRecord
    | FrameworkRecord
    | ExecutorRecord
    | TaskRecord
    | UpdateRecord
    | AckRecord
    | RemoveExecutorRecord
    | RemoveFrameworkRecord
    | ContainerPidRecord
    | RemoveContainerRecord
)


class AgentOutbox(Protocol):
    def launch_container(self, launch: ContainerLaunch) -> None:
        """Start a container; answer with ContainerLaunched or ContainerLaunchFailed."""

    def destroy_container(self, container_id: str) -> None:
        """Kill every process of a container; its ContainerExited follows."""

    def update_container(self, container_id: str, resources: Resources) -> None:
        """Apply new limits to a running container (more tasks joined its executor)."""

    def adopt_containers(self, containers: list[tuple[str, int]]) -> None:
        """Re-attach to live containers (container id, root pid) left by a previous agent."""

    def fetch_task_uris(self, fetch: TaskFetch) -> None:
        """Fetch a task group's URIs into its tasks' sandboxes; answer with TasksFetched."""

    def send_executor(self, stream: Any, event: exe.Event) -> None:
        """Queue one event on an executor's subscription stream."""

    def close_executor(self, stream: Any, reason: str) -> None:
        """End an executor's subscription stream (after what is queued)."""

    def send_master(self, call: AgentCall) -> None:
        """Send a call to the leading master."""

    def checkpoint(self, record: CheckpointRecord) -> None:
        """Write one checkpoint record before returning."""

    def recovery_complete(self) -> None:
        """Recovery is over: the agent may register with the master."""

    def schedule_gc(self, paths: list[str]) -> None:
        """A finished executor's directories may be removed after ``--gc_delay``."""

    def stop_agent(self, forget: bool) -> None:
        """Wait for the containers to end, forget the agent id if `forget`, and stop."""


@dataclass
class RecordingOutbox:
    """An AgentOutbox that records every effect in order (for tests)."""

    effects: list[tuple[Any, ...]] = field(default_factory=list)

    def launch_container(self, launch: ContainerLaunch) -> None:
        self.effects.append(("launch_container", launch))

    def destroy_container(self, container_id: str) -> None:
        self.effects.append(("destroy_container", container_id))

    def update_container(self, container_id: str, resources: Resources) -> None:
        self.effects.append(("update_container", container_id, resources))

    def adopt_containers(self, containers: list[tuple[str, int]]) -> None:
        self.effects.append(("adopt_containers", containers))

    def fetch_task_uris(self, fetch: TaskFetch) -> None:
        self.effects.append(("fetch_task_uris", fetch))

    def send_executor(self, stream: Any, event: exe.Event) -> None:
        self.effects.append(("send_executor", stream, event))

    def close_executor(self, stream: Any, reason: str) -> None:
        self.effects.append(("close_executor", stream, reason))

    def send_master(self, call: AgentCall) -> None:
        self.effects.append(("send_master", call))

    def checkpoint(self, record: CheckpointRecord) -> None:
        self.effects.append(("checkpoint", record))

    def recovery_complete(self) -> None:
        self.effects.append(("recovery_complete",))

    def schedule_gc(self, paths: list[str]) -> None:
        self.effects.append(("schedule_gc", paths))

    def stop_agent(self, forget: bool) -> None:
        self.effects.append(("stop_agent", forget))

    def take(self) -> list[tuple[Any, ...]]:
        """Everything recorded since the last take (and forget it)."""
        out, self.effects = self.effects, []
        return out
