"""The command executor's decisions: `CommandExecutorCore.handle(event, now) -> actions`.

A state machine without I/O (no sockets, no processes, no clock reads, no randomness of its own:
`now`, uuids, wall-clock timestamps and backoff jitter come in). Typed events in, typed actions
out, and `next_deadline()` for its timers; `command_executor.py` is the loop that carries the
actions out and turns what happens (a stream event, an HTTP answer, a process exit, a deadline)
into the next event. Stdlib only, like the rest of the command executor (`command.py`).

The events it takes and the actions it returns are typed records in `command_events.py` (their
docstring lists them); the loop performs the actions in order and feeds each result back before
the next one, so the order of updates holds.

Behaviour (Mesos's command executor, spec §6)
---------------------------------------------
SUBSCRIBE; on LAUNCH: TASK_STARTING, spawn the command (``/bin/sh -c value`` when ``shell`` is
true (default), else ``value`` with argv = ``arguments``) in its own process group, then
TASK_RUNNING. On exit: TASK_FINISHED (status 0) or TASK_FAILED ("Command exited with status N" /
"Command terminated with signal SIGX"). KILL: SIGTERM to the task's group, TASK_KILLING if the
framework has TASK_KILLING_STATE, SIGKILL after the grace period (the KILL event's kill_policy,
else the task's, else 3 s; a second KILL may only shorten it), then TASK_KILLED.
``max_completion_time`` elapsed: the same kill, then TASK_FAILED with
REASON_MAX_COMPLETION_TIME_REACHED. SHUTDOWN: kill (grace capped by the shutdown grace period
less a second for the agent to collect the update), TASK_KILLED, exit. Every update is kept until
ACKNOWLEDGED; an UPDATE the agent refuses is resent every RESEND_SECONDS, in order, while the
stream is up. The executor exits once the terminal update is acknowledged (or ACK_WAIT_SECONDS
after it was sent and taken). Stream lost: without checkpointing, kill the task and exit; with
checkpointing, re-subscribe with backoff (≤ MESOS_SUBSCRIPTION_BACKOFF_MAX) for up to
MESOS_RECOVERY_TIMEOUT, listing the task if none of its updates was acknowledged and every
unacknowledged update (the agent replays them). Never subscribed: give up after
FIRST_SUBSCRIBE_GIVE_UP_SECONDS (or the recovery timeout when checkpointing), killing the task,
exit code 1.

Checks and health checks (`checks_core.TaskChecks`, from TASK_RUNNING until the kill or the
exit; docs/agent.md): their probes go out as `RunProbe` / `AbortProbe` and come back as
`ProbeDone`; a changed check result or a health result worth reporting is sent as a copy of the
task's last update (REASON_TASK_CHECK_STATUS_UPDATED with `check_status`,
REASON_TASK_HEALTH_CHECK_STATUS_UPDATED with `healthy`). Past `consecutive_failures` the task
is killed as by a KILL (its own grace) and ends TASK_KILLED with `healthy: false`. Updates made
from scratch carry the empty `check_status` of the task's check type.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; `signal` would import enum
import posix  # not `os`: its import (posixpath, stat, _collections_abc) costs ~1.5 ms

if __package__:  # imported as mezzo.executor.command_core (tests, tools)
    from . import checks_core as checks
    from . import command_events as ev
    from .link_core import (
        BACKOFF_INITIAL_SECONDS,
        FIRST_SUBSCRIBE_GIVE_UP_SECONDS,
        RESEND_SECONDS,
        Config,
        ExecutorLinkCore,
    )
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    import checks_core as checks  # type: ignore[import-not-found,no-redef]
    import command_events as ev  # type: ignore[import-not-found,no-redef]
    from link_core import (  # type: ignore[import-not-found,no-redef]
        BACKOFF_INITIAL_SECONDS,
        FIRST_SUBSCRIBE_GIVE_UP_SECONDS,
        RESEND_SECONDS,
        Config,
        ExecutorLinkCore,
    )

# `typing` costs start-up: its names are for the type checker only (mypy reads TYPE_CHECKING
# as true whatever it is bound to).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Json = dict[str, Any]

__all__ = [
    "BACKOFF_INITIAL_SECONDS",
    "FIRST_SUBSCRIBE_GIVE_UP_SECONDS",
    "RESEND_SECONDS",
    "CommandExecutorCore",
    "Config",
]

DEFAULT_GRACE_SECONDS = 3.0  # KillPolicy default (spec §5.6)
ACK_WAIT_SECONDS = 5.0  # how long a finished executor waits for its terminal ACKNOWLEDGED
# Leave the agent this much of its shutdown grace period to collect our terminal update.
SHUTDOWN_MARGIN_SECONDS = 1.0

_SIGNAL_NAMES = {
    getattr(_signal, n): n for n in dir(_signal) if n.startswith("SIG") and not n.startswith("SIG_")
}


# ----------------------------------------------------------------------------- helpers


def duration_seconds(info: object) -> float | None:
    """A DurationInfo (`{"nanoseconds": n}`, n maybe a string) in seconds, or None."""
    if not isinstance(info, dict) or "nanoseconds" not in info:
        return None
    try:
        return max(0.0, float(info["nanoseconds"]) / 1e9)
    except (TypeError, ValueError):
        return None


def as_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def describe_status(status: int) -> tuple[bool, str]:
    """(succeeded, message) for a wait status, in the command executor's words."""
    if posix.WIFEXITED(status):
        code = posix.WEXITSTATUS(status)
        return code == 0, f"Command exited with status {code}"
    if posix.WIFSIGNALED(status):
        sig = posix.WTERMSIG(status)
        return False, f"Command terminated with signal {_SIGNAL_NAMES.get(sig, str(sig))}"
    return False, f"Command ended with wait status {status}"


