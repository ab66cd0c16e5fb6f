"""High availability end to end: real `mezzo master --zk` processes against a real ZooKeeper.

Three masters contend; real `mezzo agent` processes and a mezzo SDK scheduler find the leader
through `zk://`. Killing the leader with SIGKILL must elect a standby that recovers the registry,
gets the agents back with their running tasks and the framework re-subscribed, loses or kills
no task, and shows the same frameworks, agents and running tasks in `/master/state`; agents that
do not come back within `--agent_reregister_timeout` become unreachable. Standbys answer 307
to the leader; a leader whose session expires exits.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.api.common import FrameworkID, FrameworkInfo, Offer, TaskState, TaskStatus
from mezzo.scheduler import Scheduler, SchedulerClient, SchedulerOptions, shell_task
from mezzo.testing import agent_harness
from mezzo.testing.ha_cluster import FollowingEmulatedAgent, HaCluster, http_get
from mezzo.testing.ha_cluster import until as wait_until
from mezzo.testing.processes import eventually
from mezzo.testing.pytest_zookeeper import ZkChroot

pytestmark = [pytest.mark.slow, pytest.mark.zookeeper]

FAST = SchedulerOptions(backoff_initial=0.1, backoff_max=0.5, connect_timeout=3.0)
DEADLINE = 30.0


async def until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> Any:
    return await eventually(predicate, timeout, what, interval=0.05)


class Sleeper(Scheduler):
    """Launches `count` long `sleep` tasks, one per offer, and records every update."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.launched: list[str] = []
        self.updates: list[TaskStatus] = []
        self.events: list[str] = []
        self.offers = 0

    def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
        self.events.append("registered")

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.events.append("reregistered")

    def disconnected(self, driver: Any) -> None:
        self.events.append("disconnected")

    async def resource_offers(self, driver: SchedulerClient, offers: list[Offer]) -> None:
        self.offers += len(offers)
        for offer in offers:
            if len(self.launched) < self.count:
                task = shell_task(offer, "cpus:0.1;mem:32", "sleep 600", name="ha")
                self.launched.append(task.task_id.value)
                await driver.launch(offer, [task])
            else:
                await driver.decline(offer, refuse_seconds=1)

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.updates.append(status)

    def latest(self) -> dict[str, TaskState]:
        return {u.task_id.value: u.state for u in self.updates}


def running_tasks(state: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (fw["id"], t["id"], t["slave_id"])
        for fw in state["frameworks"]
        for t in fw["tasks"]
        if t["state"] == "TASK_RUNNING"
    }


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """What must survive a master failover: frameworks, active agents, running tasks."""
    return {
        "frameworks": sorted((f["id"], f["name"], f["active"]) for f in state["frameworks"]),
        "agents": sorted((a["id"], a["hostname"], a["active"]) for a in state["slaves"]),
        "running": sorted(running_tasks(state)),
    }


@pytest.fixture
def cluster(zk_chroot: ZkChroot, tmp_path: Path) -> Iterator[HaCluster]:
    ha = HaCluster(zk_chroot.url, 3, work_dir=tmp_path, session_timeout="2secs",
                   extra=["--agent_reregister_timeout", "6secs"])
    try:
        ha.start()
        yield ha
    finally:
        ha.close()


@pytest.fixture
def agents(cluster: HaCluster, tmp_path: Path) -> Iterator[list[agent_harness.Proc]]:
    procs: list[agent_harness.Proc] = []
    try:
        for i in range(2):
            procs.append(agent_harness.start_agent(
                tmp_path, cluster.zk, "--resources", "cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
                name=f"agent{i}"))
        yield procs
    finally:
        for proc in procs:
            proc.kill(signal.SIGTERM)
        for i in range(2):
            agent_harness.kill_leftovers(tmp_path / f"agent{i}")


