"""Builders of a task's health check (`HealthCheck`) and check (`CheckInfo`), for
`TaskInfo.health_check` and `TaskInfo.check` (docs/agent.md, "Health checks and checks").

Pure helpers: each returns the wire record with exactly one probe (a shell command, an HTTP
port, a TCP port) and Mesos's defaults for what is not given. The built-in executors run them
and report `healthy` / `check_status` in TASK_RUNNING updates.
"""

from __future__ import annotations

from mezzo.api.common import (
    CheckCommand,
    CheckHTTP,
    CheckInfo,
    CheckTCP,
    CheckType,
    CommandInfo,
    HealthCheck,
    HealthCheckHTTP,
    HealthCheckTCP,
)


def _one_probe(command: str | None, http: int | None, tcp: int | None) -> CheckType:
    given = [t for t, v in ((CheckType.COMMAND, command), (CheckType.HTTP, http),
                            (CheckType.TCP, tcp)) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of command=, http= (a port) or tcp= (a port)")
    return given[0]


def health_check(
    *,
    command: str | None = None,
    http: int | None = None,
    path: str | None = None,
    scheme: str | None = None,
    tcp: int | None = None,
    delay: float | None = None,
    interval: float | None = None,
    timeout: float | None = None,
    grace_period: float | None = None,
    consecutive_failures: int | None = None,
) -> HealthCheck:
    """A health check: `command` (a shell command; healthy if it exits 0), `http` (a port the
    task listens on at 127.0.0.1: `GET path`, healthy if 200–399; `scheme` "https" for TLS) or
    `tcp` (a port: healthy if it accepts). Times in seconds; unset ones take Mesos's defaults
    (delay 15, interval 10, timeout 20, grace period 10, 3 consecutive failures kill the
    task)."""
    kind = _one_probe(command, http, tcp)
    return HealthCheck(
        type=kind,
        command=CommandInfo(value=command, shell=True) if command is not None else None,
        http=HealthCheckHTTP(port=http, path=path, scheme=scheme) if http is not None else None,
        tcp=HealthCheckTCP(port=tcp) if tcp is not None else None,
        delay_seconds=delay,
        interval_seconds=interval,
        timeout_seconds=timeout,
        grace_period_seconds=grace_period,
        consecutive_failures=consecutive_failures,
    )


def check(
    *,
    command: str | None = None,
    http: int | None = None,
    path: str | None = None,
    tcp: int | None = None,
    delay: float | None = None,
    interval: float | None = None,
    timeout: float | None = None,
) -> CheckInfo:
    """A check whose result the executor reports without judging it: `command` (its exit
    code), `http` (a port: the status code of `GET path`) or `tcp` (a port: whether it
    accepts). Times in seconds; unset ones take Mesos's defaults (15, 10, 20)."""
    kind = _one_probe(command, http, tcp)
    return CheckInfo(
        type=kind,
        command=(CheckCommand(command=CommandInfo(value=command, shell=True))
                 if command is not None else None),
        http=CheckHTTP(port=http, path=path) if http is not None else None,
        tcp=CheckTCP(port=tcp) if tcp is not None else None,
        delay_seconds=delay,
        interval_seconds=interval,
        timeout_seconds=timeout,
    )


__all__ = ["check", "health_check"]
