"""`mezzo exec` end to end: a real master and agent, a running command task, the CLI as a
subprocess, piped (stdin from a pipe) and interactive (the CLI on a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mezzo.testing.agent_harness import (
    MEZZO,
    MiniScheduler,
    ProcessCluster,
    command_task,
    default_executor,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096") as c:
        yield c


async def start_task(cluster: ProcessCluster) -> MiniScheduler:
    cluster.agent()
    s = MiniScheduler(cluster.master.url)
    await s.__aenter__()
    await s.launch([command_task("svc", "echo started > marker; sleep 300")])
    await s.wait_state("svc", "TASK_RUNNING")
    return s


def mezzo_exec(cluster: ProcessCluster, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*MEZZO, "exec", "--master", cluster.master.address, *args],
                          input=stdin, capture_output=True, timeout=60, check=False)


async def test_piped_exec_propagates_output_stdin_and_exit_status(cluster: ProcessCluster) -> None:
    s = await start_task(cluster)
    try:
        # The command runs in the task's sandbox: it sees the file the task wrote.
        done = mezzo_exec(cluster, "svc", "--", "sh", "-c",
                          "cat marker; tr a-z A-Z; echo oops >&2; exit 5", stdin=b"piped input\n")
        assert done.returncode == 5, done.stderr
        assert done.stdout == b"started\nPIPED INPUT\n"
        assert done.stderr == b"oops\n"
        # A signal ends it: 128 + the signal, as a shell reports it.
        done = mezzo_exec(cluster, "--no-stdin", "svc", "--", "sh", "-c", "kill -TERM $$")
        assert done.returncode == 128 + 15
        # An unknown task, a bad command: one line, exit 1.
        done = mezzo_exec(cluster, "nope", "--", "true")
        assert done.returncode == 1 and b"no task 'nope'" in done.stderr
        done = mezzo_exec(cluster, "svc", "--", "/no/such/program")
        assert done.returncode != 0
    finally:
        await s.__aexit__(None, None, None)


async def test_interactive_exec_with_a_tty(cluster: ProcessCluster) -> None:
    s = await start_task(cluster)
    try:
        pid, fd = pty.fork()
        if pid == 0:  # the CLI, on a terminal
            os.execvp(MEZZO[0], [*MEZZO, "exec", "-t", "--master", cluster.master.address,
                                 "svc", "--", "sh", "-c",
                                 "test -t 0 && echo ON-A-TTY; read line; echo got:$line; exit 9"])
        output = b""
        deadline = time.monotonic() + 60
        sent = False
        status = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                output += chunk
                if not chunk:
                    break
            if b"ON-A-TTY" in output and not sent:
                os.write(fd, b"hello\r")
                sent = True
            waited, st = os.waitpid(pid, os.WNOHANG)
            if waited:
                status = st
                break
        if status is None:
            _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert b"ON-A-TTY" in output, output
        assert b"got:hello" in output, output
        assert os.WEXITSTATUS(status) == 9, output
    finally:
        await s.__aexit__(None, None, None)


async def test_exec_into_a_task_of_a_group(cluster: ProcessCluster) -> None:
    """A task of the default executor: its container is named by its status updates (a child
    of the executor's), and the command runs in that task's own sandbox."""
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        task = command_task("member", "echo mine > own; sleep 300")
        task["resources"].append({"name": "disk", "type": "SCALAR", "scalar": {"value": 10}})
        await s.launch_group([(default_executor("pod"), [task])])
        update = await s.wait_state("member", "TASK_RUNNING")
        assert "parent" in update["container_status"]["container_id"]
        done = mezzo_exec(cluster, "--no-stdin", "member", "--", "sh", "-c", "pwd; cat own; exit 2")
        assert done.returncode == 2, done.stderr
        lines = done.stdout.decode().splitlines()
        assert lines[0].endswith("/tasks/member") and lines[1] == "mine"
