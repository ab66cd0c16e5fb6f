"""Faults with real processes: a `mezzo master` and a `mezzo agent` subprocess, a v1 scheduler
over loopback HTTP. Each case checks that the framework hears about every task on its normal
stream, without reconciling."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.agent.containerizer.paths import latest_agent_path
from mezzo.testing.agent_harness import (
    MiniScheduler,
    ProcessCluster,
    command_task,
    free_port,
)

pytestmark = pytest.mark.slow



@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:1;mem:256", "--recover", "reconnect") as c:
        yield c


async def test_launch_lost_with_the_agents_stream_gets_task_lost(cluster: ProcessCluster) -> None:
    """The race of issue 9: the LAUNCH goes out on an agent stream that breaks, the agent
    re-registers without the task. The master asks the agent about it; the agent does not
    know it and answers TASK_LOST, reliably, on the framework's stream."""
    port = free_port()
    agent = cluster.agent(port=port)
    async with MiniScheduler(cluster.master.url, checkpoint=True) as s:
        await s.wait_for(lambda: s.offers)
        # The agent has checkpointed the id the master gave it (so that it re-registers).
        await poll(lambda: asyncio.sleep(0, latest_agent_path(cluster.tmp / "agent").exists()))
        # The agent stops reading: the RUN_TASK lands in its socket buffer (or, if the master
        # writes after the kill below, on a dead socket); either way the agent never sees it.
        os.kill(agent.pid, signal.SIGSTOP)
        await s.launch([command_task("ghost", "sleep 60")])
        agent.kill()  # SIGKILL, buffer and all
        cluster.agent(port=port)  # same work_dir: re-registers with its id and no task
        lost = await s.wait_state("ghost", "TASK_LOST")
        assert (lost["source"], lost["reason"]) == ("SOURCE_AGENT", "REASON_RECONCILIATION")
        assert "uuid" in lost  # reliable: retried by the agent until acknowledged
        assert s.states("ghost") == ["TASK_LOST"]
        # Its resources are free again, and the task is among the completed ones.
        async def settled() -> bool:
            state = await get_json(cluster.master.url + "/master/state")
            [framework] = state["frameworks"]
            return (state["slaves"][0]["used_resources"]["cpus"] == 0
                    and [t["state"] for t in framework["completed_tasks"]] == ["TASK_LOST"])

        await poll(settled)


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.json()


async def poll(check, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
