"""Checks and health checks of the built-in executors' tasks: when to probe, what a probe's
result means, and what to report (Mesos's checker library, `src/checks/`). Pure: no I/O, no
clock reads; `now` comes in, probes go out as actions and come back as events. The probes
themselves (a subprocess, an HTTP GET, a TCP connect) are `checks_probe.py`'s; the executors'
cores (`command_core`, `default_core`) own one `TaskChecks` per task and turn its reports into
status updates. Stdlib only and cheap to import, like the rest of the built-in executors.

Behaviour (Mesos's `CheckerProcess`, `Checker` and `HealthChecker`)
--------------------------------------------------------------------
A task's `check` (CheckInfo) and `health_check` (HealthCheck) each probe the task: the first
probe `delay_seconds` after the task started, the next `interval_seconds` after the previous
one's result; a probe still running after `timeout_seconds` (0: no limit) is aborted and counts
as an error. COMMAND runs the command (exit code), HTTP sends `GET <path>` to
``<scheme>://127.0.0.1:<port>`` (``[::1]`` for `protocol: IPv6`; redirects followed; the
status code), TCP connects to ``127.0.0.1:<port>`` (succeeded or not).

- A check reports its result as a CheckStatusInfo (`{"type": "HTTP", "http": {"status_code":
  200}}`; an error or a timeout is the empty result `{"type": "HTTP", "http": {}}`), and only
  when it differs from the previous one (which starts as the empty result).
- A health check interprets its result: healthy if the command exited 0, the HTTP status is
  200–399, the TCP connection succeeded; an error or timeout is a failure. Failures are ignored
  while the task has never been healthy and `grace_period_seconds` since it started have not
  passed. Outside that, every failure is reported (healthy false, with the count of
  consecutive failures) and the task must be killed once the count reaches
  `consecutive_failures`; a success is reported when it is the first or follows failures.
- `stop()`: the task is being killed or has ended; probes in flight are aborted and no result
  is reported any more (Mesos pauses its checkers there).

Vocabulary: `ProbeSpec` (what to run), the actions `RunProbe` / `AbortProbe`, the event
`ProbeDone`, and the reports `CheckReport` / `HealthReport` that `TaskChecks.probe_done`
returns.
"""

from __future__ import annotations

if __package__:  # imported as mezzo.executor.checks_core (tests, tools)
    from .command_events import _Record
else:  # run by the agent as a script: this directory is sys.path[0] (see command.py)
    from command_events import _Record  # type: ignore[import-not-found,no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]

__all__ = [
    "AbortProbe",
    "CheckReport",
    "HealthReport",
    "ProbeDone",
    "ProbeSpec",
    "RunProbe",
    "TaskChecks",
    "empty_check_status",
]

# HealthCheck's and CheckInfo's proto defaults.
DEFAULT_DELAY_SECONDS = 15.0
DEFAULT_INTERVAL_SECONDS = 10.0
DEFAULT_TIMEOUT_SECONDS = 20.0
DEFAULT_GRACE_PERIOD_SECONDS = 10.0
DEFAULT_CONSECUTIVE_FAILURES = 3

IPV4_DOMAIN = "127.0.0.1"
IPV6_DOMAIN = "::1"
KINDS = ("COMMAND", "HTTP", "TCP")


# ----------------------------------------------------------------------------- vocabulary


class ProbeSpec(_Record):
    """What one probe runs. COMMAND: `program` with `argv`, the executor's environment with
    `env` on top, in directory `cwd` (None: the executor's). HTTP: `GET path` to
    `scheme://host:port`. TCP: connect to `host:port`."""

    __match_args__ = ("kind", "program", "argv", "env", "cwd", "scheme", "host", "port", "path")
    kind: str
    program: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    scheme: str
    host: str
    port: int
    path: str


class RunProbe(_Record):
    """Start probe `probe_id` (answer `ProbeDone` when it ends, possibly much later)."""

    __match_args__ = ("probe_id", "spec")
    probe_id: tuple[str, str, int]
    spec: ProbeSpec


class AbortProbe(_Record):
    """Stop probe `probe_id` (kill its process tree, close its socket); no answer."""

    __match_args__ = ("probe_id",)
    probe_id: tuple[str, str, int]


class ProbeDone(_Record):
    """Probe `probe_id` ended: `result` is the command's exit code, the HTTP status code or
    whether the TCP connection succeeded; None with `error` when it could not tell."""

    __match_args__ = ("probe_id", "result", "error")
    probe_id: tuple[str, str, int]
    result: int | bool | None
    error: str | None


class CheckReport(_Record):
    """The check's result changed: send an update with this `check_status`."""

    __match_args__ = ("check_status",)
    check_status: Json


