"""Real isolation: cgroups memory/cpu/pids limits, the pid namespace, cgroup cleanup, recovery.

Each test uses its own cgroups root (``mezzo-test-<pid>-<n>``) so concurrent test runs and
agents never see each other's cgroups; the fixture removes it. Tests skip, with the detected
reason, when the machine cannot provide an isolator.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

import psutil
import pytest

from mezzo.agent.containerizer import (
    REASON_CONTAINER_LIMITATION_MEMORY,
    ContainerConfig,
    Containerizer,
    IsolationOptions,
)
from mezzo.agent.containerizer.isolators.cgroupfs import (
    Cgroup,
    find_hierarchy,
    list_container_cgroups,
)
from mezzo.agent.launch import DEFAULT_COMMAND_EXECUTOR
from mezzo.core.errors import ConfigError
from mezzo.executor.testing import FakeAgent, command_task
from mezzo.testing.processes import is_live
from tests.test_containerizer import launch_in_dying_agent, until

pytestmark = pytest.mark.cgroups
_counter = itertools.count()


@pytest.fixture
def cgroups_root() -> str:
    root = f"mezzo-test-{os.getpid()}-{next(_counter)}"
    yield root
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        try:
            h = find_hierarchy(controller)
        except Exception:
            continue
        for leftover in list_container_cgroups(h, root):
            cg = Cgroup(h, root, leftover)
            cg.kill_all()
            cg.remove()
        if (h.mount / root).exists():
            (h.mount / root).rmdir()


async def make(isolation: str, root: str, **options: object) -> Containerizer:
    try:
        return Containerizer.create(
            IsolationOptions(isolation=isolation, cgroups_root=root, **options)
        )
    except ConfigError as e:
        pytest.skip(str(e))


def cgroup_dir(controller: str, root: str, container_id: str) -> Path:
    return find_hierarchy(controller).mount / root / container_id


async def test_a_forked_command_executor_runs_inside_its_cgroups_from_the_start(
    cgroups_root: str, tmp_path: Path
) -> None:
    """The fork server's child is held at the barrier until its cgroups hold it."""
    c = await make("cgroups/cpu,cgroups/mem,cgroups/pids", cgroups_root)
    try:
        task = command_task("t1", "cat /proc/$PPID/cgroup")  # the executor's cgroups
        async with FakeAgent(launch_on_subscribe=[task]) as agent:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **agent.executor_env()}
            config = ContainerConfig(sandbox=tmp_path, argv=DEFAULT_COMMAND_EXECUTOR, env=env,
                                     cpus=1, mem_mb=64, fork_server=True)
            pid = await c.launch("c1", config)
            assert "--fork-server" in " ".join(psutil.Process(pid).parent().cmdline())
            assert (await c.wait("c1")).exit_code == 0
        assert agent.states()[-1] == "TASK_FINISHED"
        lines = (tmp_path / "stdout").read_text().splitlines()
        for controller in ("cpu", "memory", "pids"):
            assert any(
                controller in line.split(":")[1].split(",") and line.endswith(f"/{cgroups_root}/c1")
                for line in lines
            ), (controller, lines)
    finally:
        c.launcher.close()


async def test_process_runs_inside_its_cgroups_from_the_start(
    cgroups_root: str, tmp_path: Path
) -> None:
    c = await make("cgroups/cpu,cgroups/mem,cgroups/pids", cgroups_root)
    # The command itself prints its cgroups: proof it was placed before it ran.
    config = ContainerConfig(sandbox=tmp_path, argv=["cat", "/proc/self/cgroup"], cpus=1, mem_mb=64)
    await c.launch("c1", config)
    assert (await c.wait("c1")).exit_code == 0
    lines = (tmp_path / "stdout").read_text().splitlines()
    for controller in ("cpu", "memory", "pids"):
        assert any(
            controller in line.split(":")[1].split(",") and line.endswith(f"/{cgroups_root}/c1")
            for line in lines
        ), (controller, lines)
    # Cleanup removed the container's cgroups.
    for controller in ("cpu", "memory", "pids"):
        assert not cgroup_dir(controller, cgroups_root, "c1").exists()


