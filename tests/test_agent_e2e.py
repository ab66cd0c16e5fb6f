"""The agent end to end: real `mezzo master` and `mezzo agent` subprocesses, real executors
(the built-in command executor and a pymesos executor) in real containers.

Each test gets its own work_dir and cgroups root; teardown kills every process and removes
every cgroup the test created.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.agent.containerizer import available_isolators
from mezzo.agent.containerizer.isolators.cgroupfs import CgroupUnavailable, find_hierarchy
from mezzo.testing import agent_pymesos_executor
from mezzo.testing.agent_harness import (
    MEZZO,
    MiniScheduler,
    ProcessCluster,
    command_task,
    executor_pids,
    free_port,
    pid_alive,
)
from mezzo.testing.processes import eventually

pytestmark = pytest.mark.slow



@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096",
                        cgroups_root=f"mezzo-test-{uuid.uuid4().hex[:8]}") as c:
        yield c


def need_cgroups(*controllers: str) -> None:
    for c in controllers:
        try:
            find_hierarchy(c)
        except CgroupUnavailable as e:
            pytest.skip(f"cgroup controller {c!r} unavailable here: {e}")
    reasons = {k: v for k, v in available_isolators().items() if k.startswith("cgroups/") and v}
    if reasons:
        pytest.skip(f"cgroups isolators unavailable: {reasons}")


async def test_command_task_runs_and_fails_with_exit_status(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch([command_task("ok", "echo hello"), command_task("bad", "exit 3")])
        await s.wait_state("ok", "TASK_FINISHED")
        failed = await s.wait_state("bad", "TASK_FAILED")
        assert s.states("ok") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        assert "exited with status 3" in failed["message"]
        assert failed["agent_id"]["value"] and failed["executor_id"]["value"] == "bad"
        assert failed["source"] == "SOURCE_EXECUTOR"


async def test_memory_limit_breach_fails_the_task(cluster: ProcessCluster) -> None:
    need_cgroups("memory")
    cluster.agent("--isolation", "cgroups/cpu,cgroups/mem")
    async with MiniScheduler(cluster.master.url) as s:
        hog = f"{sys.executable} -c 'b = bytearray(400 * 2**20); import time; time.sleep(30)'"
        await s.launch([command_task("hog", hog, mem=32)])
        failed = await s.wait_state("hog", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY", failed


async def test_kill_with_grace_escalates_to_sigkill(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        task = command_task(
            "stubborn", "trap '' TERM; echo ready; sleep 60",
            kill_policy={"grace_period": {"nanoseconds": 500_000_000}},
        )
        await s.launch([task])
        await s.wait_state("stubborn", "TASK_RUNNING")
        # The shell ignores SIGTERM once it says "ready" (TASK_RUNNING may come before).
        await eventually(lambda: any(
            "ready" in p.read_text() for p in (cluster.tmp / "agent").glob(
                "slaves/*/frameworks/*/executors/stubborn/runs/*/stdout")), 15, "ready")
        status, _ = await s.call({"type": "KILL", "kill": {"task_id": {"value": "stubborn"}}})
        assert status == 202
        await s.wait_state("stubborn", "TASK_KILLED", timeout=15)
        assert "TASK_KILLING" in s.states("stubborn")


async def test_executor_registration_timeout(cluster: ProcessCluster) -> None:
    cluster.agent("--executor_registration_timeout", "1secs")
    async with MiniScheduler(cluster.master.url) as s:
        task = command_task("mute", "true")
        del task["command"]
        task["executor"] = {
            "executor_id": {"value": "mute-exec"},
            "command": {"value": "sleep 60"},
        }
        await s.launch([task])
        failed = await s.wait_state("mute", "TASK_FAILED", timeout=20)
        assert failed["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
        assert failed["source"] == "SOURCE_AGENT"


async def test_pymesos_executor_driver(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    script = agent_pymesos_executor.__file__
    async with MiniScheduler(cluster.master.url) as s:
        task = command_task("echo", "unused")
        del task["command"]
        task["executor"] = {
            "executor_id": {"value": "echo-exec"},
            "command": {"value": f"{sys.executable} {script}"},
        }
        offer = await s.launch([task])
        await s.wait_state("echo", "TASK_RUNNING")

        async def send(text: str) -> None:
            status, body = await s.call({
                "type": "MESSAGE",
                "message": {"agent_id": offer["agent_id"], "executor_id": {"value": "echo-exec"},
                            "data": base64.b64encode(text.encode()).decode()},
            })
            assert status == 202, body

        # Once RUNNING is acknowledged, pymesos must have dropped the task: pong:0.
        replies: list[str] = []
        for _ in range(50):
            await send("ping")
            await s.wait_for(lambda n=len(replies): len(s.messages) > n, timeout=10)
            replies.append(base64.b64decode(s.messages[-1]["data"]).decode())
            if replies[-1] == "pong:0":
                break
            await asyncio.sleep(0.1)
        assert replies[-1] == "pong:0", replies
        assert s.messages[-1]["executor_id"]["value"] == "echo-exec"
        await send("finish")
        await s.wait_state("echo", "TASK_FINISHED")
        state = json.loads(await _get(agent.url + "/state"))
        [fw] = state["frameworks"]
        assert fw["executors"][0]["id"] == "echo-exec"


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


async def test_agent_restart_reattaches_live_executor(cluster: ProcessCluster) -> None:
    port = free_port()
    agent = cluster.agent(port=port)
    async with MiniScheduler(cluster.master.url, checkpoint=True, auto_ack=False) as s:
        await s.launch([command_task("long", "sleep 120")])
        starting = await s.wait_state("long", "TASK_STARTING")
        pid = (await executor_pids(agent))["long"]
        agent.kill()  # SIGKILL: no chance to clean up
        assert pid_alive(pid)
        agent = cluster.agent(port=port)
        # Same process re-attached, and the unacknowledged update is sent again.
        await s.wait_for(lambda: len([u for u in s.updates if u["uuid"] == starting["uuid"]]) >= 2)
        assert (await executor_pids(agent))["long"] == pid
        for u in list(s.updates):
            await s.acknowledge(u)
        s.auto_ack = True
        await s.acknowledge(await s.wait_state("long", "TASK_RUNNING"))
        # The master still knows the task on the re-registered agent.
        master_state = json.loads(await _get(cluster.master.url + "/master/state"))
        tasks = [t for f in master_state["frameworks"] for t in f["tasks"]]
        assert [t["state"] for t in tasks if t["id"] == "long"] == ["TASK_RUNNING"]
        # And it is still controllable through the new agent.
        await s.call({"type": "KILL", "kill": {"task_id": {"value": "long"}}})
        killed = await s.wait_state("long", "TASK_KILLED", timeout=20)
        await s.acknowledge(killed)
    assert not pid_alive(pid) or await _gone(pid)


async def _gone(pid: int) -> bool:
    with contextlib.suppress(TimeoutError):
        return bool(await eventually(lambda: not pid_alive(pid), 10, f"pid {pid} gone"))
    return False


async def test_recover_cleanup_kills_old_executors(cluster: ProcessCluster) -> None:
    port = free_port()
    agent = cluster.agent(port=port)
    async with MiniScheduler(cluster.master.url, checkpoint=True) as s:
        await s.launch([command_task("victim", "sleep 120")])
        await s.wait_state("victim", "TASK_RUNNING")
        pid = (await executor_pids(agent))["victim"]
        agent.kill()
        assert pid_alive(pid)
        done = subprocess.run(
            [*MEZZO, "agent", "--master", cluster.master.address, "--ip", "127.0.0.1",
             "--port", str(port), "--work_dir", str(cluster.tmp / "agent"), "--recover",
             "cleanup"], capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert await _gone(pid)


async def test_non_checkpointing_executors_do_not_outlive_the_agent(cluster: ProcessCluster) -> None:
    port = free_port()
    agent = cluster.agent(port=port)
    async with MiniScheduler(cluster.master.url, checkpoint=False) as s:
        await s.launch([command_task("ephemeral", "sleep 120")])
        await s.wait_state("ephemeral", "TASK_RUNNING")
        pid = (await executor_pids(agent))["ephemeral"]
        agent.kill()
        cluster.agent(port=port)
        assert await _gone(pid)
