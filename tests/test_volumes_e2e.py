"""Persistent volumes end to end (issue 14 §3, "done when"): two real `mezzo master --zk`
processes against a real ZooKeeper, a real `mezzo agent` with statically reserved disk, v1
schedulers over HTTP. A framework creates a volume and a task writes into it; the agent is
SIGKILLed and restarted, the leading master is SIGKILLed; a later task of a new framework
reads the data from the volume offered back to its role. Bad input gets Mesos's errors and
changes nothing: a volume on unreserved disk, a duplicate persistence id, DESTROY of a volume
in use. Then DESTROY removes the data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mezzo.agent.containerizer.isolators.filesystem import mount_points_under
from mezzo.testing.agent_harness import (
    MiniScheduler,
    Proc,
    command_task,
    operator_call,
    start_agent,
)
from mezzo.testing.ha_cluster import HaCluster
from mezzo.testing.processes import eventually
from mezzo.testing.pytest_zookeeper import ZkChroot

pytestmark = [pytest.mark.slow, pytest.mark.zookeeper]

ENG = {"roles": ["eng"], "principal": "alice",
       "capabilities": [{"type": "MULTI_ROLE"}, {"type": "RESERVATION_REFINEMENT"}]}
RESOURCES = "cpus:2;mem:512;disk(eng):100;disk:100"
# As root the volume is bind-mounted (RO enforced); otherwise linked (filesystem/posix).
ISOLATION = "filesystem/linux,posix/cpu,posix/mem" if os.geteuid() == 0 else "posix/cpu,posix/mem"


def volume(vid: str = "db", size: float = 64, *, reserved: bool = True, path: str = "data",
           mode: str = "RW", allocated: bool = True) -> dict[str, Any]:
    r: dict[str, Any] = {"name": "disk", "type": "SCALAR", "scalar": {"value": size},
                         "disk": {"persistence": {"id": vid, "principal": "alice"},
                                  "volume": {"container_path": path, "mode": mode}}}
    if reserved:
        r["reservations"] = [{"type": "STATIC", "role": "eng"}]
    if allocated:
        r["allocation_info"] = {"role": "eng"}
    return r


def has_volume(offer: dict[str, Any], vid: str = "db") -> bool:
    return any(r.get("disk", {}).get("persistence", {}).get("id") == vid
               for r in offer["resources"])


async def accept(s: MiniScheduler, offer: dict[str, Any], *ops: dict[str, Any]) -> None:
    status, body = await s.call({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]], "operations": list(ops), "filters": {"refuse_seconds": 0.1}}})
    assert status == 202, body


def launch(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}


def with_volume(task: dict[str, Any], agent_id: dict[str, Any], vol: dict[str, Any]) -> dict[str, Any]:
    task["agent_id"] = agent_id
    task["resources"].append(vol)
    return task


async def test_data_outlives_task_agent_restart_and_master_failover(
        zk_chroot: ZkChroot, tmp_path: Path) -> None:
    agent: Proc | None = None
    agent_args = ("--resources", RESOURCES, "--isolation", ISOLATION)
    with HaCluster(zk_chroot.url, 2, work_dir=tmp_path, session_timeout="2secs") as cluster:
        cluster.start()
        leader = cluster.wait_leader()
        try:
            agent = start_agent(tmp_path, cluster.zk, *agent_args)
            async with MiniScheduler(leader.url, name="writer", framework_info=ENG) as writer:
                offer = await writer.wait_for(lambda: writer.offers and writer.offers.pop(0))
                agent_id = offer["agent_id"]
                # Bad input first: each dropped with Mesos's message, nothing applied.
                await accept(writer, offer,
                             {"type": "CREATE", "id": {"value": "bad"},
                              "create": {"volumes": [volume("x", reserved=False)]}})
                error = await writer.wait_for(lambda: writer.operation_updates
                                              and writer.operation_updates.pop(0))
                assert error["state"] == "OPERATION_ERROR"
                assert error["message"].startswith(
                    "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created"
                    " from unreserved resources; on agent ")
                # CREATE, then LAUNCH a task that writes into the volume, in one ACCEPT.
                offer = await writer.wait_for(lambda: writer.offers and writer.offers.pop(0))
                write = with_volume(command_task(
                    "write", "echo hello-from-the-past > data/greeting && ls -l data"),
                    agent_id, volume())
                await accept(writer, offer, {"type": "CREATE", "create": {"volumes": [volume()]}},
                             launch(write))
                await writer.wait_state("write", "TASK_FINISHED")
                # The volume comes back to the role; its id may not be reused.
                offer = await writer.wait_for(
                    lambda: next((o for o in writer.offers if has_volume(o)), None))
                writer.offers.remove(offer)
                await accept(writer, offer, {"type": "CREATE", "id": {"value": "dup"},
                                             "create": {"volumes": [volume(size=10, path="y")]}})
                dup = await writer.wait_for(lambda: writer.operation_updates
                                            and writer.operation_updates.pop(0))
                assert dup["message"].startswith("Persistence ID 'db' is not unique")
            volume_dir = tmp_path / "agent" / "volumes" / "roles" / "eng" / "db"
            assert (volume_dir / "greeting").read_text() == "hello-from-the-past\n"

            # The agent restarts (SIGKILL), then the leading master dies (SIGKILL).
            agent.kill()
            agent = start_agent(tmp_path, cluster.zk, *agent_args)
            # The restarted agent ends what the old one left running and unmounts its volumes.
            await eventually(lambda: not mount_points_under(tmp_path / "agent"), 30,
                             "no mount left by the killed agent's containers")
            leader.kill()
            leader = cluster.wait_leader(exclude=leader)

            async with MiniScheduler(leader.url, name="reader", framework_info=ENG) as reader:
                offer = await reader.wait_for(
                    lambda: next((o for o in reader.offers if has_volume(o)), None), 60)
                reader.offers.remove(offer)
                agent_id = offer["agent_id"]
                # Read-only here: reading works, writing does not (bind mount remounted RO;
                # with filesystem/posix RO is not enforced, so only the read is checked).
                check_ro = ("! touch ro/x 2>/dev/null && " if ISOLATION.startswith("filesystem/linux")
                            else "")
                read = with_volume(command_task(
                    "read", f"{check_ro}test \"$(cat ro/greeting)\" = hello-from-the-past && sleep 30"),
                    agent_id, volume(path="ro", mode="RO"))
                await accept(reader, offer, launch(read))
                await reader.wait_state("read", "TASK_RUNNING")
                # In use: the operator may not destroy it.
                body = {"type": "DESTROY_VOLUMES", "destroy_volumes": {
                    "agent_id": agent_id, "volumes": [volume(allocated=False)]}}
                code, text = operator_call(leader.url, body)
                assert (code, text.strip()) == (
                    400, "Invalid DESTROY operation: Persistent volumes in use")
                assert (volume_dir / "greeting").exists()
                status, _ = await reader.call({"type": "KILL", "kill": {
                    "task_id": {"value": "read"}, "agent_id": agent_id}})
                assert status == 202
                killed = await reader.wait_state("read", "TASK_KILLED")
                assert "TASK_FAILED" not in reader.states("read"), killed
                # The container's end removes its mounts (nothing left under the agent's dir).
                await eventually(lambda: not mount_points_under(tmp_path / "agent"), 30,
                                 "the read-only bind mount to go with its container")

                def destroyed() -> bool:
                    return operator_call(leader.url, body)[0] == 202

                await eventually(destroyed, 30, "DESTROY_VOLUMES once the task ended")
                await eventually(lambda: not volume_dir.exists(), 30,
                                 "the agent to delete the volume's directory")
                state = json.loads(operator_call(leader.url, {"type": "GET_AGENTS"})[1])
                [entry] = state["get_agents"]["agents"]
                assert not any("disk" in r and "persistence" in r["disk"]
                               for r in entry["total_resources"])
        finally:
            if agent is not None:
                agent.kill()
            # A container the agent could not end before it was killed keeps its mounts.
            for point in mount_points_under(tmp_path):
                subprocess.run(["umount", "-l", point], check=False)
