"""The logrotate container logger end to end: a real agent (`--container_logger`), a real
command executor and task, and `mezzo logs --follow` reading across rotations."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from test_sdk_scheduler_support import MEZZO

from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

pytestmark = pytest.mark.slow

PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNKS, LINES = 5, 300  # 5 bursts of 3,000 bytes (< one page: one rotation at most each)
# Bursts 1.5 s apart: `mezzo logs --follow` polls every 0.5 s, so it sees every rotation.
TASK = (
    f"for c in $(seq 0 {CHUNKS - 1}); do "
    f"for i in $(seq 0 {LINES - 1}); do printf '%04d-%04d\\n' $c $i; done; sleep 1.5; done"
)


def expected() -> str:
    return "".join(f"{c:04d}-{i:04d}\n" for c in range(CHUNKS) for i in range(LINES))


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    args = [
        "--container_logger=org_apache_mesos_LogrotateContainerLogger",
        f"--max_stdout_size={PAGE}B",
        "--logrotate_stdout_options=rotate 1",
    ]
    spec = ClusterSpec(agents=1, agent_resources="cpus:2;mem:1024;disk:1024", agent_args=args)
    with LocalCluster(spec) as c:
        c.wait_for_agents(1, 30)
        yield c


def test_rotated_output_is_bounded_and_followed(cluster: LocalCluster) -> None:
    runner = subprocess.Popen(
        [*MEZZO, "run", "--master", cluster.master_address, "--", TASK],
        stdout=subprocess.DEVNULL,
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
        match = re.search(r"launched task (\S+) on agent", "".join(lines))
        assert match, lines
        follow = subprocess.run(
            [*MEZZO, "logs", "--master", cluster.master_address, "--follow", match.group(1)],
            capture_output=True, text=True, timeout=120,
        )
        assert follow.returncode == 0, follow.stderr
        assert follow.stdout == expected()  # every line, once, in order, across rotations
        runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    work_dir = cluster.work_dir
    sandboxes = [p for p in work_dir.rglob("stdout") if "runs" in p.parts]
    assert len(sandboxes) == 1
    sandbox = sandboxes[0].parent
    names = sorted(p.name for p in sandbox.glob("stdout*"))
    assert names == ["stdout", "stdout.1"]
    assert all((sandbox / n).stat().st_size <= PAGE for n in names)
    deadline = time.monotonic() + 10
    while not expected().endswith((sandbox / "stdout").read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
