"""Containerizer with real processes: sessions, sandbox files, exit statuses, destroy, recover.

The cgroups/namespace features are in test_containerizer_isolation.py. Every test cleans up the
processes it starts; features the machine cannot provide are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
import textwrap
from collections.abc import Callable
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
    Limitation,
    create_isolators,
    paths,
)
from mezzo.core.errors import ConfigError, NotFoundError, ValidationError
from mezzo.testing.processes import eventually, is_live

ROOT = Path(__file__).resolve().parent.parent


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    return await eventually(predicate, timeout, what)


@pytest.fixture
async def posix() -> Containerizer:
    c = Containerizer.create(IsolationOptions(isolation="posix/cpu,posix/mem"))
    yield c
    for cid in c.containers():
        await c.destroy(cid)


async def test_own_session_and_process_group(posix: Containerizer, tmp_path: Path) -> None:
    pid = await posix.launch("c1", ContainerConfig(sandbox=tmp_path, argv=["sleep", "30"]))
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) == pid
    assert os.getsid(pid) != os.getsid(0)
    assert posix.containers() == ["c1"]
    termination = await posix.destroy("c1")
    assert termination.signal == 9
    assert termination.message == "Container destroyed"
    assert posix.containers() == []


async def test_sandbox_is_cwd_and_holds_stdout_stderr(posix: Containerizer, tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    config = ContainerConfig(
        sandbox=sandbox, shell="pwd; echo to-err >&2; echo $GREETING", env={"GREETING": "hi"}
    )
    await posix.launch("c1", config)
    termination = await posix.wait("c1")
    assert termination.exit_code == 0
    assert (sandbox / "stdout").read_text() == f"{sandbox}\nhi\n"
    assert (sandbox / "stderr").read_text() == "to-err\n"
    # Appended, never truncated: a second run in the same sandbox keeps the first output.
    await posix.launch("c2", ContainerConfig(sandbox=sandbox, argv=["echo", "again"]))
    await posix.wait("c2")
    assert (sandbox / "stdout").read_text().endswith("hi\nagain\n")


async def test_exit_status_and_signal_are_reported(posix: Containerizer, tmp_path: Path) -> None:
    await posix.launch("exit3", ContainerConfig(sandbox=tmp_path / "a", shell="exit 3"))
    await posix.launch("killed", ContainerConfig(sandbox=tmp_path / "b", shell="kill -TERM $$"))
    exited, killed = await posix.wait("exit3"), await posix.wait("killed")
    assert (exited.exit_code, exited.signal, exited.limitation) == (3, None, None)
    assert exited.message == "Container exited with status 3"
    assert (killed.exit_code, killed.signal) == (None, 15)
    assert "SIGTERM" in killed.message
    # A terminated container still answers wait(); an unknown one is NotFoundError.
    assert (await posix.wait("exit3")).exit_code == 3
    with pytest.raises(NotFoundError):
        await posix.wait("never-launched")


async def test_destroy_kills_the_whole_process_tree(posix: Containerizer, tmp_path: Path) -> None:
    # Grandchildren, including one that moved to its own process group (still in the session).
    script = "sleep 100 & (set -m; sleep 101 &) ; sleep 102 & echo started; wait"
    pid = await posix.launch("tree", ContainerConfig(sandbox=tmp_path, shell=script))
    await until(lambda: len(psutil.Process(pid).children(recursive=True)) >= 2, what="children")
    await until(lambda: (tmp_path / "stdout").read_text() == "started\n", what="started")
    members = [p.pid for p in psutil.process_iter() if _sid(p.pid) == pid]
    assert len(members) >= 4
    await posix.destroy("tree")
    await until(lambda: not any(is_live(m) for m in members), what="tree to die")


async def test_stragglers_die_with_containers_that_end_together(
    posix: Containerizer, tmp_path: Path
) -> None:
    # Each root leaves a sleep in another process group of its session, then exits; the ends
    # of containers that finish together share one scan of /proc for such stragglers.
    script = "(set -m; sleep 100 & echo $! > straggler); exit 0"
    sandboxes = [tmp_path / str(i) for i in range(3)]
    for i, sandbox in enumerate(sandboxes):
        await posix.launch(f"s{i}", ContainerConfig(sandbox=sandbox, shell=script))
    terminations = await asyncio.gather(*(posix.wait(f"s{i}") for i in range(3)))
    assert [t.exit_code for t in terminations] == [0, 0, 0]
    stragglers = [int((s / "straggler").read_text()) for s in sandboxes]
    await until(lambda: not any(is_live(p) for p in stragglers), what="stragglers to die")


async def test_destroy_with_grace_sends_sigterm_first(posix: Containerizer, tmp_path: Path) -> None:
    script = "trap 'exit 7' TERM; echo ready; sleep 100 & wait"
    await posix.launch("graceful", ContainerConfig(sandbox=tmp_path, shell=script))
    await until(lambda: (tmp_path / "stdout").read_text() == "ready\n", what="trap installed")
    termination = await posix.destroy("graceful", grace=5.0)
    assert termination.exit_code == 7


async def test_usage_samples_the_process_tree(posix: Containerizer, tmp_path: Path) -> None:
    config = ContainerConfig(sandbox=tmp_path, shell="sleep 30 & wait", cpus=0.5, mem_mb=32)
    await posix.launch("u", config)
    await until(lambda: _tree_size(posix.pid("u")) >= 2, what="child sleep")
    stats = await posix.usage("u")
    assert stats.processes == 2
    assert stats.mem_rss_bytes and stats.mem_rss_bytes > 0
    assert stats.cpus_limit == 0.5
    assert stats.mem_limit_bytes == 32 * 1024 * 1024
    assert stats.cpus_user_time_secs is not None


async def test_launch_errors(posix: Containerizer, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="cannot start"):
        await posix.launch("x", ContainerConfig(sandbox=tmp_path, argv=["/nonexistent/exe"]))
    assert posix.containers() == []
    with pytest.raises(LaunchError, match="exactly one"):
        ContainerConfig(sandbox=tmp_path, argv=["true"], shell="true")
    with pytest.raises(LaunchError, match="does not exist"):
        await posix.launch("y", ContainerConfig(sandbox=tmp_path, argv=["id"], user="no-such-u"))
    await posix.launch("z", ContainerConfig(sandbox=tmp_path, argv=["sleep", "10"]))
    with pytest.raises(LaunchError, match="already exists"):
        await posix.launch("z", ContainerConfig(sandbox=tmp_path, argv=["true"]))


async def test_rlimits_apply_before_the_command_runs(tmp_path: Path) -> None:
    c = Containerizer.create(IsolationOptions(isolation="posix/rlimits"))
    config = ContainerConfig(
        sandbox=tmp_path,
        shell="ulimit -n; ulimit -c",
        rlimits={"RLMT_NOFILE": (64, 128), "core": (0, 0)},
    )
    await c.launch("r", config)
    assert (await c.wait("r")).exit_code == 0
    assert (tmp_path / "stdout").read_text().split() == ["64", "0"]
    with pytest.raises(LaunchError, match="unknown rlimit"):
        await c.launch(
            "bad", ContainerConfig(sandbox=tmp_path, argv=["true"], rlimits={"x": (1, 1)})
        )


async def test_switches_user_when_root(posix: Containerizer, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching user needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    sandbox = tmp_path / "s"
    await posix.launch("u", ContainerConfig(sandbox=sandbox, argv=["id", "-u"], user="nobody"))
    assert (await posix.wait("u")).exit_code == 0
    assert (sandbox / "stdout").read_text().strip() == str(nobody.pw_uid)
    assert sandbox.stat().st_uid == nobody.pw_uid


RESTARTED_AGENT = textwrap.dedent(
    """
    import asyncio, sys
    from mezzo.agent.containerizer import Containerizer, ContainerConfig, IsolationOptions

    async def main():
        c = Containerizer.create(IsolationOptions(isolation=sys.argv[1], cgroups_root=sys.argv[2]))
        pid = await c.launch("survivor", ContainerConfig(sandbox=sys.argv[3], argv=["sleep", "60"],
                                                       cpus=0.5, mem_mb=64))
        print(pid, flush=True)

    asyncio.run(main())  # exits without destroying: the 'agent' dies, the container lives on
    """
)


async def launch_in_dying_agent(isolation: str, cgroups_root: str, sandbox: Path) -> int:
    """Launch a container from a separate agent process that then exits."""
    out = subprocess.run(
        [sys.executable, "-c", RESTARTED_AGENT, isolation, cgroups_root, str(sandbox)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip())


async def test_recover_reattaches_to_a_live_container(tmp_path: Path) -> None:
    isolation = "posix/cpu,posix/mem"
    pid = await launch_in_dying_agent(isolation, "mezzo", tmp_path)
    try:
        assert is_live(pid) and psutil.Process(pid).ppid() != os.getpid()
        c = Containerizer.create(IsolationOptions(isolation=isolation))
        await c.recover([("survivor", pid), ("vanished", 2**22 + 7)])
        assert c.containers() == ["survivor"]
        assert (await c.wait("vanished")).status is None
        assert (await c.usage("survivor")).processes == 1
        termination = await c.destroy("survivor")
        assert termination.status is None  # not our child: exit status unknown
        await until(lambda: not is_live(pid), what="recovered process to die")
    finally:
        if is_live(pid):
            os.kill(pid, 9)


async def test_recover_refuses_a_reused_pid(tmp_path: Path) -> None:
    c = Containerizer.create(IsolationOptions(isolation="posix/cpu"))
    # A process that is not its session's leader cannot be a container root we launched.
    proc = subprocess.Popen(["sleep", "30"])
    try:
        await c.recover([("impostor", proc.pid)])
        assert c.containers() == []
        assert "reused pid" in (await c.wait("impostor")).message
    finally:
        proc.kill()
        proc.wait()


def test_unknown_or_duplicate_isolator_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown isolator 'posix/gpu'"):
        create_isolators("posix/cpu,posix/gpu")
    with pytest.raises(ConfigError, match="listed twice"):
        create_isolators("posix/cpu,posix/cpu")
    assert [i.name for i in create_isolators()] == ["posix/cpu", "posix/mem"]


def test_paths_layout(tmp_path: Path) -> None:
    sandbox = paths.create_sandbox(tmp_path, "A1", "F1", "E1", "C1")
    assert sandbox == tmp_path / "slaves/A1/frameworks/F1/executors/E1/runs/C1"
    assert (sandbox.parent / "latest").resolve() == sandbox
    paths.create_sandbox(tmp_path, "A1", "F1", "E1", "C2")
    assert (sandbox.parent / "latest").resolve().name == "C2"
    assert paths.task_updates_path(tmp_path, "A1", "F1", "E1", "C1", "T1") == (
        tmp_path / "meta/slaves/A1/frameworks/F1/executors/E1/runs/C1/tasks/T1/task.updates"
    )
    assert paths.forked_pid_path(tmp_path, "A1", "F1", "E1", "C1").parts[-2:] == (
        "pids",
        "forked.pid",
    )
    for bad in ["", "..", "a/b"]:
        with pytest.raises(ValidationError):
            paths.sandbox_dir(tmp_path, "A1", "F1", bad, "C1")


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _tree_size(pid: int) -> int:
    try:
        return 1 + len(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return 0


class _FailingIsolator(Isolator):
    name = "test/failing"
    isolates_before_exec = True

    def __init__(self) -> None:
        self.cleaned: list[str] = []

    def isolate(self, container_id: str, pid: int) -> None:
        raise OSError("no cgroup for you")

    def cleanup(self, container_id: str) -> None:
        self.cleaned.append(container_id)


async def test_failed_isolation_never_runs_the_command(tmp_path: Path) -> None:
    failing = _FailingIsolator()
    c = Containerizer([failing])
    config = ContainerConfig(sandbox=tmp_path, shell="touch ran")
    with pytest.raises(LaunchError, match=r"failed to isolate container c \(test/failing\)"):
        await c.launch("c", config)
    assert failing.cleaned == ["c"]
    assert not (tmp_path / "ran").exists()
    assert c.containers() == []


class _LimitingIsolator(Isolator):
    """Reports a limitation when the test says so (what a cgroup's OOM or a disk quota does)."""

    name = "test/limiting"

    def __init__(self) -> None:
        self.watches: dict[str, asyncio.Future[Limitation]] = {}

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        future = self.watches[container_id] = asyncio.get_running_loop().create_future()
        return future


async def test_a_limitation_with_a_listener_is_reported_and_the_owner_destroys(tmp_path: Path) -> None:
    isolator = _LimitingIsolator()
    c = Containerizer([isolator])
    limit = Limitation("REASON_CONTAINER_LIMITATION_DISK", "Disk usage exceeds quota")
    # Without a listener the containerizer kills a limited container itself.
    alone = await c.launch("alone", ContainerConfig(sandbox=tmp_path, argv=["sleep", "30"]))
    await until(lambda: "alone" in isolator.watches, what="alone watched")
    isolator.watches["alone"].set_result(limit)
    ended = await asyncio.wait_for(c.wait("alone"), 10)
    assert ended.limitation == limit and not is_live(alone)
    # With one, it is told and the container runs on until its owner destroys it.
    reported: list[Limitation] = []
    pid = await c.launch("owned", ContainerConfig(sandbox=tmp_path, argv=["sleep", "30"]))
    c.on_limitation("owned", reported.append)
    await until(lambda: "owned" in isolator.watches, what="owned watched")
    isolator.watches["owned"].set_result(limit)
    await until(lambda: reported == [limit], what="limitation reported")
    assert is_live(pid) and c.containers() == ["owned"]
    termination = await asyncio.wait_for(c.destroy("owned"), 10)
    assert termination.limitation == limit
    assert termination.message == "Disk usage exceeds quota"
    assert not is_live(pid)
    with pytest.raises(NotFoundError):
        c.on_limitation("owned", reported.append)
