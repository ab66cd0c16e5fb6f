"""`mezzo run` and `mezzo logs` on a real local cluster (master + one real agent running real
command executors), started by `mezzo.testing.local_cluster`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from test_sdk_scheduler_support import MEZZO

from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(ClusterSpec(agents=1, agent_resources="cpus:2;mem:1024;disk:1024")) as c:
        c.wait_for_agents(1, 30)
        yield c


def mezzo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEZZO, *args], capture_output=True, text=True, timeout=timeout)


def launched_task(stderr: str) -> str:
    match = re.search(r"launched task (\S+) on agent", stderr)
    assert match, stderr
    return match.group(1)


def test_echo_hi(cluster: LocalCluster) -> None:
    result = mezzo("run", "--master", cluster.master_address, "--", "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    assert "TASK_RUNNING" in result.stderr and "TASK_FINISHED" in result.stderr


def test_false_exits_1(cluster: LocalCluster) -> None:
    result = mezzo("run", "--master", cluster.master_address, "--", "false")
    assert result.returncode == 1, result.stderr
    assert "TASK_FAILED" in result.stderr


def test_exit_status_and_stderr_then_logs(cluster: LocalCluster) -> None:
    result = mezzo(
        "run",
        "--master",
        cluster.master_address,
        "--name",
        "three",
        "--resources",
        "cpus:0.2;mem:32",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert result.stderr.endswith("err\n")
    task_id = launched_task(result.stderr)
    assert task_id.startswith("three-")
    # The framework is gone (torn down), but its sandbox is still readable.
    logs = mezzo("logs", "--master", cluster.master_address, task_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "out\n"
    logs = mezzo("logs", "--master", cluster.master_address, "--stderr", task_id)
    assert logs.stdout.endswith("err\n")
    state = json.loads(urllib.request.urlopen(cluster.master_url + "/master/state").read())
    assert all(f["name"] != "mezzo-run" for f in state["frameworks"])


def test_logs_unknown_task(cluster: LocalCluster) -> None:
    result = mezzo("logs", "--master", cluster.master_address, "no-such-task")
    assert result.returncode == 1
    assert result.stderr == "error: no task 'no-such-task' known to the master\n"


def test_ctrl_c_kills_the_task(cluster: LocalCluster) -> None:
    proc = subprocess.Popen(
        [*MEZZO, "run", "--master", cluster.master_address, "--", "sleep", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "TASK_RUNNING" in line or not line:
                break
        task_id = launched_task("".join(lines))
        os.kill(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
        assert proc.returncode == 130, "".join(lines) + rest
        assert "TASK_KILLED" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = json.loads(urllib.request.urlopen(cluster.master_url + "/master/state").read())
    tasks = [
        t
        for f in state["frameworks"] + state["completed_frameworks"]
        for t in f.get("tasks", []) + f.get("completed_tasks", [])
        if t["id"] == task_id
    ]
    assert tasks and tasks[0]["state"] == "TASK_KILLED"


def test_follow_streams_until_the_task_ends(cluster: LocalCluster) -> None:
    runner = subprocess.Popen(
        [
            *MEZZO,
            "run",
            "--master",
            cluster.master_address,
            "--",
            "sh -c 'echo one; sleep 2; echo two'",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stderr is not None
        lines: list[str] = []
        while not any("TASK_RUNNING" in line for line in lines):
            line = runner.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        task_id = launched_task("".join(lines))
        follow = mezzo("logs", "--master", cluster.master_address, "--follow", task_id)
        assert follow.returncode == 0, follow.stderr
        assert follow.stdout == "one\ntwo\n"
        out, _ = runner.communicate(timeout=30)
        assert runner.returncode == 0 and out == "one\ntwo\n"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_run_stays_on_the_lean_path(cluster: LocalCluster, tmp_path) -> None:
    """A whole `mezzo run` (subscribe, launch, updates, output, teardown) imports none of the
    asyncio SDK's stack: its start-up time is the user's wait (bench/cli.py has the figures)."""
    report = tmp_path / "modules.json"
    probe = (
        "import json, os, sys, atexit\n"
        f"atexit.register(lambda: open({str(report)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "os._exit = sys.exit  # `mezzo run` ends with os._exit, which skips atexit\n"
        "from mezzo.cli.main import main\n"
        "sys.argv = ['mezzo', *sys.argv[1:]]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "run", "--master", cluster.master_address, "--", "echo", "lean"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "lean\n"
    modules = json.loads(report.read_text())
    heavy = ("aiohttp", "asyncio", "msgspec", "mezzo.api", "mezzo.scheduler", "mezzo.resources",
             "http.client", "rich", "click")
    assert [m for m in modules if m.split(".")[0] in heavy or m.startswith(heavy)] == []
