"""The command executor's fork server, through the containerizer, with real processes.

A container marked `fork_server` (the built-in command executor) is forked from a warm
interpreter instead of exec'd. These tests hold the fork server to the launcher's process
contract (own session, sandbox cwd and stdio, exact environment, the barrier, rlimits, user,
exit statuses), run real command executors against `FakeAgent` on loopback, and check the
fallbacks (a server that cannot start, one that died, an isolator that wraps the command).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from mezzo.agent.containerizer import (
    ContainerConfig,
    Containerizer,
    IsolationOptions,
    Isolator,
    LaunchError,
    create_isolators,
)
from mezzo.agent.launch import DEFAULT_COMMAND_EXECUTOR, DEFAULT_EXECUTOR
from mezzo.core.errors import ConfigError
from mezzo.executor.testing import FakeAgent, command_task
from mezzo.testing.processes import eventually, is_live


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    return await eventually(predicate, timeout, what)


def fork_servers(c: Containerizer) -> list[int]:
    return [s._proc.pid for s in c.launcher._fork_servers.values() if s._proc is not None]


@pytest.fixture
async def containerizer() -> AsyncIterator[Containerizer]:
    c = Containerizer.create(IsolationOptions(isolation="posix/cpu,posix/mem"))
    yield c
    for cid in c.containers():
        await c.destroy(cid)
    c.launcher.close()


def executor_config(agent: FakeAgent, sandbox: Path, **extra: object) -> ContainerConfig:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **agent.executor_env()}
    env["MESOS_SANDBOX"] = str(sandbox)
    return ContainerConfig(
        sandbox=sandbox, argv=DEFAULT_COMMAND_EXECUTOR, env=env, fork_server=True, **extra
    )


async def test_a_forked_executor_runs_its_task_as_a_container_root(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    task = command_task("t1", 'echo "$GREETING|$MESOS_EXECUTOR_ID|$(pwd)|$HOME"',
                        env={"GREETING": "hi"})
    async with FakeAgent(launch_on_subscribe=[task]) as agent:
        config = executor_config(agent, tmp_path)
        pid = await containerizer.launch("c1", config)
        assert fork_servers(containerizer), "the executor should come from the fork server"
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid
        assert psutil.Process(pid).ppid() in fork_servers(containerizer)
        termination = await containerizer.wait("c1")
    assert termination.status == 0 and termination.message == "Container exited with status 0"
    assert agent.states() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    # The task saw exactly the container's environment (no HOME: the config has none).
    out = (tmp_path / "stdout").read_text().strip()
    assert out == f"hi|{agent.executor_id}|{tmp_path}|"


async def test_the_default_executor_forks_from_its_own_server_and_runs_a_group(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    async with FakeAgent() as agent:
        config = replace(executor_config(agent, tmp_path), argv=DEFAULT_EXECUTOR)
        pid = await containerizer.launch("d1", config)
        assert psutil.Process(pid).ppid() in fork_servers(containerizer)
        await agent.wait_for(lambda: agent.connected, what="subscribed")
        tasks = [command_task("a", 'echo "a in $MESOS_SANDBOX"'), command_task("b", "pwd")]
        agent.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": tasks}}})
        assert (await containerizer.wait("d1")).status == 0  # it ends with its last task
    assert agent.states("a")[-1] == agent.states("b")[-1] == "TASK_FINISHED"
    assert (tmp_path / "tasks" / "a" / "stdout").read_text() == f"a in {tmp_path}/tasks/a\n"
    assert (tmp_path / "tasks" / "b" / "stdout").read_text() == f"{tmp_path}/tasks/b\n"


async def test_exit_statuses_come_back_through_the_server(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    # Without MESOS_* variables the executor says so on stderr and exits 1.
    config = ContainerConfig(sandbox=tmp_path, argv=DEFAULT_COMMAND_EXECUTOR,
                             env={"PATH": "/usr/bin:/bin"}, fork_server=True)
    await containerizer.launch("bad", config)
    termination = await containerizer.wait("bad")
    assert termination.status == 1 << 8, termination
    assert "missing environment: MESOS_AGENT_ENDPOINT" in (tmp_path / "stderr").read_text()
    # Killed by a signal: the raw status says so.
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 60")]) as agent:
        pid = await containerizer.launch("killed", executor_config(agent, tmp_path / "k"))
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        termination = await containerizer.destroy("killed")
        assert termination.signal == signal.SIGKILL
        assert not is_live(pid)


async def test_rlimits_and_the_barrier_apply_to_a_forked_executor(tmp_path: Path) -> None:
    c = Containerizer.create(IsolationOptions(isolation="posix/rlimits"))
    try:
        async with FakeAgent(launch_on_subscribe=[command_task("t1", "ulimit -n")]) as agent:
            config = executor_config(agent, tmp_path, rlimits={"RLMT_NOFILE": (64, 128)})
            await c.launch("r", config)
            assert fork_servers(c)
            assert (await c.wait("r")).status == 0
        assert agent.states()[-1] == "TASK_FINISHED"
        assert (tmp_path / "stdout").read_text().split() == ["64"]
    finally:
        c.launcher.close()


class _FailingIsolator(Isolator):
    name = "test/failing"
    isolates_before_exec = True

    def isolate(self, container_id: str, pid: int) -> None:
        raise OSError("no cgroup for you")


async def test_an_aborted_launch_never_runs_the_executor(tmp_path: Path) -> None:
    c = Containerizer([_FailingIsolator()])
    try:
        async with FakeAgent(launch_on_subscribe=[command_task("t1", "true")]) as agent:
            with pytest.raises(LaunchError, match="no cgroup for you"):
                await c.launch("c", executor_config(agent, tmp_path))
            assert fork_servers(c)
            await asyncio.sleep(0.2)
            assert agent.subscriptions == []  # it exited at the barrier (127), never subscribed
    finally:
        c.launcher.close()


async def test_a_forked_executor_switches_user_when_root(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching user needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "id -u; id -G")]) as agent:
        sandbox = tmp_path / "s"
        pid = await containerizer.launch("u", executor_config(agent, sandbox, user="nobody"))
        assert psutil.Process(pid).uids().real == nobody.pw_uid
        assert (await containerizer.wait("u")).status == 0
    uid, groups = (sandbox / "stdout").read_text().split("\n")[:2]
    assert int(uid) == nobody.pw_uid
    assert [int(g) for g in groups.split()] == os.getgrouplist("nobody", nobody.pw_gid)


async def test_a_server_that_cannot_start_falls_back_to_exec(tmp_path: Path) -> None:
    c = Containerizer()
    try:
        # The "fork server" of this argv prints and exits: it never says it is ready.
        config = ContainerConfig(sandbox=tmp_path, shell="echo execd", fork_server=True)
        await c.launch("c", config)
        assert (await c.wait("c")).status == 0
        assert (tmp_path / "stdout").read_text().strip().endswith("execd")
        [server] = c.launcher._fork_servers.values()
        assert server.broken is not None and "did not start" in server.broken
        await c.launch("c2", config)  # not tried again: exec'd at once
        assert (await c.wait("c2")).status == 0
    finally:
        c.launcher.close()


async def test_a_dead_server_is_replaced_and_executors_outlive_it(
    containerizer: Containerizer, tmp_path: Path
) -> None:
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 60")]) as first:
        pid = await containerizer.launch("a", executor_config(first, tmp_path / "a"))
        await first.wait_for(lambda: "TASK_RUNNING" in first.states(), what="RUNNING")
        [server] = fork_servers(containerizer)
        os.kill(server, signal.SIGKILL)
        await until(lambda: not is_live(server), what="the server's death")
        assert is_live(pid)  # the executor does not depend on its server
        async with FakeAgent(launch_on_subscribe=[command_task("t2", "true")]) as second:
            await containerizer.launch("b", executor_config(second, tmp_path / "b"))
            assert (await containerizer.wait("b")).status == 0  # forked by a new server
            assert fork_servers(containerizer) not in ([], [server])
        # The first executor's server is gone: its status is unknown, its end still seen.
        first.kill("t1")
        termination = await containerizer.wait("a")
        assert termination.status is None
        assert first.states()[-1] == "TASK_KILLED"


async def test_closing_the_launcher_stops_the_server_not_the_executors(tmp_path: Path) -> None:
    c = Containerizer()
    async with FakeAgent(launch_on_subscribe=[command_task("t1", "sleep 60")]) as agent:
        pid = await c.launch("a", executor_config(agent, tmp_path))
        await agent.wait_for(lambda: "TASK_RUNNING" in agent.states(), what="RUNNING")
        [server] = fork_servers(c)
        c.launcher.close()
        await until(lambda: not is_live(server), what="the server to exit")
        assert is_live(pid)
        agent.kill("t1")
        await until(lambda: not is_live(pid), what="the executor to exit")
        assert agent.states()[-1] == "TASK_KILLED"
        await c.wait("a")


async def test_a_wrapping_isolator_keeps_the_exec_path(tmp_path: Path) -> None:
    try:
        isolators = create_isolators("namespaces/pid")
    except ConfigError as e:
        pytest.skip(f"pid namespaces unavailable here: {e}")
    c = Containerizer(isolators)
    try:
        task = command_task("t1", "echo $$")  # pid 1's child in its own namespace
        async with FakeAgent(launch_on_subscribe=[task]) as agent:
            pid = await c.launch("ns", executor_config(agent, tmp_path))
            assert psutil.Process(pid).name() == "unshare"
            assert (await c.wait("ns")).status == 0
        assert agent.states()[-1] == "TASK_FINISHED"
        assert fork_servers(c) == []
    finally:
        c.launcher.close()
