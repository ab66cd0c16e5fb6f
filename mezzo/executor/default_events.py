"""The default executor's vocabulary beyond the command executor's (`command_events`).

`DefaultExecutorCore.handle` (`default_core.py`) takes the command executor's link events
(`Tick`, `Connected`, `ConnectFailed`, `Disconnected`, `Kill`, `Acknowledged`, `Shutdown`,
`AgentError`, `UpdateAccepted`, `UpdateRefused`) and these; it returns the command executor's
actions (`Subscribe`, `PostUpdate`, `Signal`, `Log`, `Debug`, `Exit`) and `SpawnTasks`.

Events
------
From the agent's stream (`decode_event`): `GroupSubscribed` (SUBSCRIBED with what the default
executor needs: its container id and the framework's capabilities), `LaunchGroup` (the group's
TaskInfos, `command_events.LaunchGroup`), `LaunchTask` (LAUNCH, `command_events.Launch`, which
the default executor refuses). Results: `TasksSpawned` (of `SpawnTasks`), `TaskExited` (a task's process was reaped).

Actions
-------
`SpawnTasks(specs)`: start every `TaskSpec` of one launch, each in its own process group with
stdout/stderr in its own sandbox directory; answered by one `TasksSpawned` listing, for every
spec in order, its pid or why it could not start.
"""

from __future__ import annotations

if __package__:  # imported as mezzo.executor.default_events (tests, tools)
    from . import command_events as ev
    from .command_events import LaunchGroup, _Record
else:  # run by the agent as a script: this directory is sys.path[0] (see default.py)
    import command_events as ev  # type: ignore[import-not-found,no-redef]
    from command_events import LaunchGroup, _Record  # type: ignore[no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]

__all__ = [
    "GroupSubscribed",
    "LaunchGroup",
    "LaunchTask",
    "SpawnTasks",
    "TaskExited",
    "TaskSpec",
    "TasksSpawned",
    "decode_event",
]


class GroupSubscribed(_Record):
    """SUBSCRIBED: the agent's id, the framework's info (capabilities: TASK_KILLING_STATE,
    PARTITION_AWARE) and the executor's ContainerID (the parent of its tasks' containers).
    Not `command_events.Subscribed`, which keeps only what a command task needs (the agent's
    id and whether TASK_KILLING is allowed)."""

    __match_args__ = ("agent_id", "framework_info", "container_id")
    agent_id: Json | None
    framework_info: Json
    container_id: Json | None


# LAUNCH: not for the default executor (Mesos's shuts down when it gets one). The command
# executor's event, decoded by `command_events.decode_event`.
LaunchTask = ev.Launch


class TaskExited(_Record):
    """The process of task `task_id` was reaped; `status` is its wait status."""

    __match_args__ = ("task_id", "status")
    task_id: str
    status: int


class TaskSpec(_Record):
    """One task to start: `program` (looked up on `env`'s PATH if it has no "/") with `argv`,
    the executor's environment with `env` on top, in directory `sandbox` (created, with its
    `stdout` and `stderr` files)."""

    __match_args__ = ("task_id", "program", "argv", "env", "sandbox")
    task_id: str
    program: str
    argv: list[str]
    env: dict[str, str]
    sandbox: str


class SpawnTasks(_Record):
    """Start these tasks (one launch); answer `TasksSpawned`."""

    __match_args__ = ("specs",)
    specs: list[TaskSpec]


class TasksSpawned(_Record):
    """What `SpawnTasks` did: `(task_id, pid, error)` per spec, in order; `pid` is None when
    `error` says why the task could not start."""

    __match_args__ = ("results",)
    results: list[tuple[str, int | None, str | None]]


def decode_event(event: Json) -> object | None:
    """The typed event for one JSON event of the agent's stream; None if it needs nothing."""
    kind = event.get("type")
    if kind == "SUBSCRIBED":
        subscribed = event.get("subscribed") or {}
        agent_id = (subscribed.get("agent_info") or {}).get("id")
        framework = subscribed.get("framework_info")
        container = subscribed.get("container_id")
        return GroupSubscribed(
            agent_id if isinstance(agent_id, dict) else None,
            framework if isinstance(framework, dict) else {},
            container if isinstance(container, dict) else None,
        )
    return ev.decode_event(event)  # LAUNCH (`LaunchTask`) and the link's events
