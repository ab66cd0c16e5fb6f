"""Task groups end to end: a real `mezzo master` and `mezzo agent`, a v1 scheduler over HTTP
(`MiniScheduler`), LAUNCH_GROUP with an ExecutorInfo of type DEFAULT run by the built-in
default executor, every task a real process in its own sandbox under the executor's."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.api.common import FrameworkInfo, Offer, TaskStatus
from mezzo.resources import Resources
from mezzo.scheduler import (
    Scheduler,
    SchedulerClient,
    default_executor,
    fits,
    shell_task,
    split,
)
from mezzo.testing.agent_harness import (
    MEZZO,
    MiniScheduler,
    ProcessCluster,
    command_task,
    executor_pids,
    free_port,
    pid_alive,
)
from mezzo.testing.agent_harness import default_executor as default_executor_json

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096;disk:1000") as c:
        yield c


def sandboxes(tmp_path: Path, executor_id: str) -> list[Path]:
    runs = tmp_path.glob(f"agent/slaves/*/frameworks/*/executors/{executor_id}/runs/*")
    return sorted(run for run in runs if run.name != "latest")


def parent_of(update: dict[str, Any]) -> str:
    return update["container_status"]["container_id"]["parent"]["value"]


async def test_two_tasks_of_a_group_both_finish(cluster: ProcessCluster, tmp_path: Path) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch_group([(default_executor_json("pod"), [
            command_task("web", 'echo "web in $MESOS_SANDBOX"; sleep 0.3'),
            command_task("side", "echo side; pwd"),
        ])])
        for task in ("web", "side"):
            await s.wait_state(task, "TASK_FINISHED")
            assert s.states(task) == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        updates = [u for u in s.updates if u["task_id"]["value"] in ("web", "side")]
        assert all(u["executor_id"]["value"] == "pod" for u in updates)
        assert all(u["source"] == "SOURCE_EXECUTOR" for u in updates)
        # Nested containers: each task its own, both children of the executor's.
        assert len({parent_of(u) for u in updates}) == 1
        containers = {u["task_id"]["value"]: u["container_status"]["container_id"]["value"]
                      for u in updates}
        assert containers["web"] != containers["side"]
        # `mezzo logs` reads a group task's own sandbox (through the agent's files API).
        logs = subprocess.run(
            [*MEZZO, "logs", "--master", cluster.master.address, "side"],
            capture_output=True, text=True, timeout=60,
        )
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.startswith("side\n") and logs.stdout.endswith("/tasks/side\n")
    [run] = sandboxes(tmp_path, "pod")
    assert (run / "tasks" / "web" / "stdout").read_text() == f"web in {run}/tasks/web\n"
    assert (run / "tasks" / "side" / "stdout").read_text() == f"side\n{run}/tasks/side\n"
    assert run.name == parent_of(updates[0])  # the executor's run is its container


async def test_a_failed_task_kills_the_rest_of_its_group(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        stubborn = command_task(
            "stubborn", "trap '' TERM; echo ready; sleep 60",
            kill_policy={"grace_period": {"nanoseconds": 300_000_000}},
        )
        await s.launch_group([(default_executor_json("pod"), [
            command_task("crash", "sleep 0.5; exit 3"), stubborn,
        ])])
        failed = await s.wait_state("crash", "TASK_FAILED")
        assert failed["message"] == "Command exited with status 3"
        killed = await s.wait_state("stubborn", "TASK_KILLED", timeout=20)
        # It ignored SIGTERM: SIGKILL came after its own kill policy's grace period.
        assert killed["message"] == "Command terminated with signal SIGKILL"
        assert s.states("stubborn") == [
            "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"
        ]


async def test_a_second_group_joins_the_executor_and_kill_takes_one_group(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        executor = default_executor_json("pod")
        await s.launch_group([(dict(executor), [
            command_task("a1", "sleep 60"), command_task("a2", "sleep 60"),
        ])])
        await s.wait_state("a1", "TASK_RUNNING")
        await s.wait_state("a2", "TASK_RUNNING")
        offer = await s.wait_for(
            lambda: next((o for o in s.offers if o.get("executor_ids")), None), timeout=30
        )
        s.offers.remove(offer)
        assert [e["value"] for e in offer["executor_ids"]] == ["pod"]
        await s.launch_group([(dict(executor), [
            command_task("b1", "sleep 60"), command_task("b2", "sleep 60"),
        ])], offer=offer)
        await s.wait_state("b1", "TASK_RUNNING")
        await s.wait_state("b2", "TASK_RUNNING")
        parents = {parent_of(u) for u in s.updates}
        assert len(parents) == 1, "both groups run in the one executor"
        assert len(sandboxes(tmp_path, "pod")) == 1
        # Killing one task of the second group takes that group down, not the first.
        status, _ = await s.call({"type": "KILL", "kill": {"task_id": {"value": "b1"}}})
        assert status == 202
        await s.wait_state("b1", "TASK_KILLED")
        await s.wait_state("b2", "TASK_KILLED")
        await asyncio.sleep(0.5)  # a window, on purpose: a wrong kill of a1/a2 would show in it
        assert s.states("a1")[-1] == s.states("a2")[-1] == "TASK_RUNNING"
        # The first group's end ends the executor, as Mesos's default executor ends.
        status, _ = await s.call({"type": "KILL", "kill": {"task_id": {"value": "a2"}}})
        await s.wait_state("a1", "TASK_KILLED")
        await s.wait_state("a2", "TASK_KILLED")
        pid_file = next((tmp_path / "agent").glob("containers/*/pid"), None)

        def executor_gone() -> bool:
            if pid_file is None:
                return True
            try:  # the agent removes the container's directory once it is gone: no exists() race
                pid = int(pid_file.read_text())
            except FileNotFoundError:
                return True
            return not pid_alive(pid)

        await s.wait_for(executor_gone, timeout=20)


async def test_invalid_groups_are_refused_with_task_error(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        no_disk = default_executor_json("pod1")
        no_disk["resources"] = no_disk["resources"][:2]
        untyped = default_executor_json("pod2")
        del untyped["type"]
        docker = command_task("d1", "true", container={"type": "DOCKER", "docker": {"image": "x"}})
        await s.launch_group([
            (no_disk, [command_task("n1", "true"), command_task("n2", "true")]),
            (untyped, [command_task("u1", "true")]),
            (default_executor_json("pod3"), [docker, command_task("d2", "true")]),
        ])
        expected = {
            "n1": "Executor 'pod1' uses no disk",
            "n2": "Executor 'pod1' uses no disk",
            "u1": "'ExecutorInfo.type' must be set",
            "d1": "Task 'd1' is invalid: Docker ContainerInfo is not supported on the task",
            "d2": "Task 'd1' is invalid: Docker ContainerInfo is not supported on the task",
        }
        for task_id, message in expected.items():
            error = await s.wait_state(task_id, "TASK_ERROR")
            assert error["reason"] == "REASON_TASK_GROUP_INVALID"
            assert error["source"] == "SOURCE_MASTER"
            assert error["message"] == message
            assert s.states(task_id) == ["TASK_ERROR"]


class GroupLauncher(Scheduler):
    """Launches one group on the first offer big enough (the SDK's `launch_group`)."""

    def __init__(self) -> None:
        self.launched = False
        self.states: dict[str, list[str]] = {}

    async def resource_offers(self, client: SchedulerClient, offers: list[Offer]) -> None:
        for offer in offers:
            if self.launched or not fits(offer, "cpus:0.3;mem:96;disk:10"):
                await client.decline(offer, refuse_seconds=60)
                continue
            self.launched = True
            executor_part, *task_parts = split(offer, "cpus:0.1;mem:32", limit=3)
            executor = default_executor("sdk-pod", executor_part + Resources.parse("disk:10"))
            tasks = [
                shell_task(offer, part, f"echo {name}", task_id=name)
                for name, part in zip(("one", "two"), task_parts, strict=True)
            ]
            await client.launch_group(offer, executor, tasks)

    def status_update(self, client: SchedulerClient, status: TaskStatus) -> None:
        self.states.setdefault(status.task_id.value, []).append(status.state)


async def test_the_sdk_launches_a_group(cluster: ProcessCluster) -> None:
    cluster.agent()
    sched = GroupLauncher()
    info = FrameworkInfo(user=getpass.getuser(), name="groups-sdk")
    client = SchedulerClient(cluster.master.url, info, sched)
    await client.start()
    try:
        await client.wait_subscribed(10)
        for _ in range(300):
            if all(sched.states.get(t, [""])[-1] == "TASK_FINISHED" for t in ("one", "two")):
                break
            await asyncio.sleep(0.1)
        assert sched.states["one"] == sched.states["two"] == [
            "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"
        ]
    finally:
        await client.stop()


async def test_a_restarted_agent_reattaches_the_default_executor(cluster: ProcessCluster) -> None:
    port = free_port()
    agent = cluster.agent(port=port)
    async with MiniScheduler(cluster.master.url, checkpoint=True) as s:
        await s.launch_group([(default_executor_json("pod"), [
            command_task("g1", "sleep 120"), command_task("g2", "sleep 120"),
        ])])
        await s.wait_state("g1", "TASK_RUNNING")
        await s.wait_state("g2", "TASK_RUNNING")
        pid = (await executor_pids(agent))["pod"]
        agent.kill()  # SIGKILL: the executor and its tasks live on
        assert pid_alive(pid)
        agent = cluster.agent(port=port)
        # The executor re-subscribed: the new agent knows it and reaches it.
        for _ in range(100):
            if (await executor_pids(agent)).get("pod") == pid:
                break
            await asyncio.sleep(0.2)
        assert (await executor_pids(agent))["pod"] == pid
        # A KILL sent before the master saw the agent re-register is dropped (as Mesos's
        # master does): retry, as schedulers do.
        for _ in range(20):
            status, _ = await s.call({"type": "KILL", "kill": {"task_id": {"value": "g1"}}})
            assert status == 202
            try:
                await s.wait_state("g1", "TASK_KILLED", timeout=2)
                break
            except TimeoutError:
                continue
        await s.wait_state("g1", "TASK_KILLED", timeout=20)
        await s.wait_state("g2", "TASK_KILLED", timeout=20)
        for _ in range(100):
            if not pid_alive(pid):
                break
            await asyncio.sleep(0.1)
        assert not pid_alive(pid), "the executor ends with its last task"


async def test_pymesos_launches_a_group(cluster: ProcessCluster) -> None:
    """pymesos 0.3.15 (unmodified) sends LAUNCH_GROUP with `acceptOffers`."""
    pymesos = pytest.importorskip("pymesos")
    cluster.agent()
    states: dict[str, list[str]] = {}

    class GroupScheduler(pymesos.Scheduler):  # type: ignore[misc]
        launched = False

        def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
            for offer in offers:
                if self.launched:
                    driver.declineOffer(offer["id"])
                    continue
                self.launched = True
                tasks = [
                    {**command_task(t, f"echo {t}"), "agent_id": offer["agent_id"]}
                    for t in ("p1", "p2")
                ]
                driver.acceptOffers([offer["id"]], [{
                    "type": "LAUNCH_GROUP",
                    "launch_group": {"executor": default_executor_json("py-pod"),
                                     "task_group": {"tasks": tasks}},
                }])

        def statusUpdate(self, driver: Any, update: Any) -> None:
            states.setdefault(update["task_id"]["value"], []).append(update["state"])

    framework = {"user": getpass.getuser(), "name": "pymesos-groups"}
    driver = pymesos.MesosSchedulerDriver(GroupScheduler(), framework, cluster.master.address)
    driver.start()
    try:
        for _ in range(300):
            if all((states.get(t) or [""])[-1] == "TASK_FINISHED" for t in ("p1", "p2")):
                break
            await asyncio.sleep(0.1)
        assert states["p1"] == states["p2"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    finally:
        driver.stop()
        driver.join()


async def test_group_tasks_fetch_their_uris_into_their_own_sandboxes(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    cluster.agent()
    served = tmp_path / "app.txt"
    served.write_text("payload\n")
    async with MiniScheduler(cluster.master.url) as s:
        fetching = command_task("reader", "cat app.txt")
        fetching["command"]["uris"] = [{"value": f"file://{served}"}]
        await s.launch_group([(default_executor_json("pod"), [
            fetching, command_task("plain", "test ! -e app.txt"),
        ])])
        await s.wait_state("reader", "TASK_FINISHED")
        await s.wait_state("plain", "TASK_FINISHED")  # the file is in reader's sandbox only
        broken = command_task("broken", "true")
        broken["command"]["uris"] = [{"value": f"file://{tmp_path}/missing.tgz"}]
        offer = await s.wait_for(lambda: s.offers and s.offers.pop(0))
        await s.launch_group([(default_executor_json("pod2"), [
            broken, command_task("sibling", "sleep 60"),
        ])], offer=offer)
        for task in ("broken", "sibling"):
            failed = await s.wait_state(task, "TASK_FAILED")
            assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
            assert "missing.tgz" in failed["message"]
    [run] = sandboxes(tmp_path, "pod")
    assert (run / "tasks" / "reader" / "app.txt").read_text() == "payload\n"
    assert (run / "tasks" / "reader" / "stdout").read_text().endswith("payload\n")
