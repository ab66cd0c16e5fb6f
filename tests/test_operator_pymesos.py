"""The unmodified pymesos operator driver (`MesosOperatorMasterDriver`) against a real
`mezzo master` process: its event stream callbacks as a pymesos scheduler launches a task on an
emulated agent, and its read calls."""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import pytest

pymesos = pytest.importorskip("pymesos")

from mezzo.testing.processes import eventually  # noqa: E402
from tests import test_master_pymesos  # noqa: E402
from tests.test_master_pymesos import RecordingScheduler, framework_info, wait_for  # noqa: E402

master_url = test_master_pymesos.master_url  # fixtures
start_agent = test_master_pymesos.start_agent
DEADLINE = 30.0


class RecordingOperator(pymesos.OperatorMaster):
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()

    def taskAdded(self, task_info):
        self.events.put(("taskAdded", task_info))

    def taskUpdated(self, task_info):
        self.events.put(("taskUpdated", task_info))

    def frameworkAdded(self, framework_info):
        self.events.put(("frameworkAdded", framework_info))

    def frameworkUpdated(self, framework_info):
        self.events.put(("frameworkUpdated", framework_info))

    def frameworkRemoved(self, framework_info):
        self.events.put(("frameworkRemoved", framework_info))

    def agentAdded(self, agent_info):
        self.events.put(("agentAdded", agent_info))

    def agentRemoved(self, agent_id):
        self.events.put(("agentRemoved", agent_id))


async def next_of(op: RecordingOperator, kind: str, match=lambda _: True):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            got, value = op.events.get_nowait()
        except queue.Empty:
            await asyncio.sleep(0.02)
            continue
        if got == kind and match(value):
            return value
    raise AssertionError(f"no {kind} within {DEADLINE}s")


@pytest.mark.slow
async def test_pymesos_operator_driver_follows_the_cluster(master_url, start_agent) -> None:  # type: ignore[no-untyped-def]
    operator = RecordingOperator()
    watcher = pymesos.MesosOperatorMasterDriver(master_url, operator)
    subscribed = threading.Event()
    on_subscribed = watcher.on_subscribed

    def mark_subscribed(info: object) -> None:
        on_subscribed(info)
        subscribed.set()

    watcher.on_subscribed = mark_subscribed
    watcher.start()
    sched = RecordingScheduler(tasks_wanted=1)
    driver = pymesos.MesosSchedulerDriver(sched, framework_info(), master_url, use_addict=True)
    try:
        # The operator stream subscribes first (its SUBSCRIBED came back).
        await eventually(subscribed.is_set, DEADLINE, "the operator stream's SUBSCRIBED")
        agent = await start_agent()
        added = await next_of(operator, "agentAdded")
        assert added["agent_info"]["id"]["value"] == agent.agent_id
        driver.start()
        framework_id = await wait_for(sched, "registered")
        framework = await next_of(operator, "frameworkAdded")
        assert framework["framework_info"]["id"]["value"] == framework_id
        task_id = await wait_for(sched, "launched")
        task = await next_of(operator, "taskAdded")
        assert task["task_id"]["value"] == task_id and task["state"] == "TASK_STAGING"
        update = await next_of(operator, "taskUpdated", lambda u: u["state"] == "TASK_RUNNING")
        assert update["framework_id"]["value"] == framework_id
        assert update["status"]["task_id"]["value"] == task_id

        # The driver's read calls (blocking HTTP: off the event loop).
        health = await asyncio.to_thread(watcher.getHealth)
        assert health["get_health"]["healthy"] is True
        tasks = await asyncio.to_thread(watcher.getTasks)
        assert [t["task_id"]["value"] for t in tasks["get_tasks"]["tasks"]] == [task_id]
        level = await asyncio.to_thread(watcher.getLoggingLevel)
        assert level["get_logging_level"]["level"] == 0
        await asyncio.to_thread(watcher.setLoggingLevel, 1, 100_000_000)
        roles = await asyncio.to_thread(watcher.getRoles)
        assert [r["name"] for r in roles["get_roles"]["roles"]] == ["*"]
    finally:
        driver.stop()
        await asyncio.to_thread(driver.join)
        watcher.stop()
        await asyncio.to_thread(watcher.join)
