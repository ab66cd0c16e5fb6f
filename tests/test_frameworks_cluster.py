"""The four example frameworks against a real local cluster (master + 3 agent subprocesses,
port 0), small sizes. One cluster serves the module; every test checks what its framework
reports and that nothing it started is left running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psutil
import pytest

from mezzo.frameworks.batch import BatchFramework
from mezzo.frameworks.common import CommonOptions
from mezzo.frameworks.gang import GangFramework
from mezzo.frameworks.iterative import IterativeFramework
from mezzo.frameworks.service import ServiceFramework
from mezzo.testing.local_cluster import ClusterSpec, LocalCluster
from mezzo.testing.processes import is_live

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(ClusterSpec(agents=3, agent_resources="cpus:2;mem:2048;disk:2048")) as c:
        yield c


def opts(cluster: LocalCluster, name: str, cpus: float = 0.5, mem: float = 64.0) -> CommonOptions:
    return CommonOptions(
        master=cluster.master_address, name=name, cpus=cpus, mem=mem, timeout=40.0, quiet=True
    )


def _no_tasks_left(cluster: LocalCluster) -> bool:
    """Every task process is gone once the framework has been torn down. (The agent's command
    executor fork server stays: it is the agent's, not a task's; its children are checked.)"""
    children = []
    for node in cluster.agents:
        children += psutil.Process(node.proc.pid).children(recursive=True)
    return not [
        p
        for p in children
        if is_live(p) and not _is_fork_server(p)
    ]


def _is_fork_server(process: psutil.Process) -> bool:
    try:
        return "--fork-server" in process.cmdline()
    except psutil.Error:
        return False


async def _wait_no_tasks(cluster: LocalCluster) -> None:
    for _ in range(100):
        if _no_tasks_left(cluster):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("task processes still running after teardown")


async def test_batch_delay_scheduling_reaches_locality(cluster: LocalCluster) -> None:
    fw = BatchFramework(opts(cluster, "batch"), jobs=2, maps=6, map_seconds=0.3, locality_wait=2.0)
    report = await fw.run()
    assert fw.finished.is_set(), report
    assert all(j.done for j in fw.policy.jobs)
    local, total = fw.policy.locality()
    assert total == 12
    # 3 hosts x 4 slots each: every block's host has room, so delay scheduling gets it local.
    assert local == total
    assert "data locality: 12/12" in report[1]
    await _wait_no_tasks(cluster)


async def test_batch_without_delay_takes_any_offer(cluster: LocalCluster) -> None:
    # All blocks on one host that has room for 1 task at a time: with wait 0 the other hosts
    # are used at once (non-local).
    placement = [[["agent-1"]] * 6]
    fw = BatchFramework(
        opts(cluster, "batch0", cpus=2.0),
        jobs=1,
        maps=6,
        map_seconds=0.5,
        locality_wait=0.0,
        placement=placement,
    )  # type: ignore[arg-type]
    await fw.run()
    assert fw.finished.is_set()
    local, total = fw.policy.locality()
    assert total == 6 and local < total


async def test_iterative_later_iterations_are_faster(cluster: LocalCluster) -> None:
    fw = IterativeFramework(
        opts(cluster, "iterative", mem=128.0), partitions=3, points=8000, dims=8, iterations=4
    )
    report = await fw.run()
    assert fw.finished.is_set(), report
    times = [r.seconds for r in fw.driver.records]
    assert len(times) == 4 and all(t is not None for t in times)
    assert fw.driver.records[0].load_seconds > 0
    assert all(r.load_seconds == 0 for r in fw.driver.records[1:])
    assert fw.driver.records[-1].loss < fw.driver.records[0].loss  # type: ignore[operator]
    assert {h.host for h in fw.holders} == {"agent-1", "agent-2", "agent-3"}
    await _wait_no_tasks(cluster)


async def test_gang_launches_all_ranks_together(cluster: LocalCluster) -> None:
    fw = GangFramework(
        opts(cluster, "gang", cpus=1.0), size=5, runs=2, rank_seconds=0.5, hold_timeout=10.0
    )
    report = await fw.run()
    assert fw.finished.is_set(), report
    assert fw.planner.completed_runs == 2
    # 5 ranks of 1 cpu need 3 agents of 2 cpus: the gang spans agents.
    assert all(sum(r.agents.values()) == 5 and len(r.agents) >= 3 for r in fw.planner.history)
    assert fw.finished_tasks == 10
    await _wait_no_tasks(cluster)


async def test_gang_that_cannot_fit_releases_its_offers(cluster: LocalCluster) -> None:
    options = opts(cluster, "biggang", cpus=1.0)
    options.timeout = 4.0
    fw = GangFramework(options, size=7, runs=1, rank_seconds=0.5, hold_timeout=1.0, retry_delay=0.5)
    await fw.run()
    assert not fw.finished.is_set()
    assert fw.planner.completed_runs == 0 and fw.finished_tasks == 0
    assert fw.planner.releases >= 1


async def test_service_restarts_killed_instances_and_spreads(
    cluster: LocalCluster, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    state_file = tmp_path / "fwid"
    fw = ServiceFramework(
        opts(cluster, "service", cpus=0.1),
        instances=3,
        duration=8.0,
        kill_every=2.5,
        backoff_initial=0.5,
        state_file=str(state_file),
    )
    report = await fw.run(failover=True)
    log = "\n".join(fw.log_lines)  # what the framework did, shown if an assertion fails
    assert fw.finished.is_set(), report
    assert fw.chaos_kills >= 2 and fw.planner.stats.restarts >= 2, log
    assert fw.all_up_at is not None, log
    assert max(fw.planner.per_agent().values(), default=0) <= 1, log  # ceil(3/3)
    assert state_file.read_text() == fw.framework_id.value  # type: ignore[union-attr]
    # How many were up at the handover depends on where the last chaos kill fell (an instance
    # may be waiting out its restart backoff); every one of them must be adopted.
    running_at_stop = fw.planner.running
    assert running_at_stop >= 1, log
    # A standby scheduler takes over the same framework and adopts the running instances.
    standby = ServiceFramework(
        opts(cluster, "service", cpus=0.1), instances=3, duration=4.0, state_file=str(state_file)
    )
    await standby.run()
    assert standby.framework_id == fw.framework_id
    assert standby.adopted >= running_at_stop
    await _wait_no_tasks(cluster)