def test_standbys_redirect_to_the_leader(cluster: HaCluster, zk_chroot: ZkChroot) -> None:
    leader = cluster.wait_leader()
    assert leader.metrics()["master/elected"] == 1.0  # type: ignore[index]
    for standby in cluster.standbys(leader):
        assert standby.metrics()["master/elected"] == 0.0  # type: ignore[index]
        for path in ("/master/state", "/api/v1/scheduler", "/state.json"):
            status, headers, _ = http_get(standby.url + path)
            assert status == 307, path
            assert headers["Location"] == f"//{leader.hostport}{path}"
        status, headers, _ = http_get(standby.url + "/master/redirect")
        assert (status, headers["Location"]) == (307, f"//{leader.hostport}")
        assert http_get(standby.url + "/health")[0] == 200
    # The leader's MasterInfo is what pymesos reads from the lowest json.info_ node.
    client = zk_chroot.client()
    try:
        children = sorted(c for c in client.get_children(zk_chroot.path) if c != "log_replicas")
        assert len(children) == 3 and all(c.startswith("json.info_") for c in children)
        info = json.loads(client.get(f"{zk_chroot.path}/{children[0]}")[0])
        assert f"{info['address']['ip']}:{info['address']['port']}" == leader.hostport
    finally:
        client.stop()
        client.close()


def test_no_usable_leader_means_503_until_one_is_elected(zk_chroot: ZkChroot, tmp_path: Path) -> None:
    # A lower election node that holds no usable MasterInfo (a broken or foreign contender)
    # is the leader nobody can reach: every master must answer 503, not guess.
    client = zk_chroot.client()
    try:
        bogus = client.create(f"{zk_chroot.path}/json.info_", b"not a MasterInfo", ephemeral=True,
                              sequence=True, makepath=True)
        with HaCluster(zk_chroot.url, 2, work_dir=tmp_path, session_timeout="2secs") as ha:
            ha.start()
            for master in ha.masters:
                wait_until(lambda m=master: http_get(m.url + "/master/state")[0] == 503, DEADLINE, "503")
                status, _, body = http_get(master.url + "/api/v1/scheduler")
                assert (status, body.decode().strip()) == (503, "No leader elected")
                assert master.metrics()["master/elected"] == 0.0  # type: ignore[index]
                assert http_get(master.url + "/health")[0] == 200
            client.delete(bogus)  # the broken contender goes away: a real election happens
            leader = ha.wait_leader()
            standby = ha.standbys(leader)[0]
            wait_until(lambda: http_get(standby.url + "/master/state")[0] == 307, DEADLINE, "307")
    finally:
        client.stop()
        client.close()


