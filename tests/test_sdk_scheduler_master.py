"""The scheduler SDK end to end: a real `mezzo master` subprocess and emulated agents
(`mezzo.testing.emulated_agent`: the real master <-> agent protocol, no executors)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_sdk_scheduler_support import MasterProc, until

from mezzo.api.common import FrameworkID, FrameworkInfo, Offer, TaskState, TaskStatus
from mezzo.scheduler import (
    Scheduler,
    SchedulerClient,
    SchedulerDriver,
    SchedulerOptions,
    shell_task,
)
from mezzo.testing.emulated_agent import EmulatedAgent

FAST = SchedulerOptions(backoff_initial=0.1, backoff_max=0.5, connect_timeout=3.0)


def state(master: MasterProc) -> dict[str, Any]:
    with urllib.request.urlopen(master.url + "/master/state", timeout=5) as reply:
        return json.loads(reply.read())


def framework(master: MasterProc, fid: str, completed: bool = False) -> dict[str, Any] | None:
    key = "completed_frameworks" if completed else "frameworks"
    return next((f for f in state(master)[key] if f["id"] == fid), None)


def task_ids(fw: dict[str, Any] | None, key: str) -> set[str]:
    return {t["id"] for t in (fw or {}).get(key, [])}


class Launcher(Scheduler):
    """Launches one `true` task per offer until `count` tasks are out; records everything."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.launched: list[str] = []
        self.updates: list[TaskStatus] = []
        self.events: list[str] = []
        self.changed = asyncio.Event()

    def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
        self.events.append("registered")

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.events.append("reregistered")

    def disconnected(self, driver: Any) -> None:
        self.events.append("disconnected")

    def error(self, driver: Any, message: str) -> None:
        self.events.append(f"error:{message}")

    async def resource_offers(self, driver: SchedulerClient, offers: list[Offer]) -> None:
        for offer in offers:
            if len(self.launched) < self.count:
                task = shell_task(offer, "cpus:0.5;mem:64", "true", name="sdk")
                self.launched.append(task.task_id.value)
                await driver.launch(offer, [task])
            else:
                await driver.decline(offer, refuse_seconds=60)

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.updates.append(status)

    def states(self) -> list[TaskState]:
        return [u.state for u in self.updates]


@pytest.fixture
def master(tmp_path: Path) -> Iterator[MasterProc]:
    proc = MasterProc(tmp_path)
    yield proc
    proc.kill()


@pytest.fixture
async def agent(master: MasterProc) -> AsyncIterator[EmulatedAgent]:
    a = EmulatedAgent(master.url, hostname="agent-a", finish=True, retry_seconds=0.5)
    await asyncio.wait_for(a.start(), 10)
    yield a
    await a.stop()


def info(name: str = "sdk-e2e") -> FrameworkInfo:
    return FrameworkInfo(user="tester", name=name, failover_timeout=60)