class HealthReport(_Record):
    """Send an update with `healthy`; `kill`: the task failed its health check
    `consecutive_failures` times in a row and must be killed; `detail`: why the probe failed
    (for the executor's log)."""

    __match_args__ = ("healthy", "consecutive_failures", "kill", "detail")
    healthy: bool
    consecutive_failures: int
    kill: bool
    detail: str


# ----------------------------------------------------------------------------- parsing


def _number(value: object, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _port(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def empty_check_status(kind: str) -> Json:
    """The CheckStatusInfo of a check that has no result (yet, or after an error)."""
    return {"type": kind, kind.lower(): {}}


def _spec(kind: str, info: Json, command: object, env: dict[str, str], cwd: str | None,
          health: bool) -> ProbeSpec:
    """The probe of a check (`health` False) or health check definition; ValueError."""
    if kind == "COMMAND":
        if not isinstance(command, dict):
            raise ValueError("no command")
        # Imported here: `command_core` imports this module.
        if __package__:
            from .command_core import command_line
        else:
            from command_core import command_line  # type: ignore[import-not-found,no-redef]
        program, argv, command_env = command_line(command)
        merged = dict(env)
        merged.update(command_env)
        return ProbeSpec("COMMAND", program, argv, merged, cwd, "", "", 0, "")
    section = info.get(kind.lower())
    if not isinstance(section, dict):
        raise ValueError(f"no '{kind.lower()}' section")
    # Mesos honours `protocol: IPv6` for health checks only (its checks probe IPv4).
    ipv6 = health and section.get("protocol") == "IPv6"
    host = IPV6_DOMAIN if ipv6 else IPV4_DOMAIN
    port = _port(section.get("port"))
    if kind == "HTTP":
        scheme = (section.get("scheme") if health else None) or "http"
        path = section.get("path") or ""
        return ProbeSpec("HTTP", "", [], {}, cwd, str(scheme), host, port, str(path))
    return ProbeSpec("TCP", "", [], {}, cwd, "", host, port, "")


class _Prober:
    """The schedule of one check or health check: the next probe, the one in flight."""

    __slots__ = ("delay", "in_flight", "interval", "kind", "name", "next_at", "spec",
                 "started_at", "timeout")

    def __init__(self, name: str, kind: str, spec: ProbeSpec, info: Json, now: float) -> None:
        self.name = name  # "check" or "health"
        self.kind = kind
        self.spec = spec
        self.delay = max(0.0, _number(info.get("delay_seconds"), DEFAULT_DELAY_SECONDS))
        self.interval = max(0.0, _number(info.get("interval_seconds"), DEFAULT_INTERVAL_SECONDS))
        timeout = _number(info.get("timeout_seconds"), DEFAULT_TIMEOUT_SECONDS)
        self.timeout = timeout if timeout > 0 else None  # Mesos: zero means no limit
        self.next_at: float | None = now + self.delay
        self.in_flight: tuple[str, str, int] | None = None
        self.started_at = 0.0

    def deadline(self) -> float | None:
        if self.in_flight is not None:
            return None if self.timeout is None else self.started_at + self.timeout
        return self.next_at


# ----------------------------------------------------------------------------- a task's checks


class TaskChecks:
    """The check and the health check of one task, from its start until `stop()`.

    `env` and `cwd` are the task's (a COMMAND probe runs there, with the check command's own
    environment on top). `problems` lists definitions that could not be used (logged by the
    owner; the master validates them, so only a malformed task gets here)."""

    def __init__(self, task: Json, now: float, *, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.task_id: str = str((task.get("task_id") or {}).get("value") or "")
        self.problems: list[str] = []
        self.started_at = now
        self.stopped = False
        self._serial = 0
        self.check: _Prober | None = None
        self.health: _Prober | None = None
        self.check_kind: str | None = None
        env = env or {}
        check = task.get("check")
        if isinstance(check, dict):
            kind = check.get("type")
            if kind in KINDS:
                self.check_kind = str(kind)
                command = (check.get("command") or {}).get("command")
                try:
                    spec = _spec(self.check_kind, check, command, env, cwd, health=False)
                    self.check = _Prober("check", self.check_kind, spec, check, now)
                except ValueError as exc:
                    self.problems.append(f"check not run: {exc}")
            else:
                self.problems.append(f"check of unknown type {kind!r} not run")
        # The check's last result (Mesos's `previousCheckStatus`), empty until one arrives.
        self.check_status: Json | None = (
            empty_check_status(self.check_kind) if self.check_kind is not None else None
        )
        health = task.get("health_check")
        self.grace = 0.0
        self.consecutive_limit = DEFAULT_CONSECUTIVE_FAILURES
        if isinstance(health, dict):
            kind = health.get("type")
            if kind in KINDS:
                try:
                    spec = _spec(str(kind), health, health.get("command"), env, cwd, health=True)
                    self.health = _Prober("health", str(kind), spec, health, now)
                except ValueError as exc:
                    self.problems.append(f"health check not run: {exc}")
                self.grace = max(0.0, _number(health.get("grace_period_seconds"),
                                              DEFAULT_GRACE_PERIOD_SECONDS))
                limit = health.get("consecutive_failures")
                self.consecutive_limit = int(_number(limit, DEFAULT_CONSECUTIVE_FAILURES))
            else:
                self.problems.append(f"health check of unknown type {kind!r} not run")
        self.initializing = True  # no success yet
        self.consecutive_failures = 0

    # ---------------------------------------------------------------- the interface

    def deadlines(self) -> list[float | None]:
        """When the next probe starts, or the one in flight times out."""
        if self.stopped:
            return []
        return [p.deadline() for p in (self.check, self.health) if p is not None]

    def tick(self, now: float) -> tuple[list[object], list[object]]:
        """(actions, reports) due at `now`: probes to start, probes timed out."""
        actions: list[object] = []
        reports: list[object] = []
        if self.stopped:
            return actions, reports
        for prober in (self.check, self.health):
            if prober is None:
                continue
            if prober.in_flight is not None:
                if prober.timeout is not None and now >= prober.started_at + prober.timeout:
                    probe_id = prober.in_flight
                    actions.append(AbortProbe(probe_id))
                    error = f"{prober.kind} {prober.name} timed out after {prober.timeout:g}s"
                    reports.extend(self._finished(prober, None, error, now))
            elif prober.next_at is not None and now >= prober.next_at:
                self._serial += 1
                prober.in_flight = (self.task_id, prober.name, self._serial)
                prober.started_at = now
                prober.next_at = None
                actions.append(RunProbe(prober.in_flight, prober.spec))
        return actions, reports

    def probe_done(self, probe_id: object, result: int | bool | None, error: str | None,
                   now: float) -> list[object]:
        """A probe's result; the reports it makes (none for a stale or unknown probe)."""
        if self.stopped:
            return []
        for prober in (self.check, self.health):
            if prober is not None and prober.in_flight is not None and prober.in_flight == probe_id:
                return self._finished(prober, result, error, now)
        return []

    def stop(self) -> list[object]:
        """No more probes or reports; the actions that abort the probes in flight."""
        if self.stopped:
            return []
        self.stopped = True
        aborts: list[object] = []
        for prober in (self.check, self.health):
            if prober is not None and prober.in_flight is not None:
                aborts.append(AbortProbe(prober.in_flight))
                prober.in_flight = None
            if prober is not None:
                prober.next_at = None
        return aborts

    # ---------------------------------------------------------------- results

    def _finished(self, prober: _Prober, result: int | bool | None, error: str | None,
                  now: float) -> list[object]:
        prober.in_flight = None
        prober.next_at = now + prober.interval
        if prober.name == "check":
            return self._check_result(prober.kind, result, error)
        return self._health_result(prober.kind, result, error, now)

    def _check_result(self, kind: str, result: int | bool | None,
                      error: str | None) -> list[object]:
        status = empty_check_status(kind)
        if error is None and result is not None:
            if kind == "COMMAND":
                status["command"] = {"exit_code": int(result)}
            elif kind == "HTTP":
                status["http"] = {"status_code": int(result)}
            else:
                status["tcp"] = {"succeeded": bool(result)}
        if status == self.check_status:
            return []
        self.check_status = status
        return [CheckReport(status)]

    def _health_result(self, kind: str, result: int | bool | None, error: str | None,
                       now: float) -> list[object]:
        if error is None and result is not None and _healthy(kind, result):
            # Reported on the first success, and on the first one after failures.
            report = self.initializing or self.consecutive_failures > 0
            self.initializing = False
            self.consecutive_failures = 0
            return [HealthReport(True, 0, False, "")] if report else []
        if self.initializing and self.grace > 0 and now - self.started_at <= self.grace:
            return []  # still in the grace period: ignored
        self.consecutive_failures += 1
        kill = self.consecutive_failures >= self.consecutive_limit
        detail = _failure(kind, result, error)
        return [HealthReport(False, self.consecutive_failures, kill, detail)]


def _failure(kind: str, result: int | bool | None, error: str | None) -> str:
    """Why a health probe failed, in Mesos's words."""
    if error is not None or result is None:
        return error or "no result"
    if kind == "COMMAND":
        return f"Command exited with status {result}"
    if kind == "HTTP":
        return f"Unexpected HTTP response code: {result}"
    return "TCP connection failed"


def _healthy(kind: str, result: int | bool) -> bool:
    if kind == "COMMAND":
        return result is not False and result == 0
    if kind == "HTTP":
        return 200 <= int(result) < 400
    return bool(result)