async def test_leader_kill_keeps_frameworks_agents_and_tasks(
    cluster: HaCluster, agents: list[agent_harness.Proc], tmp_path: Path
) -> None:
    leader = await asyncio.to_thread(cluster.wait_leader)
    doomed = FollowingEmulatedAgent(lambda: leader.url, hostname="doomed")
    sched = Sleeper(count=2)
    info = FrameworkInfo(user=getpass.getuser(), name="ha-e2e", failover_timeout=300, checkpoint=True)
    client = SchedulerClient(cluster.zk, info, sched, FAST)
    await client.start()
    try:
        fid = (await client.wait_subscribed(DEADLINE)).value
        await until(lambda: list(sched.latest().values()) == [TaskState.TASK_RUNNING] * 2,
                    what="2 tasks running")
        # A third agent (emulated, running nothing) that will not come back after the failover.
        await asyncio.wait_for(doomed.start(), DEADLINE)

        def ready() -> dict[str, Any] | None:
            state = leader.state()
            return state if len(running_tasks(state)) == 2 and len(state["slaves"]) == 3 else None

        before = summary(await until(ready, what="the leader to list 2 running tasks"))
        assert {t[2] for t in before["running"]} <= {a[0] for a in before["agents"]}
        await doomed.stop()
        # Wait until the old leader saw the doomed agent disconnect (it stays admitted).
        await until(lambda: leader.metrics()["master/slaves_disconnected"] == 1.0,  # type: ignore[index]
                    what="doomed agent disconnected")
        updates_before = len(sched.updates)

        killed_at = time.monotonic()
        leader.kill()
        new = await asyncio.to_thread(cluster.wait_leader, DEADLINE, leader)
        elected_after = time.monotonic() - killed_at

        last: list[Any] = []

        def same() -> dict[str, Any] | None:
            state = new.state()
            got = summary(state)
            last[:] = [got]
            live = [a for a in got["agents"] if a[1] != "doomed"]
            ok = (got["frameworks"] == before["frameworks"] and got["running"] == before["running"]
                  and len(live) == 2 and all(a[2] for a in live))
            return state if ok else None

        try:
            await until(same, what="the new leader to list the same frameworks, agents and tasks")
        except TimeoutError:
            raise AssertionError(f"before {before}\nafter {last}") from None
        recovered_after = time.monotonic() - killed_at
        # The standby kept a copy of the registry: it recovered from it, not by reading the
        # registry whole (mezzo.master.registry, "A warm standby").
        recovered = [line for line in new.log_tail(400).splitlines() if "recovered the registry" in line]
        assert recovered and "from this standby's copy" in recovered[-1], recovered
        # The scheduler re-subscribed (same id) and keeps getting offers from the new leader.
        assert client.framework_id == FrameworkID(value=fid)
        assert "reregistered" in sched.events or sched.events.count("registered") == 2
        offers = sched.offers
        await until(lambda: sched.offers > offers, what="offers from the new leader")
        # No task was lost or killed: no update at all, or only TASK_RUNNING again.
        assert all(u.state == TaskState.TASK_RUNNING for u in sched.updates[updates_before:])
        for agent in agents:
            assert agent.popen.poll() is None, agent.log()[-2000:]
        # The doomed agent is in the registry but never returns: unreachable after 6 s.
        await until(lambda: new.metrics()["master/slaves_unreachable"] == 1.0,  # type: ignore[index]
                    timeout=15, what="the agent that did not return to become unreachable")
        print(f"elected {elected_after:.2f}s, state back {recovered_after:.2f}s after kill -9")
    finally:
        await client.stop()
        await doomed.stop()


def test_leader_whose_session_expires_exits(cluster: HaCluster) -> None:
    leader = cluster.wait_leader()
    assert leader.proc is not None
    # Freeze the leader longer than its 2 s session timeout: ZooKeeper expires the session and
    # elects a standby; when the old leader runs again it learns of the expiry and must exit.
    leader.signal(signal.SIGSTOP)
    try:
        new = cluster.wait_leader(DEADLINE, exclude=leader)
    finally:
        leader.signal(signal.SIGCONT)
    assert new is not leader
    code = leader.proc.wait(DEADLINE)
    assert code == 1, leader.log_tail()
    assert "lost leadership" in leader.log_tail(200)
    # The new leader keeps serving; the remaining standby points at it.
    assert new.is_serving_leader()
    (other,) = [m for m in cluster.standbys(new)]
    assert http_get(other.url + "/master/redirect")[1].get("Location") == f"//{new.hostport}"


def test_three_node_ensemble_failover(zk_ensemble: Any, tmp_path: Path) -> None:
    zk = f"zk://{zk_ensemble.hosts}/mezzo"
    with HaCluster(zk, 2, work_dir=tmp_path, session_timeout="4secs") as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        # Losing one ZooKeeper member (its leader) keeps a quorum: a master leads afterwards.
        zk_leader = zk_ensemble.leader()
        assert zk_leader is not None
        zk_leader.kill()
        current = cluster.wait_leader(DEADLINE)
        # And a master failover still works on the remaining two members.
        current.kill()
        survivor = cluster.wait_leader(DEADLINE, exclude=current)
        assert survivor is not current and survivor.alive
        assert http_get(survivor.url + "/master/state")[0] == 200
        assert leader.alive or not current.alive
