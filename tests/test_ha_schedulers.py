"""HA for frameworks: a standby scheduler takes over (the example `service` framework), and
unmodified pymesos given a `zk://` master URL follows the leading master through a failover."""

from __future__ import annotations

import asyncio
import getpass
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.election.zookeeper import ZooKeeperDetector
from mezzo.testing import agent_harness
from mezzo.testing.ha_cluster import ROOT, FollowingEmulatedAgent, HaCluster, until
from mezzo.testing.pytest_zookeeper import ZkChroot

pytestmark = [pytest.mark.slow, pytest.mark.zookeeper]

DEADLINE = 30.0


class Output:
    """A child's stdout collected line by line on a thread (so the test can wait for a line)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        import threading

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

        threading.Thread(target=read, daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def start_service(zk: str, state_file: Path, *extra: str) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mezzo.frameworks.service", "--master", zk, "--instances", "2",
         "--duration", "0", "--failover-timeout", "120", "--state-file", str(state_file),
         "--command", "exec sleep 600", "--cpus", "0.1", "--mem", "32", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )
    return proc, Output(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def cluster(zk_chroot: ZkChroot, tmp_path: Path) -> Iterator[HaCluster]:
    ha = HaCluster(zk_chroot.url, 2, work_dir=tmp_path, session_timeout="2secs")
    try:
        ha.start()
        yield ha
    finally:
        ha.close()


def test_standby_service_scheduler_takes_over(cluster: HaCluster, tmp_path: Path) -> None:
    leader = cluster.wait_leader()
    agent = agent_harness.start_agent(
        tmp_path, cluster.zk, "--resources", "cpus:2;mem:1024;disk:1024;ports:[31000-31100]")
    state_file = tmp_path / "service.fid"
    procs: list[subprocess.Popen[str]] = []
    try:
        active, _ = start_service(cluster.zk, state_file)
        procs.append(active)

        def service() -> dict[str, Any] | None:
            frameworks = leader.state()["frameworks"]
            return next((f for f in frameworks if f["name"] == "service"), None)

        def running() -> set[str]:
            fw = service()
            return {t["id"] for t in (fw or {}).get("tasks", []) if t["state"] == "TASK_RUNNING"}

        tasks = until(lambda: len(running()) == 2 and running(), DEADLINE, "2 instances running")
        framework_id = state_file.read_text().strip()
        assert service()["id"] == framework_id  # type: ignore[index]

        standby, standby_out = start_service(cluster.zk, state_file, "--standby")
        procs.append(standby)
        until(lambda: standby_out.has("standby: waiting"), DEADLINE, "the standby to wait")
        time.sleep(0.5)
        assert service()["active"] is True  # type: ignore[index]  # still the first scheduler

        active.kill()  # kill -9: the lock goes with the process
        active.wait(10)
        until(lambda: standby_out.has("failed over"), DEADLINE, "the standby to take over")
        # The same framework, connected again, with the very same instances (adopted, not
        # relaunched: nothing was killed).
        until(lambda: (service() or {}).get("active"), DEADLINE, "the framework to be active")
        fw = service()
        assert fw is not None and fw["id"] == framework_id
        until(lambda: standby_out.has("adopted running instance"), DEADLINE, "adoption")
        assert running() == tasks

        # A third scheduler subscribing with the id while the standby is alive: the standby's
        # connection gets ERROR "Framework failed over" and is closed; it stops.
        third, third_out = start_service(cluster.zk, state_file)
        procs.append(third)
        standby.wait(DEADLINE)
        assert standby_out.has("Framework failed over"), "\n".join(standby_out.lines)
        until(lambda: third_out.has("failed over"), DEADLINE, "the third scheduler to take over")
        assert running() == tasks
    finally:
        for proc in procs:
            stop(proc)
        agent.kill(signal.SIGTERM)
        agent_harness.kill_leftovers(tmp_path / "agent")


pymesos = pytest.importorskip("pymesos")


class PymesosScheduler(pymesos.Scheduler):
    """Launches one task; records registrations, offers and updates."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []
        self.launched: list[str] = []

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.events.put(("registered", framework_id["value"]))

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.events.put(("reregistered", None))

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            self.events.put(("offer", offer["agent_id"]["value"]))
            if self.launched:
                driver.declineOffer(offer["id"], {"refuse_seconds": 1})
                continue
            task_id = str(uuid.uuid4())
            self.launched.append(task_id)
            driver.launchTasks(offer["id"], [{
                "task_id": {"value": task_id},
                "agent_id": {"value": offer["agent_id"]["value"]},
                "name": "ha",
                "command": {"value": "sleep 600"},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        self.events.put(("update", (update["task_id"]["value"], update["state"])))

    def error(self, driver: Any, message: str) -> None:
        self.events.put(("error", message))

    async def wait(self, kind: str, match: Callable[[Any], bool] = lambda _: True) -> Any:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                got = self.events.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                continue
            self.seen.append(got)
            assert got[0] != "error", f"scheduler got ERROR: {got[1]}"
            if got[0] == kind and match(got[1]):
                return got[1]
        raise AssertionError(f"no {kind} within {DEADLINE}s; saw {self.seen}")


async def test_pymesos_with_zk_url_follows_the_leader(cluster: HaCluster) -> None:
    leader = await asyncio.to_thread(cluster.wait_leader)
    detector = ZooKeeperDetector(cluster.zk)
    detector.start()

    def leader_url() -> str | None:
        current = detector.leader()
        return None if current is None else f"http://{current.address}"

    agent = FollowingEmulatedAgent(leader_url, hostname="emulated")
    sched = PymesosScheduler()
    info = {"user": getpass.getuser(), "name": "pymesos-ha", "hostname": "localhost",
            "failover_timeout": 120}
    driver = pymesos.MesosSchedulerDriver(sched, info, cluster.zk, use_addict=True)
    try:
        await asyncio.wait_for(agent.start(), DEADLINE)
        driver.start()
        framework_id = await sched.wait("registered")
        task_id = await sched.wait("update", lambda v: v[1] == "TASK_RUNNING")
        task_id = task_id[0]

        leader.kill()
        new = await asyncio.to_thread(cluster.wait_leader, DEADLINE, leader)
        # pymesos re-detects the leader in ZooKeeper and re-subscribes with its framework id;
        # offers come from the new leader.
        await sched.wait("reregistered")
        await sched.wait("offer")

        def same() -> bool:
            fws = new.state()["frameworks"]
            return any(
                f["id"] == framework_id and f["active"]
                and [(t["id"], t["state"]) for t in f["tasks"]] == [(task_id, "TASK_RUNNING")]
                for f in fws
            )

        await asyncio.to_thread(until, same, DEADLINE, "the task on the new leader")
    finally:
        driver.stop()
        await asyncio.to_thread(driver.join)
        await agent.stop()
        detector.close()
