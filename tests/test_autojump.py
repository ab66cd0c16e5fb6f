"""The autojump event loop (`mezzo.testing.autojump`): timers happen in virtual time, in order,
while real I/O still arrives; and the agent's asyncio shell on it, with a real containerizer:
a 60 s executor registration timeout runs its course without waiting a minute."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

from mezzo.agent.agent import Agent
from mezzo.agent.containerizer import Containerizer
from mezzo.agent.events import RecoverCheckpoint
from mezzo.agent.flags import AgentFlags
from mezzo.agent.state import ExecutorPhase
from mezzo.api.common import (
    AgentID,
    AgentInfo,
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    TaskID,
    TaskInfo,
)
from mezzo.core.clock import FakeClock
from mezzo.resources import Resources
from mezzo.testing.autojump import run_autojump


def test_sleeps_jump_in_order_and_land_on_their_deadlines() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async def main() -> None:
        await asyncio.gather(sleeper("hour", 3600), sleeper("minute", 60), sleeper("day", 86400))
        try:
            await asyncio.wait_for(asyncio.sleep(100), 30)
        except TimeoutError:
            woke.append(("timeout", clock.monotonic()))

    run_autojump(main(), clock)
    assert woke == [("minute", 60.0), ("hour", 3600.0), ("day", 86400.0),
                    ("timeout", 86430.0)]


def test_real_io_is_not_skipped() -> None:
    clock = FakeClock()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def main() -> str:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with ClientSession(timeout=ClientTimeout(total=30)) as s, \
                    s.get(f"http://127.0.0.1:{port}/") as r:
                return await r.text()
        finally:
            await runner.cleanup()

    assert run_autojump(main(), clock, threshold=0.05) == "hello"
    assert clock.monotonic() < 30  # answered, not timed out


def test_agent_shell_registration_timeout_in_virtual_time(tmp_path: Path) -> None:
    clock = FakeClock()
    flags = AgentFlags(work_dir=str(tmp_path), executor_registration_timeout=60.0,
                       executor_shutdown_grace_period=5.0, switch_user=False)
    info = AgentInfo(hostname="h", id=AgentID(value="A1"),
                     resources=Resources.parse("cpus:2;mem:512").to_wire())

    async def main() -> tuple[str, str, float]:
        agent = Agent(flags, Containerizer(), info, clock=clock)
        agent.checkpointer.agent(agent.info)
        agent.handle(RecoverCheckpoint(None))
        framework = FrameworkInfo(user="u", name="f", id=FrameworkID(value="fw"))
        # An executor that never subscribes.
        executor = ExecutorInfo(executor_id=ExecutorID(value="ex"),
                                command=CommandInfo(value="sleep 1000"))
        task = TaskInfo(name="t", task_id=TaskID(value="t"), agent_id=AgentID(value="A1"),
                        resources=Resources.parse("cpus:1;mem:64").to_wire())
        agent.run_task(framework, [task], executor, group=False)
        ex = agent.frameworks["fw"].executors["ex"]
        while ex.phase != ExecutorPhase.TERMINATED and clock.monotonic() < 600:
            await asyncio.sleep(1)
        status = agent.updates.head(TaskID(value="t"))
        assert status is not None
        return str(status.state), str(status.reason), clock.monotonic()

    state, reason, when = run_autojump(main(), clock, threshold=0.05)
    assert (state, reason) == ("TASK_FAILED", "REASON_EXECUTOR_REGISTRATION_TIMEOUT")
    assert 60 <= when < 600
