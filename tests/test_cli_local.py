"""`mezzo local`: starts a master and N agents, prints their addresses, and SIGTERM / Ctrl-C
stops every process it started, including tasks still running on the agents."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from mezzo.cli.main import cli
from mezzo.frameworks.common import CommonOptions
from mezzo.frameworks.service import ServiceFramework
from mezzo.testing.local_cluster import MEZZO_ARGV
from mezzo.testing.processes import is_live

pytestmark = pytest.mark.slow


def _read_master(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("master"):
            return line.split()[1]
    raise AssertionError(f"no master line; exit {proc.poll()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_local_starts_agents_and_stops_everything(sig: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [*MEZZO_ARGV, "local", "--agents", "2", "--port", "0", "--work_dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    descendants: list[psutil.Process] = []
    try:
        url = _read_master(proc, time.monotonic() + 30)
        with urllib.request.urlopen(f"{url}/master/state", timeout=5) as r:
            state = json.loads(r.read())
        assert len(state["slaves"]) == 2
        assert {a["attributes"]["host"] for a in state["slaves"]} == {"agent-1", "agent-2"}
        # Leave long-running tasks behind (failover: no teardown), as a crashed framework would.
        fw = ServiceFramework(
            CommonOptions(
                master=url.removeprefix("http://"), name="svc", cpus=0.1, mem=32, quiet=True
            ),
            instances=2,
            command="sleep 300",
            duration=3.0,
        )
        await fw.run(failover=True)
        assert fw.planner.running == 2
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert any("sleep" in " ".join(p.cmdline()) for p in descendants if p.is_running())
        proc.send_signal(sig)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    alive = [p for p in descendants if is_live(p)]
    assert alive == []
    assert (tmp_path / "agent-1").is_dir() and (tmp_path / "master").is_dir()


def test_local_help_lists_the_options() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["local", "--help"])
    assert result.exit_code == 0
    for option in ("--agents", "--work_dir", "--port", "--agent-resources"):
        assert option in result.output
    assert sys.executable  # the command runs agents with this interpreter


def test_local_agents_get_disjoint_port_ranges_below_the_ephemeral_ports() -> None:
    from mezzo.testing.local_cluster import ephemeral_port_start, ports_span_for

    start = ephemeral_port_start()
    for agents in (1, 3, 15):
        span = ports_span_for(agents, 31000)
        assert span >= 1 and 31000 + agents * span <= max(start, 32768)
    assert ports_span_for(1, 31000) == min(1000, start - 31000)
