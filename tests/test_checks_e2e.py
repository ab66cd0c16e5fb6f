"""Checks and health checks end to end (issue 16 §2): a real `mezzo master` and `mezzo agent`, a
v1 scheduler over HTTP (`MiniScheduler`), tasks run by the built-in command executor and, in a
task group, by the default executor; their probes hit a real HTTP server, a closed port and real
commands. Small intervals (0.2 s) keep them quick; nothing is timed, every wait polls."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.testing.agent_harness import (
    MEZZO,
    MiniScheduler,
    ProcessCluster,
    command_task,
    free_port,
)
from mezzo.testing.agent_harness import default_executor as default_executor_json

pytestmark = pytest.mark.slow

FAST = {"delay_seconds": 0.0, "interval_seconds": 0.2, "timeout_seconds": 5.0}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096;disk:1000") as c:
        yield c


def http_server(port: int) -> str:
    return f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1"


def health_updates(s: MiniScheduler, task_id: str) -> list[dict[str, Any]]:
    return [u for u in s.updates if u["task_id"]["value"] == task_id
            and u.get("reason") == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"]


def check_updates(s: MiniScheduler, task_id: str) -> list[dict[str, Any]]:
    return [u for u in s.updates if u["task_id"]["value"] == task_id
            and u.get("reason") == "REASON_TASK_CHECK_STATUS_UPDATED"]


async def test_a_healthy_http_server_is_reported_healthy(cluster: ProcessCluster) -> None:
    cluster.agent()
    port = free_port()
    task = command_task("web", http_server(port), health_check={
        "type": "HTTP", "http": {"port": port, "path": "/"},
        "grace_period_seconds": 30.0, "consecutive_failures": 3, **FAST,
    })
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([task])
        healthy = await s.wait_for(lambda: health_updates(s, "web"), timeout=60)
        first = healthy[0]
        # Failures while the server started were inside the grace period: the first health
        # update is the first success.
        assert (first["state"], first["healthy"], first["source"]) == (
            "TASK_RUNNING", True, "SOURCE_EXECUTOR")
        # `mezzo tasks` shows the last update's health, as Mesos's web UI does.
        listing = subprocess.run(
            [*MEZZO, "tasks", "--master", cluster.master.address],
            capture_output=True, text=True, timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        cells = [[c.strip() for c in line.strip().strip("│").split("│")]
                 for line in listing.stdout.splitlines() if "│" in line]
        assert "HEALTH" in listing.stdout
        assert [row[:4] for row in cells] == [["web", "web", "TASK_RUNNING", "healthy"]]
        await s.call({"type": "KILL", "kill": {"task_id": {"value": "web"}}})
        killed = await s.wait_state("web", "TASK_KILLED")
        assert "healthy" not in killed  # killed by the framework, not for its health
        # Every report was healthy (no change, no further update).
        assert [u["healthy"] for u in health_updates(s, "web")] == [True]


async def test_a_task_failing_its_health_check_is_killed(cluster: ProcessCluster) -> None:
    cluster.agent()
    closed = free_port()
    task = command_task("sick", "sleep 60", health_check={
        "type": "TCP", "tcp": {"port": closed},
        "grace_period_seconds": 0.0, "consecutive_failures": 3, **FAST,
    }, kill_policy={"grace_period": {"nanoseconds": 1_000_000_000}})
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([task])
        killed = await s.wait_state("sick", "TASK_KILLED", timeout=60)
        assert killed["healthy"] is False
        assert killed["message"] == "Command terminated with signal SIGTERM"
        reports = health_updates(s, "sick")
        assert [u["healthy"] for u in reports] == [False, False, False]
        assert all(u["state"] == "TASK_RUNNING" for u in reports)
        assert s.states("sick") == [
            "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING",
            "TASK_KILLING", "TASK_KILLED",
        ]


async def test_a_command_check_reports_its_exit_code(cluster: ProcessCluster) -> None:
    cluster.agent()
    # The check runs in the task's sandbox: it sees the file the task creates there.
    task = command_task("job", "sleep 2; touch ready; sleep 60", check={
        "type": "COMMAND", "command": {"command": {"value": "test -f ready"}}, **FAST,
    })
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([task])
        running = await s.wait_state("job", "TASK_RUNNING")
        assert running["check_status"] == {"type": "COMMAND", "command": {}}

        def ready() -> list[dict[str, Any]]:
            return [u for u in check_updates(s, "job")
                    if u["check_status"].get("command", {}).get("exit_code") == 0]

        await s.wait_for(ready, timeout=60)
        codes = [u["check_status"]["command"]["exit_code"] for u in check_updates(s, "job")]
        # One update per change: not ready (1), then ready (0).
        assert codes == [1, 0]
        assert all(u["state"] == "TASK_RUNNING" for u in check_updates(s, "job"))
        await s.call({"type": "KILL", "kill": {"task_id": {"value": "job"}}})
        killed = await s.wait_state("job", "TASK_KILLED")
        assert killed["check_status"] == {"type": "COMMAND", "command": {}}


async def test_a_task_group_with_health_checks(cluster: ProcessCluster) -> None:
    cluster.agent()
    port = free_port()
    web = command_task("web", http_server(port), health_check={
        "type": "HTTP", "http": {"port": port, "path": "/"},
        "grace_period_seconds": 30.0, **FAST,
    }, check={"type": "TCP", "tcp": {"port": port}, **FAST})
    # Its health check command runs in its own sandbox (tasks/flaky) with its environment:
    # healthy while the file it made there exists, unhealthy once it is gone.
    flaky = command_task(
        "flaky", "touch here; sleep 3; rm here; sleep 60",
        health_check={
            "type": "COMMAND",
            "command": {"value": 'test -f here && test "$MESOS_SANDBOX" = "$PWD"'},
            "grace_period_seconds": 60.0, "consecutive_failures": 2, **FAST,
        },
    )
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch_group([(default_executor_json("pod"), [web, flaky])])
        await s.wait_for(lambda: health_updates(s, "web"), timeout=60)
        assert health_updates(s, "web")[0]["healthy"] is True
        assert health_updates(s, "web")[0]["container_status"]["container_id"]["parent"]
        tcp = await s.wait_for(lambda: [
            u for u in check_updates(s, "web")
            if u["check_status"].get("tcp", {}).get("succeeded") is True
        ], timeout=60)
        # A check update keeps what the previous update carried (the health, once known).
        first_health = s.updates.index(health_updates(s, "web")[0])
        for update in check_updates(s, "web"):
            assert update.get("healthy") is (True if s.updates.index(update) > first_health
                                             else None)
        assert tcp[0]["state"] == "TASK_RUNNING"
        killed = await s.wait_state("flaky", "TASK_KILLED", timeout=60)
        assert killed["healthy"] is False
        # Healthy once (its sandbox and environment), then two failures after `rm`: killed.
        assert [u["healthy"] for u in health_updates(s, "flaky")] == [True, False, False]
        # The group's restart policy: the other task goes with it.
        web_end = await s.wait_state("web", "TASK_KILLED", timeout=60)
        assert "healthy" not in web_end
