"""pymesos 0.3.15 (unmodified) against a real `mezzo master` process with emulated agents.

The agents come from the `start_agent` fixture: emulated agents speaking the real master <->
agent protocol today; swapping in real `mezzo agent` processes only changes that fixture
(and lets the end-to-end test wait for TASK_FINISHED from a real command task).
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

pymesos = pytest.importorskip("pymesos")

from mezzo.testing.emulated_agent import EmulatedAgent  # noqa: E402

DEADLINE = 30.0


@pytest.fixture
def master_url(tmp_path: Path) -> AsyncIterator[str]:
    port_file = tmp_path / "port"
    log = (tmp_path / "master.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mezzo"), "master", "--ip", "127.0.0.1", "--port", "0",
         "--registry", "in_memory", "--port_file", str(port_file), "--allocation_interval", "100ms"],
        stdout=subprocess.DEVNULL, stderr=log,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + DEADLINE
    while not port_file.exists():
        assert proc.poll() is None, (tmp_path / "master.log").read_text()
        assert time.monotonic() < deadline, "master did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port_file.read_text()}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
async def start_agent(master_url: str) -> AsyncIterator[Callable[..., Awaitable[EmulatedAgent]]]:
    agents: list[EmulatedAgent] = []

    async def start(**kwargs: object) -> EmulatedAgent:
        agent = EmulatedAgent(f"http://{master_url}", hostname=f"agent{len(agents)}", **kwargs)  # type: ignore[arg-type]
        await asyncio.wait_for(agent.start(), DEADLINE)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        await agent.stop()


class RecordingScheduler(pymesos.Scheduler):
    """Launches `tasks_wanted` tasks (cpus 0.1, mem 32) on the first offers it gets."""

    def __init__(self, tasks_wanted: int = 1) -> None:
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.tasks_wanted = tasks_wanted
        self.launched: list[str] = []

    def registered(self, driver, framework_id, master_info):
        self.events.put(("registered", framework_id["value"]))

    def reregistered(self, driver, master_info):
        self.events.put(("reregistered", None))

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if len(self.launched) >= self.tasks_wanted:
                driver.declineOffer(offer["id"], {"refuse_seconds": 60})
                continue
            task_id = str(uuid.uuid4())
            self.launched.append(task_id)
            task = {
                "task_id": {"value": task_id},
                "agent_id": {"value": offer["agent_id"]["value"]},
                "name": "echo",
                "command": {"value": "echo hello"},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            driver.launchTasks(offer["id"], [task], {"refuse_seconds": 5})
            self.events.put(("launched", task_id))

    def statusUpdate(self, driver, update):
        self.events.put(("update", (update["task_id"]["value"], update["state"])))

    def error(self, driver, message):
        self.events.put(("error", message))


async def wait_for(sched: RecordingScheduler, kind: str, match: Callable[[object], bool] = lambda _: True) -> object:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            got_kind, value = sched.events.get_nowait()
        except queue.Empty:
            await asyncio.sleep(0.02)
            continue
        assert got_kind != "error", f"scheduler got ERROR: {value}"
        if got_kind == kind and match(value):
            return value
    raise AssertionError(f"no {kind} event within {DEADLINE}s")


def framework_info() -> dict[str, object]:
    return {"user": "tester", "name": "pymesos-test", "hostname": "localhost", "failover_timeout": 60}


@pytest.mark.slow
async def test_pymesos_registers_gets_offers_launches_and_sees_running(master_url, start_agent) -> None:
    await start_agent()
    sched = RecordingScheduler(tasks_wanted=1)
    driver = pymesos.MesosSchedulerDriver(sched, framework_info(), master_url, use_addict=True)
    driver.start()
    try:
        await wait_for(sched, "registered")
        task_id = await wait_for(sched, "launched")
        await wait_for(sched, "update", lambda v: v == (task_id, "TASK_RUNNING"))
    finally:
        driver.stop()
        await asyncio.to_thread(driver.join)


@pytest.mark.slow
async def test_pymesos_failover_within_timeout_keeps_tasks(master_url, start_agent) -> None:
    import json
    import urllib.request

    await start_agent()
    sched = RecordingScheduler(tasks_wanted=1)
    info = framework_info()
    driver = pymesos.MesosSchedulerDriver(sched, dict(info), master_url, use_addict=True)
    driver.start()
    framework_id = await wait_for(sched, "registered")
    task_id = await wait_for(sched, "launched")
    await wait_for(sched, "update", lambda v: v == (task_id, "TASK_RUNNING"))
    # Stop without TEARDOWN: the framework stays, its task keeps running.
    driver.stop(failover=True)
    await asyncio.to_thread(driver.join)

    def frameworks() -> dict:
        with urllib.request.urlopen(f"http://{master_url}/master/frameworks", timeout=5) as resp:
            return json.load(resp)

    deadline = time.monotonic() + DEADLINE
    while frameworks()["frameworks"][0]["connected"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    state = frameworks()
    assert [t["id"] for t in state["frameworks"][0]["tasks"]] == [task_id]

    sched2 = RecordingScheduler(tasks_wanted=0)
    info2 = dict(info, id={"value": framework_id})
    driver2 = pymesos.MesosSchedulerDriver(sched2, info2, master_url, use_addict=True)
    driver2.start()
    try:
        await wait_for(sched2, "reregistered")
        state = frameworks()
        assert state["frameworks"][0]["id"] == framework_id
        assert state["frameworks"][0]["connected"] is True
        assert [(t["id"], t["state"]) for t in state["frameworks"][0]["tasks"]] == [(task_id, "TASK_RUNNING")]
        assert state["completed_frameworks"] == []
    finally:
        driver2.stop()
        await asyncio.to_thread(driver2.join)
