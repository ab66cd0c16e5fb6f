"""The default executor's decisions: `DefaultExecutorCore.handle(event, now) -> actions`.

A state machine without I/O, like the command executor's core (`command_core.py`): typed events
in, typed actions out (`command_events`, `default_events`), `next_deadline()` for its timers;
`default_executor.py` is the loop that carries the actions out. The subscription and the update
stream are `ExecutorLinkCore`'s (`link_core.py`). Stdlib only.

Behaviour (Mesos's default executor, `src/launcher/default_executor.cpp`)
-------------------------------------------------------------------------
LAUNCH_GROUP: every task gets TASK_STARTING, then all of the group's tasks are started at once,
each as a nested container of the executor: its command in its own process group, in its own
sandbox ``<executor sandbox>/tasks/<task_id>`` (MESOS_SANDBOX for the task; stdout and stderr
there), with a ContainerID whose parent is the executor's. All or none: if any task cannot
start, it ends TASK_FAILED ("Failed to launch container: ...") and the tasks of its group that
did start are killed at once (SIGKILL) and end TASK_KILLED. Otherwise every task gets
TASK_RUNNING. Every update carries ``container_status.container_id`` (the task's container).
Further LAUNCH_GROUPs start further groups in the same executor. LAUNCH is refused as Mesos's
executor does: the executor shuts down.

A task's process exits: TASK_FINISHED (status 0) or TASK_FAILED ("Command exited with status N"
/ "Command terminated with signal SIGX"); TASK_KILLED if it was being killed; TASK_FAILED with
REASON_MAX_COMPLETION_TIME_REACHED after its ``max_completion_time`` (killed with no grace).
A task that ends TASK_FAILED or TASK_KILLED (not while the executor shuts down) kills the rest
of its group, Mesos's default restart policy for a task group; each of them is killed with its
own KillPolicy grace period (Mesos's default executor uses 3 s for these; mezzo honours the
task's policy).

KILL: SIGTERM to the task's process group, TASK_KILLING if the framework has
TASK_KILLING_STATE, SIGKILL after the grace period (the KILL's kill_policy, else the task's,
else 3 s; a second KILL may only shorten it); the task ends TASK_KILLED and, as above, takes its
group with it. SHUTDOWN: every task is killed (grace capped by the shutdown grace period less a
second). The executor exits once it has no task left and every update is acknowledged (or
ACK_WAIT_SECONDS after the last one was sent), as Mesos's default executor ends with its last
task. Stream lost: without checkpointing, as a SHUTDOWN; with checkpointing, re-subscribe
(listing launched tasks none of whose updates was acknowledged, and every unacknowledged update)
until the recovery timeout, then kill every task and exit 1.

Checks and health checks (`checks_core`, one `TaskChecks` per task, Mesos's default executor
with its checker library): they start when the task is RUNNING and stop when it is being killed
or has ended; their probes run in the task's sandbox and environment. A check result that
changed, or a health result worth reporting, is a copy of the task's last update with
`check_status` (REASON_TASK_CHECK_STATUS_UPDATED) or `healthy`
(REASON_TASK_HEALTH_CHECK_STATUS_UPDATED); updates made from scratch carry the empty result of
the task's check type. A task that fails its health check `consecutive_failures` times is
killed with its KillPolicy grace and ends TASK_KILLED with `healthy: false` (and, being
killed, takes its group down). A health result that arrives while the agent is away (a
checkpointing executor re-subscribing) is dropped, kill included, as in Mesos.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; `signal` would import enum

if __package__:  # imported as mezzo.executor.default_core (tests, tools)
    from . import checks_core as checks
    from . import command_events as ev
    from . import default_events as dev
    from .command_core import (
        ACK_WAIT_SECONDS,
        DEFAULT_GRACE_SECONDS,
        SHUTDOWN_MARGIN_SECONDS,
        command_line,
        describe_status,
        duration_seconds,
    )
    from .link_core import Config, ExecutorLinkCore
else:  # run by the agent as a script: this directory is sys.path[0] (see default.py)
    import checks_core as checks  # type: ignore[import-not-found,no-redef]
    import command_events as ev  # type: ignore[import-not-found,no-redef]
    import default_events as dev  # type: ignore[import-not-found,no-redef]
    from command_core import (  # type: ignore[import-not-found,no-redef]
        ACK_WAIT_SECONDS,
        DEFAULT_GRACE_SECONDS,
        SHUTDOWN_MARGIN_SECONDS,
        command_line,
        describe_status,
        duration_seconds,
    )
    from link_core import Config, ExecutorLinkCore  # type: ignore[import-not-found,no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Json = dict[str, Any]

__all__ = ["Config", "DefaultExecutorCore", "TaskRun"]

TASKS_DIRECTORY = "tasks"  # <executor sandbox>/tasks/<task_id>: a task's sandbox


class TaskRun:
    """One task of a group in its nested container (Mesos's `DefaultExecutor::Container`),
    from LAUNCH_GROUP until its terminal update. `group` lists the task ids of its group."""

    __slots__ = (
        "acknowledged",
        "checks",
        "container_id",
        "env",
        "escalate_at",
        "group",
        "killed_by_health_check",
        "killed_by_timeout",
        "killing",
        "killing_group",
        "last_status",
        "launch_error",
        "max_completion_at",
        "pid",
        "sandbox",
        "task",
        "task_id",
    )

    def __init__(self, task: Json, container_id: Json, group: list[str], sandbox: str) -> None:
        self.task = task
        self.task_id: str = (task.get("task_id") or {}).get("value") or ""
        self.container_id = container_id
        self.group = group
        self.sandbox = sandbox
        self.pid: int | None = None
        self.launch_error: str | None = None
        self.acknowledged = False  # some update of the task was ACKNOWLEDGED
        self.killing = False  # SIGTERM sent (by a KILL, the group's end or a shutdown)
        self.killing_group = False  # its group is being killed: its end kills nothing more
        self.killed_by_timeout = False
        self.escalate_at: float | None = None  # SIGKILL due
        self.max_completion_at: float | None = None
        self.env: dict[str, str] = {}  # on top of the executor's (its checks' commands too)
        self.checks: checks.TaskChecks | None = None  # from TASK_RUNNING until its kill/end
        self.last_status: Json | None = None  # its last update (check updates derive theirs)
        self.killed_by_health_check = False

    @property
    def task_id_info(self) -> Json:
        return {"value": self.task_id}

    def deadlines(self) -> list[float | None]:
        """The task's timers: the kill's escalation, the completion limit, its checks."""
        probes = self.checks.deadlines() if self.checks is not None else []
        return [self.escalate_at, self.max_completion_at, *probes]

    def grace(self, kill_policy: object = None) -> float:
        """The kill grace period: `kill_policy`'s, else the task's KillPolicy, else 3 s."""
        for policy in (kill_policy, self.task.get("kill_policy")):
            if isinstance(policy, dict):
                grace = duration_seconds(policy.get("grace_period"))
                if grace is not None:
                    return grace
        return DEFAULT_GRACE_SECONDS


class DefaultExecutorCore(ExecutorLinkCore):
    """State and decisions of one default executor (task groups). The only mutator: `handle`."""

    def __init__(
        self,
        config: Config,
        now: float,
        *,
        new_uuid: Callable[[], bytes],
        wall_clock: Callable[[], float],
    ) -> None:
        super().__init__(config, now, new_uuid=new_uuid, wall_clock=wall_clock)
        self.container_id: Json | None = None  # the executor's (the tasks' parent)
        self.partition_aware = False
        self.runs: dict[str, TaskRun] = {}  # active tasks (launched, not terminal), in order
        self.spawning: list[TaskRun] | None = None  # the group whose SpawnTasks is out
        self.shutting_down = False
        self.done_at: float | None = None  # no task left: exit once the updates are acked

    # ---------------------------------------------------------------- the interface

    def _handle_task(self, event: object, now: float) -> None:
        """Apply an event of the task's (`handle`, `ExecutorLinkCore`'s, applies the link's)."""
        match event:
            case dev.GroupSubscribed(agent_id, framework_info, container_id):
                self._on_subscribed(agent_id, framework_info, container_id)
            case ev.LaunchGroup(tasks):
                self._on_launch_group(tasks, now)
            case dev.LaunchTask(_task):
                self._log("LAUNCH is not supported by the default executor; shutting down")
                self._on_shutdown(now)
            case ev.Kill(task_id, kill_policy):
                self._on_kill(task_id, kill_policy, now)
            case ev.Acknowledged(task_id, uuid):
                if self.unacked.pop(uuid, None) is not None:
                    run = self.runs.get(task_id) if isinstance(task_id, str) else None
                    if run is not None:
                        run.acknowledged = True
            case dev.TasksSpawned(results):
                self._on_spawned(results, now)
            case dev.TaskExited(task_id, status):
                self._on_task_exited(task_id, status, now)
            case checks.ProbeDone(probe_id, result, error):
                self._on_probe_done(probe_id, result, error, now)
            case _:
                raise TypeError(f"not a default executor event: {event!r}")

    def next_deadline(self) -> float | None:
        """When the next timer is due (monotonic seconds), None if nothing is waiting."""
        if self.exit_code is not None:
            return None
        deadlines: list[float | None] = list(self._link_deadlines())
        for run in self.runs.values():
            deadlines.extend(run.deadlines())
        if self.done_at is not None and (self.connected or not self.config.checkpoint):
            deadlines.append(self.done_at + ACK_WAIT_SECONDS)
        present = [t for t in deadlines if t is not None]
        return min(present) if present else None

    def pids(self) -> dict[int, str]:
        """The live task processes: pid -> task id (the loop waits for them)."""
        return {run.pid: run.task_id for run in self.runs.values() if run.pid is not None}

    # ---------------------------------------------------------------- timers

    def _on_timers(self, now: float) -> None:
        for run in list(self.runs.values()):
            self._task_timers(run, now)
        self._resend_due(now)
        if self.done_at is not None:
            if not self.unacked or (not self.connected and not self.config.checkpoint):
                self._exit(0)
                return
            if now >= self.done_at + ACK_WAIT_SECONDS and not self.unsent and self.connected:
                self._log("updates not acknowledged in time; exiting")
                self._exit(0)
                return
        if self._subscribe_due(now):
            self._log("could not (re)subscribe to the agent in time; killing the tasks and exiting")
            for run in self.runs.values():
                self._signal(run, _signal.SIGKILL)
            self._exit(1)

    def _task_timers(self, run: TaskRun, now: float) -> None:
        if run.escalate_at is not None and now >= run.escalate_at:
            run.escalate_at = None
            self._log(f"task {run.task_id} did not end after SIGTERM; sending SIGKILL")
            self._signal(run, _signal.SIGKILL)
        if run.max_completion_at is not None and now >= run.max_completion_at:
            run.max_completion_at = None
            self._log(f"task {run.task_id} exceeded its max completion time; killing it")
            run.killed_by_timeout = True
            self._kill(run, 0.0, now)
        if run.checks is not None:
            actions, reports = run.checks.tick(now)
            for action in actions:
                self._emit(action)
            self._on_check_reports(run, reports, now)

    # ---------------------------------------------------------------- subscription

    def _unacknowledged_tasks(self) -> list[Json]:
        return [r.task for r in self.runs.values() if r.pid is not None and not r.acknowledged]

    def _on_subscribed(
        self, agent_id: Json | None, framework_info: Json, container_id: Json | None
    ) -> None:
        if agent_id is not None:
            self.agent_id = agent_id
        if container_id is not None:
            self.container_id = container_id
        capabilities = framework_info.get("capabilities") or []
        if isinstance(capabilities, dict):
            capabilities = [capabilities]
        kinds = {c.get("type") for c in capabilities if isinstance(c, dict)}
        self.killing_capable = "TASK_KILLING_STATE" in kinds
        self.partition_aware = "PARTITION_AWARE" in kinds

    def _on_disconnected(self, reason: str, now: float) -> None:
        if not self._link_lost(reason, now):
            return
        if not self.config.checkpoint:
            # Mesos's executor library injects SHUTDOWN for a framework without checkpointing.
            self._log("lost the agent and not checkpointing: killing the tasks and exiting")
            self.next_connect_at = float("inf")  # never reconnect
            self._on_shutdown(now)
            return
        self._log("lost the agent; re-subscribing (checkpointing)")
        self.next_connect_at = now

    # ---------------------------------------------------------------- launching

    def _on_launch_group(self, tasks: list[Json], now: float) -> None:
        if self.shutting_down:
            self._log("ignoring LAUNCH_GROUP: the executor is shutting down")
            return
        group: list[str] = []  # the ids of this launch's tasks, shared by its runs
        runs: list[TaskRun] = []
        for task in tasks:
            task_id = (task.get("task_id") or {}).get("value") or ""
            if not task_id or task_id in self.runs or task_id in group:
                self._log(f"ignoring task {task_id!r} of LAUNCH_GROUP: no id, or already running")
                continue
            sandbox = f"{self.config.sandbox}/{TASKS_DIRECTORY}/{task_id}"
            run = TaskRun(task, self._nested_container_id(), group, sandbox)
            self.runs[task_id] = run
            group.append(task_id)
            runs.append(run)
        if not runs:
            return
        self.done_at = None
        for run in runs:
            self._status(run, "TASK_STARTING")
        specs: list[dev.TaskSpec] = []
        for run in runs:
            try:
                program, argv, env = command_line(run.task.get("command") or {})
            except ValueError as exc:
                run.launch_error = str(exc)
                continue
            env.update(self._task_environment(run))
            run.env = env
            specs.append(dev.TaskSpec(run.task_id, program, argv, env, run.sandbox))
        if any(run.launch_error is not None for run in runs):
            self._group_launch_failed(runs, now)  # all or none: start nothing
            return
        self.spawning = runs
        self._emit(dev.SpawnTasks(specs))

    def _nested_container_id(self) -> Json:
        h = self._new_uuid().hex()
        value = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        container: Json = {"value": value}
        if self.container_id is not None:
            container["parent"] = self.container_id
        return container

    def _task_environment(self, run: TaskRun) -> dict[str, str]:
        """On top of the executor's environment (then the task's CommandInfo.environment)."""
        env = {"MESOS_SANDBOX": run.sandbox}
        if self.config.agent_host:
            env["MESOS_CONTAINER_IP"] = self.config.agent_host
        resources = run.task.get("resources") or []
        role = ((resources[0] or {}).get("allocation_info") or {}).get("role") if resources else None
        if isinstance(role, str):
            env["MESOS_ALLOCATION_ROLE"] = role
        command_env = (run.task.get("command") or {}).get("environment") or {}
        task_env = {
            str(v["name"]): str(v["value"])
            for v in command_env.get("variables") or []
            if isinstance(v, dict) and "name" in v and v.get("value") is not None
        }
        env.update(task_env)  # the task's own variables win
        return env

    def _on_spawned(self, results: list[tuple[str, int | None, str | None]], now: float) -> None:
        runs, self.spawning = self.spawning or [], None
        for task_id, pid, error in results:
            run = self.runs.get(task_id)
            if run is None:
                continue
            if pid is not None:
                run.pid = pid
            else:
                run.launch_error = error or "unknown error"
        if any(run.launch_error is not None for run in runs):
            self._group_launch_failed(runs, now)
            return
        for run in runs:
            self._status(run, "TASK_RUNNING")
            self._task_running(run, now)

    def _group_launch_failed(self, runs: list[TaskRun], now: float) -> None:
        """Some task of a launch could not start: it fails; the others never run as a group."""
        failed = [run.task_id for run in runs if run.launch_error is not None]
        for run in runs:
            run.killing_group = True
            if run.launch_error is not None:
                message = f"Failed to launch container: {run.launch_error}"
                self._end(run, "TASK_FAILED", message, "REASON_CONTAINER_LAUNCH_FAILED", now)
            elif run.pid is None:
                message = f"Task group could not be launched: task {failed[0]} failed to start"
                self._end(run, "TASK_KILLED", message, None, now)
            else:
                run.killing = True  # ends TASK_KILLED when reaped
                self._signal(run, _signal.SIGKILL)

    def _task_running(self, run: TaskRun, now: float) -> None:
        """The task's process runs and TASK_RUNNING is sent: its timers (and checks) start."""
        limit = duration_seconds(run.task.get("max_completion_time"))
        if limit is not None and limit > 0:
            run.max_completion_at = now + limit
        task = run.task
        if isinstance(task.get("check"), dict) or isinstance(task.get("health_check"), dict):
            run.checks = checks.TaskChecks(task, now, env=run.env, cwd=run.sandbox)
            for problem in run.checks.problems:
                self._log(f"task {run.task_id}: {problem}")

    def _task_ending(self, run: TaskRun) -> None:
        """The task is being killed or has ended: its checks stop."""
        run.max_completion_at = None
        if run.checks is not None:
            for action in run.checks.stop():
                self._emit(action)

    # ---------------------------------------------------------------- killing

    def _on_kill(self, task_id: object, kill_policy: object, now: float) -> None:
        value = task_id.get("value") if isinstance(task_id, dict) else None
        run = self.runs.get(value) if isinstance(value, str) else None
        if self.shutting_down:
            self._log(f"ignoring KILL of {value}: the executor is shutting down")
        elif run is None or run.pid is None:
            self._log(f"KILL for unknown or finished task {task_id}; ignored")
        else:
            self._kill(run, run.grace(kill_policy), now)

    def _kill(self, run: TaskRun, grace: float, now: float) -> None:
        if run.pid is None:
            return
        escalate_at = now + grace
        if run.killing:
            # A second kill may only shorten the grace period.
            if run.escalate_at is not None and escalate_at < run.escalate_at:
                run.escalate_at = escalate_at
            return
        run.killing = True
        self._task_ending(run)
        if self.killing_capable and not run.killed_by_timeout:
            self._status(run, "TASK_KILLING")
        self._signal(run, _signal.SIGTERM)
        run.escalate_at = escalate_at

    def _kill_group_of(self, run: TaskRun, now: float) -> None:
        """Mesos's default restart policy: a failed or killed task takes its group down."""
        self._log(f"task {run.task_id} ended; killing the rest of its group {run.group}")
        for task_id in run.group:
            other = self.runs.get(task_id)
            if other is None or other is run:
                continue
            other.killing_group = True
            if not other.killing:
                self._kill(other, other.grace(), now)

    def _on_shutdown(self, now: float) -> None:
        self.shutting_down = True
        if not self.runs:
            self._finish(now)
            return
        cap = max(0.0, self.config.shutdown_grace - SHUTDOWN_MARGIN_SECONDS)
        for run in list(self.runs.values()):
            if run.pid is None:
                self._end(run, "TASK_KILLED", "Executor shut down", None, now)
            else:
                self._kill(run, min(run.grace(), cap), now)

    def _signal(self, run: TaskRun, sig: int) -> None:
        if run.pid is not None:
            self._emit(ev.Signal(run.pid, sig))

    # ---------------------------------------------------------------- endings

    def _on_task_exited(self, task_id: str, status: int, now: float) -> None:
        run = self.runs.get(task_id)
        if run is None or run.pid is None:
            return
        # Stragglers the task left in its process group go with it.
        self._signal(run, _signal.SIGKILL)
        run.pid = None
        ok, message = describe_status(status)
        if run.killed_by_timeout:
            state, reason = "TASK_FAILED", "REASON_MAX_COMPLETION_TIME_REACHED"
            message = "Task exceeded its max completion time"
        elif run.killing:
            state, reason = "TASK_KILLED", None
        else:
            state, reason = ("TASK_FINISHED" if ok else "TASK_FAILED"), None
        self._end(run, state, message, reason, now)

    # ---------------------------------------------------------------- checks

    def _on_probe_done(
        self, probe_id: object, result: int | bool | None, error: str | None, now: float
    ) -> None:
        task_id = probe_id[0] if isinstance(probe_id, tuple) and probe_id else None
        run = self.runs.get(task_id) if isinstance(task_id, str) else None
        if run is not None and run.checks is not None:
            self._on_check_reports(run, run.checks.probe_done(probe_id, result, error, now), now)

    def _on_check_reports(self, run: TaskRun, reports: list[object], now: float) -> None:
        """Check and health check results worth an update (Mesos's `taskCheckUpdated`,
        `taskHealthUpdated`): a copy of the task's last update with the news."""
        for report in reports:
            if run.last_status is None or run.pid is None or run.killing:
                return
            match report:
                case checks.CheckReport(check_status):
                    run.last_status = self._send_check_update(run.last_status, check_status)
                case checks.HealthReport(healthy, failures, kill, detail):
                    if not self.connected:
                        # As Mesos's default executor: a health result that arrives while the
                        # agent is away is dropped, kill included (the count goes on).
                        self._log(f"health of task {run.task_id} not reported: disconnected")
                        continue
                    run.last_status = self._send_health_update(
                        run.last_status, run.task_id, healthy, failures, detail
                    )
                    if kill:
                        self._log(f"task {run.task_id} is unhealthy; killing it")
                        run.killed_by_health_check = True
                        self._kill(run, run.grace(), now)

    def _end(self, run: TaskRun, state: str, message: str, reason: str | None, now: float) -> None:
        """The terminal update of `run`; its group goes down if it failed or was killed."""
        self._task_ending(run)
        run.escalate_at = None
        self._status(run, state, message, reason)
        del self.runs[run.task_id]
        if state in ("TASK_FAILED", "TASK_KILLED") and not (
            self.shutting_down or run.killing_group
        ):
            run.killing_group = True
            self._kill_group_of(run, now)
        if not self.runs:
            self._finish(now)

    def _finish(self, now: float) -> None:
        """No task left: the executor ends once its updates are acknowledged."""
        if self.done_at is None:
            self.done_at = now
        if not self.unacked or (not self.connected and not self.config.checkpoint):
            self._exit(0)

    # ---------------------------------------------------------------- updates

    def _status(
        self, run: TaskRun, state: str, message: str | None = None, reason: str | None = None
    ) -> Json:
        extra = self._status_extra(run)
        if run.killed_by_health_check and state == "TASK_KILLED":
            extra["healthy"] = False  # killed for failing its health check (as Mesos's)
        run.last_status = self._send_status(run.task_id_info, state, message, reason, extra)
        return run.last_status

    def _status_extra(self, run: TaskRun) -> Json:
        """Fields every update of `run` made from scratch carries: its nested container and,
        with a check, the empty result of the check's type (Mesos's `createTaskStatus`)."""
        extra: Json = {"container_status": {"container_id": run.container_id}}
        kind = (run.task.get("check") or {}).get("type")
        if kind in checks.KINDS:
            extra["check_status"] = checks.empty_check_status(kind)
        return extra