async def test_memory_breach_is_a_memory_limitation(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("cgroups/mem", cgroups_root)
    hog = "chunks = []\nwhile True: chunks.append(b'x' * (8 << 20))"  # touches every page
    config = ContainerConfig(sandbox=tmp_path, argv=[sys.executable, "-c", hog], mem_mb=64)
    await c.launch("hog", config)
    termination = await c.wait("hog")
    assert termination.limitation is not None, termination
    assert termination.limitation.reason == REASON_CONTAINER_LIMITATION_MEMORY
    assert termination.limitation.resources == {"mem": 64.0}
    assert termination.message.startswith("Memory limit exceeded: Requested: 64MB")
    assert termination.signal == 9
    assert not cgroup_dir("memory", cgroups_root, "hog").exists()


async def test_memory_limit_and_usage_are_reported(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("posix/cpu,cgroups/mem", cgroups_root)
    config = ContainerConfig(sandbox=tmp_path, shell="echo ready; exec sleep 30", mem_mb=100)
    await c.launch("m", config)
    # Memory is charged to the cgroup once the command runs in it (not at fork).
    await until(lambda: (tmp_path / "stdout").read_text() == "ready\n", what="command to run")
    stats = await c.usage("m")
    assert stats.mem_limit_bytes == 100 * 1024 * 1024
    assert stats.mem_total_bytes is not None and stats.mem_total_bytes > 0
    assert stats.processes == 1  # from posix/cpu, merged
    await c.update("m", mem_mb=200)
    assert (await c.usage("m")).mem_limit_bytes == 200 * 1024 * 1024
    await c.destroy("m")


async def test_cpu_shares_and_quota_are_written(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("cgroups/cpu", cgroups_root)
    await c.launch("q", ContainerConfig(sandbox=tmp_path, argv=["sleep", "30"], cpus=0.5))
    d = cgroup_dir("cpu", cgroups_root, "q")
    if find_hierarchy("cpu").version == 1:
        assert (d / "cpu.shares").read_text().strip() == "512"
        assert (d / "cpu.cfs_quota_us").read_text().strip() == "50000"
        await c.update("q", cpus=2)
        assert (d / "cpu.cfs_quota_us").read_text().strip() == "200000"
    else:
        assert (d / "cpu.max").read_text().split() == ["50000", "100000"]
    await c.destroy("q")


async def test_cfs_can_be_disabled(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("cgroups/cpu", cgroups_root, cgroups_enable_cfs=False)
    await c.launch("q", ContainerConfig(sandbox=tmp_path, argv=["sleep", "30"], cpus=0.5))
    d = cgroup_dir("cpu", cgroups_root, "q")
    if find_hierarchy("cpu").version == 1:
        assert (d / "cpu.cfs_quota_us").read_text().strip() == "-1"
    await c.destroy("q")


@pytest.mark.slow
async def test_cfs_quota_holds_a_busy_loop_to_half_a_core(
    cgroups_root: str, tmp_path: Path
) -> None:
    c = await make("cgroups/cpu", cgroups_root)
    config = ContainerConfig(sandbox=tmp_path, shell="while :; do :; done", cpus=0.5)
    await c.launch("busy", config)
    loop = asyncio.get_running_loop()
    before, t0 = await c.usage("busy"), loop.time()
    await asyncio.sleep(1.5)  # the measurement window itself, not a synchronization
    after, t1 = await c.usage("busy"), loop.time()
    await c.destroy("busy")
    used = (after.cpus_user_time_secs + after.cpus_system_time_secs) - (
        before.cpus_user_time_secs + before.cpus_system_time_secs
    )
    share = used / (t1 - t0)
    # The quota is a ceiling: only the upper bound and the throttling are guarantees. How much
    # of its half core the loop gets depends on what else the machine runs, so the lower bound
    # only checks that the loop ran at all.
    assert 0.02 <= share <= 0.7, f"busy loop used {share:.2f} cores under a 0.5 cpu quota"
    if share >= 0.4:
        # It reached its quota in some periods, so the kernel must have throttled it; on a
        # loaded machine it may never get that far, and then nothing is throttled.
        assert after.cpus_nr_throttled and after.cpus_nr_throttled > 0


async def test_pids_limit_stops_forks(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("cgroups/pids", cgroups_root)
    forker = (
        "import os, time\n"
        "ok = failed = 0\n"
        "for _ in range(10):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        failed += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    ok += 1\n"
        "print(ok, failed, flush=True)\n"
        "time.sleep(30)\n"
    )
    config = ContainerConfig(sandbox=tmp_path, argv=[sys.executable, "-c", forker], pids_max=4)
    await c.launch("p", config)
    await until(lambda: (tmp_path / "stdout").read_text() != "", timeout=10, what="fork report")
    ok, failed = map(int, (tmp_path / "stdout").read_text().split())
    assert ok <= 3 and failed >= 7 and ok + failed == 10
    stats = await c.usage("p")
    assert stats.pids_limit == 4 and stats.pids_current is not None and stats.pids_current <= 4
    await c.destroy("p")


async def test_cgroup_cleanup_kills_processes_that_left_the_session(
    cgroups_root: str, tmp_path: Path
) -> None:
    c = await make("cgroups/pids", cgroups_root)
    # `setsid` moves the sleeper out of the container's session: only the cgroup still holds it.
    script = "setsid sleep 100 & echo started; sleep 100"
    pid = await c.launch("escapee", ContainerConfig(sandbox=tmp_path, shell=script))
    await until(lambda: (tmp_path / "stdout").read_text() == "started\n", what="started")
    procs = cgroup_dir("pids", cgroups_root, "escapee") / "cgroup.procs"

    def escapees() -> list[int]:
        return [p for p in map(int, procs.read_text().split()) if _sid(p) not in (pid, None)]

    await until(lambda: bool(escapees()), what="a process outside the session")
    members = [*escapees(), pid]
    await c.destroy("escapee")
    await until(lambda: not any(is_live(m) for m in members), what="escapee to die")
    assert not cgroup_dir("pids", cgroups_root, "escapee").exists()


async def test_pid_namespace_makes_the_command_pid_1(cgroups_root: str, tmp_path: Path) -> None:
    c = await make("namespaces/pid", cgroups_root)
    await c.launch(
        "ns", ContainerConfig(sandbox=tmp_path, shell="echo $$; ls /proc | grep -c '^[0-9]'")
    )
    termination = await c.wait("ns")
    assert termination.exit_code == 0, (tmp_path / "stderr").read_text()
    pid_in_ns, visible = (tmp_path / "stdout").read_text().split()
    assert pid_in_ns == "1"
    assert int(visible) <= 3  # its own /proc shows only the container (sh, ls, grep)
    # Destroying the container tears down the namespace, children included.
    host_pid = await c.launch(
        "ns2", ContainerConfig(sandbox=tmp_path / "b", shell="sleep 100 & wait")
    )
    await until(
        lambda: len(psutil.Process(host_pid).children(recursive=True)) >= 2, what="ns children"
    )
    tree = [host_pid, *(p.pid for p in psutil.Process(host_pid).children(recursive=True))]
    await c.destroy("ns2")
    await until(lambda: not any(is_live(p) for p in tree), what="namespace to die")


async def test_recover_readopts_cgroups_of_a_live_container(
    cgroups_root: str, tmp_path: Path
) -> None:
    isolation = "cgroups/cpu,cgroups/mem"
    await make(isolation, cgroups_root)  # skips if unavailable
    pid = await launch_in_dying_agent(isolation, cgroups_root, tmp_path)
    try:
        c = await make(isolation, cgroups_root)
        await c.recover([("survivor", pid)])
        stats = await c.usage("survivor")
        assert stats.mem_limit_bytes == 64 * 1024 * 1024
        assert stats.cpus_user_time_secs is not None
        await c.destroy("survivor")
        await until(lambda: not is_live(pid), what="recovered process to die")
        assert not cgroup_dir("memory", cgroups_root, "survivor").exists()
    finally:
        if is_live(pid):
            os.kill(pid, 9)


async def test_recover_cleans_up_orphans_when_asked(cgroups_root: str, tmp_path: Path) -> None:
    isolation = "cgroups/pids"
    await make(isolation, cgroups_root)
    pid = await launch_in_dying_agent(isolation, cgroups_root, tmp_path)
    try:
        c = await make(isolation, cgroups_root, cleanup_orphans=True)
        await c.recover([])
        await until(lambda: not is_live(pid), what="orphan to be killed")
        assert not cgroup_dir("pids", cgroups_root, "survivor").exists()
    finally:
        if is_live(pid):
            os.kill(pid, 9)


def test_unavailable_isolator_is_a_one_line_config_error(cgroups_root: str) -> None:
    try:
        find_hierarchy("memory")
    except Exception as e:
        pytest.skip(f"no memory hierarchy: {e}")
    # A root below a control file cannot be created: the isolator is unavailable, and says why.
    options = IsolationOptions(isolation="cgroups/mem", cgroups_root="cgroup.procs/x")
    with pytest.raises(ConfigError) as info:
        Containerizer.create(options)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("--isolation: isolator 'cgroups/mem' is unavailable here: ")
    assert "cannot create cgroup" in message


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
