"""`mezzo frameworks / agents / tasks` (tables and --json) and the unreachable-master error line,
against a real `mezzo master` subprocess with an emulated agent and an SDK framework."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_sdk_scheduler_support import MEZZO, MasterProc, until

from mezzo.api.common import FrameworkInfo, Offer, TaskStatus
from mezzo.scheduler import Scheduler, SchedulerClient, SchedulerOptions, shell_task
from mezzo.testing.emulated_agent import EmulatedAgent


async def mezzo(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *MEZZO, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class OneTask(Scheduler):
    def __init__(self) -> None:
        self.task_id: str | None = None
        self.running = asyncio.Event()

    async def resource_offers(self, driver: SchedulerClient, offers: list[Offer]) -> None:
        for offer in offers:
            if self.task_id is None:
                task = shell_task(offer, "cpus:1;mem:100", "sleep 1000", name="inspected")
                self.task_id = task.task_id.value
                await driver.launch(offer, [task])
            else:
                await driver.decline(offer, refuse_seconds=60)

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        if status.state == "TASK_RUNNING":
            self.running.set()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[MasterProc, OneTask, str]]:
    master = MasterProc(tmp_path)
    agent = EmulatedAgent(master.url, hostname="inspect-agent", finish=False)
    sched = OneTask()
    client = SchedulerClient(
        master.address,
        FrameworkInfo(user="tester", name="inspect-fw"),
        sched,
        SchedulerOptions(backoff_initial=0.1),
    )
    try:
        await asyncio.wait_for(agent.start(), 10)
        await client.start()
        fid = (await client.wait_subscribed(10)).value
        await asyncio.wait_for(sched.running.wait(), 10)
        yield master, sched, fid
    finally:
        await client.stop()
        await agent.stop()
        master.kill()


async def test_frameworks_agents_tasks_json(cluster: tuple[MasterProc, OneTask, str]) -> None:
    master, sched, fid = cluster
    code, out, err = await mezzo("frameworks", "--master", master.address, "--json")
    assert code == 0, err
    frameworks = json.loads(out)
    assert [(f["id"], f["name"]) for f in frameworks] == [(fid, "inspect-fw")]

    code, out, err = await mezzo("agents", "--master", master.address, "--json")
    assert code == 0, err
    agents = json.loads(out)
    assert [a["hostname"] for a in agents] == ["inspect-agent"]

    # The task may still be moving from STAGING to RUNNING in the master's view.
    async def running_task() -> list[dict[str, Any]] | None:
        code, out, _ = await mezzo("tasks", "--master", master.address, "--json")
        tasks = json.loads(out) if code == 0 else []
        return tasks if tasks and tasks[0]["state"] == "TASK_RUNNING" else None

    tasks = await until(running_task, what="task RUNNING in the master")
    assert [(t["id"], t["framework_id"]) for t in tasks] == [(sched.task_id, fid)]
    assert tasks[0]["slave_id"] == agents[0]["id"]


async def test_tables(cluster: tuple[MasterProc, OneTask, str]) -> None:
    master = cluster[0]
    for command, expected in (
        ("frameworks", "inspect-fw"),
        ("agents", "inspect-agent"),
        ("tasks", "inspected"),
    ):
        code, out, err = await mezzo(command, "--master", master.address)
        assert code == 0, err
        assert expected in out, out
    code, out, _ = await mezzo("tasks", "--master", master.address, "--framework", "nope")
    assert code == 0 and "inspected" not in out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["frameworks", "agents", "tasks", "logs x", "run true"])
async def test_unreachable_master_is_one_line(command: str) -> None:
    port = closed_port()
    name, *rest = command.split()
    args = [name, "--master", f"127.0.0.1:{port}"]
    args += ["--", *rest] if name == "run" else rest
    code, out, err = await mezzo(*args)
    assert code == 1
    assert out == ""
    assert err == f"error: cannot reach master at 127.0.0.1:{port}: connection refused\n"


async def test_bad_arguments_are_one_line() -> None:
    code, _, err = await mezzo("frameworks", "--master", "127.0.0.1:notaport")
    assert code == 1 and err.startswith("error: ") and len(err.splitlines()) == 1
    code, _, err = await mezzo("run", "--resources", "cpus:lots", "--", "true")
    assert code == 1 and err.startswith("error: bad --resources") and "Traceback" not in err


async def test_help_everywhere() -> None:
    for command in ("run", "frameworks", "agents", "tasks", "logs"):
        code, out, _ = await mezzo(command, "--help")
        assert code == 0 and "--master" in out
