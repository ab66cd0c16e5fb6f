"""The command executor's vocabulary: the typed events `CommandExecutorCore.handle` takes and
the typed actions it returns (`command_core.py`), and `decode_event` for the agent's stream.

Events
------
Timers are one event, `Tick`: the loop sends it when `next_deadline()` has passed (and first of
all, to subscribe). From the agent's stream (`decode_event` turns a JSON event into one):
`Subscribed`, `Launch`, `LaunchGroup`, `Kill`, `Acknowledged`, `Shutdown`, `AgentError`.
Results of actions: `Connected` / `ConnectFailed` (of `Subscribe`), `Disconnected` (the stream
ended), `UpdateAccepted` / `UpdateRefused` (of `PostUpdate`), `Spawned` / `SpawnFailed` (of
`Spawn`), `ProcessExited` (the task's process ended; its wait status); and `ProbeDone` (a
check's probe ended; `checks_core`).

Actions
-------
`Subscribe(call)`, `PostUpdate(uuid, call)`, `Spawn(program, argv, env)`, `Signal(pid, signal)`
(to the task's process group), `Log(message)`, `Exit(code)`; and `RunProbe` / `AbortProbe`
(`checks_core`: a check's probe, run by `checks_probe.ProbeRunner`). The loop performs them in order and
feeds each result back before the next one, so the order of updates holds.
"""

from __future__ import annotations

if __package__:  # imported as mezzo.executor.command_events (tests, tools)
    from .command_wire import unb64
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    from command_wire import unb64  # type: ignore[import-not-found,no-redef]

# `typing` costs start-up: its names are for the type checker only (mypy reads TYPE_CHECKING
# as true whatever it is bound to).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]


class _Record:
    """A small value: fields named by `__match_args__`, positional
    construction, equality and repr by value.

    (Not a dataclass: `dataclasses` imports `re` and `inspect`, ~10 ms of start-up.)"""

    __slots__: tuple[str, ...] = ()
    __match_args__: tuple[str, ...] = ()

    def __init__(self, *args: object) -> None:
        fields = self.__match_args__
        if len(args) != len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} arguments")
        for name, value in zip(fields, args, strict=True):
            setattr(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and type(other) is type(self) and (
            other._values() == self._values()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._values()!r}"


# ----------------------------------------------------------------------------- events


class Tick(_Record):
    """A deadline of `next_deadline()` has passed (also the first event: subscribe)."""


class Connected(_Record):
    """SUBSCRIBE was answered 200: the event stream is up."""


class ConnectFailed(_Record):
    """SUBSCRIBE failed; `jitter` in [0.5, 1] spreads the retry (drawn by the loop)."""

    __match_args__ = ("reason", "jitter")
    reason: str
    jitter: float


class Disconnected(_Record):
    """The event stream ended or broke."""

    __match_args__ = ("reason",)
    reason: str


class Subscribed(_Record):
    __match_args__ = ("agent_id", "killing_capable")
    agent_id: Json | None
    killing_capable: bool


class Launch(_Record):
    __match_args__ = ("task",)
    task: Json


class LaunchGroup(_Record):
    """LAUNCH_GROUP: the group's TaskInfos."""

    __match_args__ = ("tasks",)
    tasks: list[Json]


class Kill(_Record):
    __match_args__ = ("task_id", "kill_policy")
    task_id: object
    kill_policy: object


class Acknowledged(_Record):
    __match_args__ = ("task_id", "uuid")
    task_id: object  # the TaskID's value
    uuid: bytes


class Shutdown(_Record):
    pass


class AgentError(_Record):
    __match_args__ = ("message",)
    message: object


class UpdateAccepted(_Record):
    """The agent answered 202 to the UPDATE of `uuid`."""

    __match_args__ = ("uuid",)
    uuid: bytes


class UpdateRefused(_Record):
    """The UPDATE of `uuid` failed (another status code, or the connection)."""

    __match_args__ = ("uuid", "detail")
    uuid: bytes
    detail: str


class Spawned(_Record):
    __match_args__ = ("pid",)
    pid: int


class SpawnFailed(_Record):
    __match_args__ = ("error",)
    error: str


class ProcessExited(_Record):
    """The task's process was reaped; `status` is its wait status."""

    __match_args__ = ("status",)
    status: int


# ----------------------------------------------------------------------------- actions


class Subscribe(_Record):
    """Open the event stream with this SUBSCRIBE call; answer Connected or ConnectFailed."""

    __match_args__ = ("call",)
    call: Json


class PostUpdate(_Record):
    """POST this UPDATE call; answer UpdateAccepted or UpdateRefused."""

    __match_args__ = ("uuid", "call")
    uuid: bytes
    call: Json


class Spawn(_Record):
    """Start `program` (looked up on the PATH of the environment if it has no "/") with `argv`,
    the executor's environment with `env` on top, in its own process group; answer Spawned or
    SpawnFailed."""

    __match_args__ = ("program", "argv", "env")
    program: str
    argv: list[str]
    env: dict[str, str]


class Signal(_Record):
    """Send `signal` to the process group `pid` leads (gone already: nothing to do)."""

    __match_args__ = ("pid", "signal")
    pid: int
    signal: int


class Log(_Record):
    __match_args__ = ("message",)
    message: str


class Exit(_Record):
    """Close the connections and exit with `code` (0 normal, 1 gave up)."""

    __match_args__ = ("code",)
    code: int



class Debug(Log):
    """A log line shown only with MEZZO_EXECUTOR_VERBOSE=1."""


# ----------------------------------------------------------------------------- decoding


def decode_event(event: Json) -> object | None:
    """The typed event for one JSON event of the agent's stream; None if it needs nothing."""
    kind = event.get("type")
    if kind == "SUBSCRIBED":
        subscribed = event.get("subscribed") or {}
        agent_id = (subscribed.get("agent_info") or {}).get("id")
        capabilities = (subscribed.get("framework_info") or {}).get("capabilities") or []
        if isinstance(capabilities, dict):
            capabilities = [capabilities]
        killing = any(
            isinstance(c, dict) and c.get("type") == "TASK_KILLING_STATE" for c in capabilities
        )
        return Subscribed(agent_id if isinstance(agent_id, dict) else None, killing)
    if kind == "LAUNCH":
        task = (event.get("launch") or {}).get("task")
        return Launch(task) if isinstance(task, dict) else None
    if kind == "LAUNCH_GROUP":
        group = (event.get("launch_group") or {}).get("task_group") or {}
        return LaunchGroup([task for task in group.get("tasks") or [] if isinstance(task, dict)])
    if kind == "KILL":
        kill = event.get("kill") or {}
        return Kill(kill.get("task_id"), kill.get("kill_policy"))
    if kind == "ACKNOWLEDGED":
        ack = event.get("acknowledged") or {}
        return Acknowledged((ack.get("task_id") or {}).get("value"), unb64(ack.get("uuid") or ""))
    if kind == "SHUTDOWN":
        return Shutdown()
    if kind == "ERROR":
        return AgentError((event.get("error") or {}).get("message"))
    return None  # MESSAGE and HEARTBEAT: nothing to do for a command task
