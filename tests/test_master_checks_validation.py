"""The master's validation of TaskInfo.check and TaskInfo.health_check (Mesos's
`validateCheckInfo` / `validateHealthCheck`, prefixed "Task uses invalid (health) check: "):
a task that breaks a rule ends TASK_ERROR with Mesos's words, for LAUNCH and LAUNCH_GROUP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mezzo.api.codec import decode, to_builtins
from mezzo.api.common import HealthCheck, TaskInfo
from mezzo.executor.checks_core import RunProbe, TaskChecks
from mezzo.master.launch_validation import task_problem
from mezzo.scheduler import check, health_check
from mezzo.testing.master_cluster import MasterCluster, task_info
from tests.test_master_task_groups import default_executor

BASE: dict[str, Any] = {
    "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
    "command": {"value": "true"},
}


def problem(**fields: Any) -> str | None:
    task = decode(json.dumps({**BASE, **fields}).encode(), TaskInfo)
    return task_problem(task)


HEALTH_CASES: list[tuple[dict[str, Any], str]] = [
    ({"delay_seconds": 1.0}, "HealthCheck must specify 'type'"),
    ({"type": "UNKNOWN"}, "'UNKNOWN' is not a valid health check type"),
    ({"type": "COMMAND"}, "Expecting 'command' to be set for COMMAND health check"),
    ({"type": "COMMAND", "command": {"shell": True}},
     "Command health check must contain 'shell command'"),
    ({"type": "COMMAND", "command": {"shell": False}},
     "Command health check must contain 'executable path'"),
    ({"type": "COMMAND", "command": {"value": "true", "environment": {"variables": [
        {"name": "X"}]}}},
     "Health check's `CommandInfo` is invalid: Environment variable 'X' of type 'VALUE' "
     "must have a value set"),
    ({"type": "HTTP"}, "Expecting 'http' to be set for HTTP health check"),
    ({"type": "HTTP", "http": {"port": 80, "scheme": "ftp"}},
     "Unsupported HTTP health check scheme: 'ftp'"),
    ({"type": "HTTP", "http": {"port": 80, "path": "health"}},
     "The path 'health' of HTTP health check must start with '/'"),
    ({"type": "TCP"}, "Expecting 'tcp' to be set for TCP health check"),
    ({"type": "TCP", "tcp": {"port": 1}, "delay_seconds": -1},
     "Expecting 'delay_seconds' to be non-negative"),
    ({"type": "TCP", "tcp": {"port": 1}, "grace_period_seconds": -0.5},
     "Expecting 'grace_period_seconds' to be non-negative"),
    ({"type": "TCP", "tcp": {"port": 1}, "interval_seconds": -1},
     "Expecting 'interval_seconds' to be non-negative"),
    ({"type": "TCP", "tcp": {"port": 1}, "timeout_seconds": -1},
     "Expecting 'timeout_seconds' to be non-negative"),
]


@pytest.mark.parametrize(("health", "message"), HEALTH_CASES)
def test_health_check_rules(health: dict[str, Any], message: str) -> None:
    assert problem(health_check=health) == f"Task uses invalid health check: {message}"


CHECK_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "CheckInfo must specify 'type'"),
    ({"type": "UNKNOWN"}, "'UNKNOWN' is not a valid check type"),
    ({"type": "COMMAND"}, "Expecting 'command' to be set for COMMAND check"),
    ({"type": "COMMAND", "command": {"command": {}}},
     "Command check must contain 'shell command'"),
    ({"type": "COMMAND", "command": {"command": {"value": "x", "environment": {"variables": [
        {"name": "S", "type": "SECRET", "value": "v", "secret": {"type": "VALUE"}}]}}}},
     "Check's `CommandInfo` is invalid: Environment variable 'S' of type 'SECRET' must not "
     "have a value set"),
    ({"type": "HTTP"}, "Expecting 'http' to be set for HTTP check"),
    ({"type": "HTTP", "http": {"port": 80, "path": "x"}},
     "The path 'x' of HTTP check must start with '/'"),
    ({"type": "TCP"}, "Expecting 'tcp' to be set for TCP check"),
    ({"type": "TCP", "tcp": {"port": 1}, "timeout_seconds": -2},
     "Expecting 'timeout_seconds' to be non-negative"),
]


@pytest.mark.parametrize(("check", "message"), CHECK_CASES)
def test_check_rules(check: dict[str, Any], message: str) -> None:
    assert problem(check=check) == f"Task uses invalid check: {message}"


def test_valid_checks_pass_and_the_check_is_validated_first() -> None:
    assert problem(
        health_check={"type": "HTTP", "http": {"port": 80, "path": "/h", "scheme": "https"}},
        check={"type": "COMMAND", "command": {"command": {"value": "true"}}},
    ) is None
    assert problem(health_check={"type": "TCP", "tcp": {"port": 1}},
                   check={"type": "TCP", "tcp": {"port": 1}, "delay_seconds": 0}) is None
    both = problem(health_check={"type": "TCP"}, check={"type": "TCP"})
    assert both == "Task uses invalid check: Expecting 'tcp' to be set for TCP check"


def test_an_invalid_health_check_is_task_error_for_launch_and_launch_group() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:1;mem:512;disk:100")
    s = c.add_scheduler()
    c.allocate()
    offer = s.next_event("OFFERS").offers.offers[0]
    bad = task_info("bad", offer)
    bad.health_check = decode(b'{"type": "HTTP", "http": {"port": 80, "path": "x"}}',
                              HealthCheck)
    s.launch(offer, [bad])
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert status.message == (
        "Task uses invalid health check: The path 'x' of HTTP health check must start with '/'")
    assert not agent.all_of("RUN_TASK")
    c.clock.advance(10)
    c.allocate()
    offer = s.next_event("OFFERS").offers.offers[0]
    group_task = task_info("g", offer)
    group_task.health_check = decode(b'{"type": "TCP", "tcp": {"port": 1}, '
                                     b'"consecutive_failures": 1, "delay_seconds": -1}',
                                     HealthCheck)
    s.launch_group(offer, default_executor(), [group_task])
    status = s.next_event("UPDATE").update.status
    assert status.state == "TASK_ERROR"
    assert status.message == (
        "Task 'g' is invalid: Task uses invalid health check: "
        "Expecting 'delay_seconds' to be non-negative")
    assert not agent.all_of("RUN_TASK_GROUP")


def test_the_sdk_builds_valid_checks_the_executors_understand() -> None:
    task = decode(json.dumps(BASE).encode(), TaskInfo)
    task.health_check = health_check(http=8080, path="/h", interval=0.5, consecutive_failures=2)
    task.check = check(command="test -f ready", delay=0)
    assert task_problem(task) is None
    wire = json.loads(json.dumps(to_builtins(task)))
    assert wire["health_check"]["http"] == {"port": 8080, "path": "/h"}
    assert wire["health_check"]["delay_seconds"] == 15.0  # Mesos's default
    checks = TaskChecks(wire, 0.0)
    actions, _ = checks.tick(0.0)
    assert [a.spec.argv for a in actions if isinstance(a, RunProbe)] == [
        ["/bin/sh", "-c", "test -f ready"]]
    assert checks.consecutive_limit == 2
    with pytest.raises(ValueError, match="exactly one"):
        health_check(http=1, tcp=2)
    assert task_problem(decode(json.dumps({**BASE, "health_check": to_builtins(
        health_check(tcp=1, delay=-1))}).encode(), TaskInfo)) == (
        "Task uses invalid health check: Expecting 'delay_seconds' to be non-negative")