async def test_offers_launch_updates_and_implicit_acks(
    master: MasterProc, agent: EmulatedAgent
) -> None:
    sched = Launcher()
    client = SchedulerClient(master.address, info(), sched, FAST)
    await client.start()
    try:
        fid = (await client.wait_subscribed(10)).value
        await until(lambda: TaskState.TASK_FINISHED in sched.states(), what="TASK_FINISHED")
        assert sched.states() == [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
        assert all(u.uuid for u in sched.updates)
        # The master moves a task to completed_tasks only once its terminal update is acked.
        await until(
            lambda: sched.launched[0] in task_ids(framework(master, fid), "completed_tasks"),
            what="acknowledged terminal update",
        )
        assert sched.events == ["registered"]
    finally:
        await client.stop()
    await until(lambda: framework(master, fid, completed=True), what="teardown")
    assert framework(master, fid) is None


async def test_without_implicit_acks_the_update_waits(
    master: MasterProc, agent: EmulatedAgent
) -> None:
    sched = Launcher()
    opts = SchedulerOptions(implicit_acknowledgements=False, backoff_initial=0.1)
    client = SchedulerClient(master.address, info(), sched, opts)
    await client.start()
    try:
        fid = (await client.wait_subscribed(10)).value
        await until(lambda: sched.updates, what="first update")
        # Unacknowledged, the agent resends it (retry 0.5 s): still the same update.
        await until(lambda: len(sched.updates) >= 2, what="the update resent")
        assert {u.state for u in sched.updates} == {TaskState.TASK_RUNNING}
        await client.acknowledge(sched.updates[0])
        await until(lambda: TaskState.TASK_FINISHED in sched.states(), what="TASK_FINISHED")
        finished = next(u for u in sched.updates if u.state == TaskState.TASK_FINISHED)
        await client.acknowledge(finished)
        await until(
            lambda: sched.launched[0] in task_ids(framework(master, fid), "completed_tasks"),
            what="acknowledged terminal update",
        )
    finally:
        await client.stop()


async def test_resubscribes_with_same_id_after_master_restart(tmp_path: Path) -> None:
    first = MasterProc(tmp_path)
    port = first.port
    sched = Launcher(count=0)
    client = SchedulerClient(first.address, info(), sched, FAST)
    second: MasterProc | None = None
    try:
        await client.start()
        fid = await client.wait_subscribed(10)
        first.kill()  # the master goes away: the stream ends
        await until(lambda: "disconnected" in sched.events, what="disconnected")
        second = MasterProc(tmp_path, port=port)  # a new master at the same address
        await until(lambda: "reregistered" in sched.events, timeout=15, what="reregistered")
        assert client.framework_id == fid
        assert sched.events == ["registered", "disconnected", "reregistered"]
        fw = framework(second, fid.value)
        assert fw is not None and fw["name"] == "sdk-e2e"
    finally:
        await client.stop()
        first.kill()
        if second is not None:
            second.kill()


async def test_failover_to_a_new_scheduler_instance(master: MasterProc) -> None:
    old_sched = Launcher(count=0)
    old = SchedulerClient(master.address, info(), old_sched, FAST)
    await old.start()
    new: SchedulerClient | None = None
    try:
        fid = await old.wait_subscribed(10)
        taken_over = info()
        taken_over.id = fid
        new_sched = Launcher(count=0)
        new = SchedulerClient(master.address, taken_over, new_sched, FAST)
        await new.start()
        assert await new.wait_subscribed(10) == fid
        # The old instance is told it failed over and stops (it must not fight back).
        await asyncio.wait_for(old.join(), 10)
        assert old_sched.events[-1] == "error:Framework failed over"
        assert new_sched.events == ["registered"]
        assert new.connected
    finally:
        await old.stop()
        if new is not None:
            await new.stop()


async def test_thread_driver_against_the_master(master: MasterProc, agent: EmulatedAgent) -> None:
    done = threading.Event()
    updates: list[str] = []

    class Sched(Scheduler):
        def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
            for offer in offers:
                if not updates and not done.is_set():
                    driver.launch(offer, [shell_task(offer, "cpus:1;mem:128", "true")])
                else:
                    driver.decline(offer, refuse_seconds=60)

        def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
            updates.append(status.state)
            if status.state == TaskState.TASK_FINISHED:
                done.set()

    driver = SchedulerDriver(Sched(), info("driver"), master.address, FAST)
    await asyncio.to_thread(driver.start)
    try:
        assert await asyncio.to_thread(done.wait, 15)
        assert updates == ["TASK_RUNNING", "TASK_FINISHED"]
    finally:
        await asyncio.to_thread(driver.stop)
        assert await asyncio.to_thread(driver.join, 10)


@pytest.mark.zookeeper
async def test_zk_master_url_finds_the_advertised_leader(
    master: MasterProc, zk_chroot: Any
) -> None:
    from mezzo.election.zookeeper import ZooKeeperContender

    address = {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": master.port}
    contender = ZooKeeperContender(
        zk_chroot.url,
        {"id": "m1", "hostname": "127.0.0.1", "port": master.port, "address": address},
    )
    contender.contend()
    client = SchedulerClient(zk_chroot.url, info("zk"), Launcher(count=0), FAST)
    try:
        await asyncio.wait_for(contender.elected(), 30)
        await client.start()
        fid = await client.wait_subscribed(30)
        assert client.master_url == master.url
        assert framework(master, fid.value) is not None
    finally:
        await client.stop()
        contender.close()