def command_line(command: Json) -> tuple[str, list[str], dict[str, str]]:
    """(program, argv, environment on top of the executor's) of a CommandInfo; ValueError."""
    env: dict[str, str] = {}
    for var in (command.get("environment") or {}).get("variables") or []:
        if isinstance(var, dict) and "name" in var and var.get("value") is not None:
            env[str(var["name"])] = str(var["value"])
    value = command.get("value")
    if not isinstance(value, str) or not value:
        raise ValueError("the task's command has no value")
    if as_bool(command.get("shell"), True):
        return "/bin/sh", ["/bin/sh", "-c", value], env
    arguments = command.get("arguments") or []
    if isinstance(arguments, str):
        arguments = [arguments]
    return value, [str(a) for a in arguments] or [value], env


# ----------------------------------------------------------------------------- the core


class CommandExecutorCore(ExecutorLinkCore):
    """State and decisions of one command executor (one task). The only mutator: `handle`.
    The subscription and the update stream are `ExecutorLinkCore`'s (`link_core.py`)."""

    def __init__(
        self,
        config: Config,
        now: float,
        *,
        new_uuid: Callable[[], bytes],
        wall_clock: Callable[[], float],
    ) -> None:
        super().__init__(config, now, new_uuid=new_uuid, wall_clock=wall_clock)
        # The task.
        self.task: Json | None = None
        self.task_id: str | None = None
        self.task_acked = False  # some update of the task was ACKNOWLEDGED: the agent knows it
        self.pid: int | None = None
        self.terminal_sent_at: float | None = None
        self.kill_requested = False
        self.kill_escalate_at: float | None = None
        self.killed_by_timeout = False
        self.max_completion_at: float | None = None
        self.exit_when_reaped = False
        # Its check and health check (`checks_core`), from TASK_RUNNING until the kill or exit.
        self.checks: checks.TaskChecks | None = None
        self.last_status: Json | None = None  # the task's last update (checks derive theirs)
        self.killed_by_health_check = False

    # ---------------------------------------------------------------- the interface

    def _handle_task(self, event: object, now: float) -> None:
        """Apply an event of the task's (`handle`, `ExecutorLinkCore`'s, applies the link's)."""
        match event:
            case ev.Subscribed(agent_id, killing_capable):
                if agent_id is not None:
                    self.agent_id = agent_id
                self.killing_capable = killing_capable
            case ev.Launch(task):
                self._on_launch(task, now)
            case ev.LaunchGroup(tasks):
                for group_task in tasks:
                    message = "The command executor cannot run task groups"
                    self._send_status(group_task.get("task_id") or {}, "TASK_FAILED", message=message)
            case ev.Kill(killed_task, kill_policy):
                value = killed_task.get("value") if isinstance(killed_task, dict) else None
                if value != self.task_id or self.task is None:
                    self._log(f"KILL for unknown task {killed_task}; ignored")
                else:
                    self._kill(self._task_grace(kill_policy), now)
            case ev.Acknowledged(acked_task, uuid):
                if self.unacked.pop(uuid, None) is not None and acked_task == self.task_id:
                    self.task_acked = True
            case ev.Spawned(pid):
                self._on_spawned(pid, now)
            case ev.SpawnFailed(error):
                self._fail_launch(f"Failed to launch command: {error}", now)
            case ev.ProcessExited(status):
                self._on_process_exited(status, now)
            case checks.ProbeDone(probe_id, result, error):
                if self.checks is not None:
                    self._on_check_reports(self.checks.probe_done(probe_id, result, error, now), now)
            case _:
                raise TypeError(f"not a command executor event: {event!r}")

    def next_deadline(self) -> float | None:
        """When the next timer is due (monotonic seconds), None if nothing is waiting."""
        if self.exit_code is not None:
            return None
        # The wait for the terminal update's ack only ends while connected (or when there is
        # nothing to reconnect for): a disconnected checkpointing executor waits to re-subscribe.
        waiting = self.terminal_sent_at
        if self.pid is not None or (self.config.checkpoint and not self.connected):
            waiting = None
        deadlines = [
            t
            for t in (
                self.kill_escalate_at,
                self.max_completion_at,
                None if waiting is None else waiting + ACK_WAIT_SECONDS,
                *self._link_deadlines(),
                *(self.checks.deadlines() if self.checks is not None else ()),
            )
            if t is not None
        ]
        return min(deadlines) if deadlines else None

    # ---------------------------------------------------------------- timers

    def _on_timers(self, now: float) -> None:
        if self.kill_escalate_at is not None and now >= self.kill_escalate_at:
            self.kill_escalate_at = None
            self._signal(_signal.SIGKILL)
        if self.max_completion_at is not None and now >= self.max_completion_at:
            self.max_completion_at = None
            self._log("task exceeded its max completion time; killing it")
            self.killed_by_timeout = True
            self._kill(self._task_grace(None), now)
        if self.checks is not None:
            actions, reports = self.checks.tick(now)
            for action in actions:
                self._emit(action)
            self._on_check_reports(reports, now)
        if self.exit_code is not None:
            return
        self._resend_due(now)
        if self.terminal_sent_at is not None and self.pid is None:
            if not self.unacked:
                self._exit(0)
                return
            if (
                now >= self.terminal_sent_at + ACK_WAIT_SECONDS
                and not self.unsent  # the agent took every update; only its ack is missing
                and (self.connected or not self.config.checkpoint)
            ):
                self._log("terminal update not acknowledged in time; exiting")
                self._exit(0)
                return
        if self._subscribe_due(now):
            self._log("could not (re)subscribe to the agent in time; killing the task and exiting")
            self._signal(_signal.SIGKILL)
            self._exit(1)

    # ---------------------------------------------------------------- subscription

    def _unacknowledged_tasks(self) -> list[Json]:
        return [self.task] if self.task is not None and not self.task_acked else []

    def _on_disconnected(self, reason: str, now: float) -> None:
        if not self._link_lost(reason, now):
            return
        if not self.config.checkpoint:
            self._log("lost the agent and not checkpointing: killing the task and exiting")
            if self.pid is None:
                self._exit(0)
                return
            self.exit_when_reaped = True
            self._kill(min(self._task_grace(None), self.config.shutdown_grace), now)
            self.next_connect_at = float("inf")  # never reconnect
            return
        self._log("lost the agent; re-subscribing (checkpointing)")
        self.next_connect_at = now

    # ---------------------------------------------------------------- the task

    def _on_launch(self, task: Json, now: float) -> None:
        task_id = task.get("task_id") or {}
        if self.task is not None:
            if task_id.get("value") != self.task_id:
                message = "The command executor runs one task; this one was rejected"
                self._send_status(task_id, "TASK_FAILED", message=message)
            return  # a replayed LAUNCH of our own task: already running
        self.task = task
        self.task_id = task_id.get("value")
        self._update("TASK_STARTING")
        try:
            program, argv, env = command_line(task.get("command") or {})
        except ValueError as exc:
            self._fail_launch(f"Failed to launch command: {exc}", now)
            return
        self._emit(ev.Spawn(program, argv, env))

    def _fail_launch(self, message: str, now: float) -> None:
        self._update("TASK_FAILED", message)
        self.terminal_sent_at = now

    def _on_spawned(self, pid: int, now: float) -> None:
        self.pid = pid
        self._update("TASK_RUNNING")
        limit = duration_seconds((self.task or {}).get("max_completion_time"))
        if limit is not None:
            self.max_completion_at = now + limit
        self._start_checks(now)

    def _on_process_exited(self, status: int, now: float) -> None:
        if self.pid is None:
            return
        # Stragglers the task left in its group go with it (the container is ending anyway).
        self._signal(_signal.SIGKILL)
        self.pid = None
        self.kill_escalate_at = None
        self.max_completion_at = None
        self._stop_checks()
        ok, message = describe_status(status)
        if self.killed_by_timeout:
            self._update(
                "TASK_FAILED",
                "Task exceeded its max completion time",
                "REASON_MAX_COMPLETION_TIME_REACHED",
            )
        elif self.kill_requested:
            # Killed for failing its health check: the update says so (as Mesos's executor).
            healthy = False if self.killed_by_health_check else None
            self._update("TASK_KILLED", message, healthy=healthy)
        else:
            self._update("TASK_FINISHED" if ok else "TASK_FAILED", message)
        self.terminal_sent_at = now
        if self.exit_when_reaped:
            self._exit(0)

    def _task_id_info(self) -> Json:
        return (self.task or {}).get("task_id") or {}

    def _task_grace(self, kill_policy: object) -> float:
        for policy in (kill_policy, (self.task or {}).get("kill_policy")):
            if isinstance(policy, dict):
                grace = duration_seconds(policy.get("grace_period"))
                if grace is not None:
                    return grace
        return DEFAULT_GRACE_SECONDS

    def _kill(self, grace: float, now: float) -> None:
        if self.pid is None:
            return
        escalate_at = now + grace
        if self.kill_requested:
            # A second kill may only shorten the grace period.
            if self.kill_escalate_at is not None and escalate_at < self.kill_escalate_at:
                self.kill_escalate_at = escalate_at
            return
        self.kill_requested = True
        self.max_completion_at = None
        self._stop_checks()
        if self.killing_capable and self.task is not None:
            self._update("TASK_KILLING")
        self._signal(_signal.SIGTERM)
        self.kill_escalate_at = escalate_at

    def _signal(self, sig: int) -> None:
        if self.pid is not None:
            self._emit(ev.Signal(self.pid, sig))

    def _on_shutdown(self, now: float) -> None:
        if self.pid is not None:
            grace = max(0.0, self.config.shutdown_grace - SHUTDOWN_MARGIN_SECONDS)
            self._kill(min(self._task_grace(None), grace), now)
        elif self.terminal_sent_at is None or not self.unacked:
            self._exit(0)

    # ---------------------------------------------------------------- checks

    def _update(
        self,
        state: str,
        message: str | None = None,
        reason: str | None = None,
        *,
        healthy: bool | None = None,
    ) -> None:
        """An update of the task made from scratch: a task with a check carries the empty
        result of its type (Mesos's `createTaskStatus`), not the last one."""
        extra: Json = {}
        kind = ((self.task or {}).get("check") or {}).get("type")
        if kind in checks.KINDS:
            extra["check_status"] = checks.empty_check_status(kind)
        if healthy is not None:
            extra["healthy"] = healthy
        self.last_status = self._send_status(self._task_id_info(), state, message, reason, extra)

    def _start_checks(self, now: float) -> None:
        task = self.task or {}
        if not isinstance(task.get("check"), dict) and not isinstance(task.get("health_check"), dict):
            return
        try:
            env = command_line(task.get("command") or {})[2]
        except ValueError:
            env = {}
        self.checks = checks.TaskChecks(task, now, env=env)
        for problem in self.checks.problems:
            self._log(f"task {self.task_id}: {problem}")

    def _stop_checks(self) -> None:
        if self.checks is not None:
            for action in self.checks.stop():
                self._emit(action)

    def _on_check_reports(self, reports: list[object], now: float) -> None:
        """Check and health check results worth an update (Mesos's `taskCheckUpdated`,
        `taskHealthUpdated`): a copy of the last update with the news."""
        for report in reports:
            if self.last_status is None or self.pid is None or self.kill_requested:
                return
            match report:
                case checks.CheckReport(check_status):
                    self.last_status = self._send_check_update(self.last_status, check_status)
                case checks.HealthReport(healthy, failures, kill, detail):
                    # Sent while disconnected too (queued, listed on the next SUBSCRIBE):
                    # unlike the default executor's, which drops it then (`default_core`).
                    self.last_status = self._send_health_update(
                        self.last_status, self.task_id, healthy, failures, detail
                    )
                    if kill:
                        self._log(f"task {self.task_id} is unhealthy; killing it")
                        self.killed_by_health_check = True
                        self._kill(self._task_grace(None), now)
