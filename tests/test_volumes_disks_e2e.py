"""Volumes with a real master and agent (issue 14 §3): on PATH and MOUNT disks declared in the
agent's `--resources` JSON (the operator creates a volume on each, a task writes into both, the
data lands under the PATH root and on the MOUNT root; a MOUNT volume takes the whole disk; the
MOUNT disk is a tmpfs mounted for the test), and a shared volume two running tasks use at once
(bind-mounted by filesystem/linux). Root only."""

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
    command_task,
    operator_call,
    start_agent,
    start_master,
)
from mezzo.testing.processes import eventually

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")]


def disk(size: float, source: dict[str, Any], vid: str | None = None, path: str = "") -> dict[str, Any]:
    info: dict[str, Any] = {"source": source}
    if vid is not None:
        info["persistence"] = {"id": vid}
        info["volume"] = {"container_path": path, "mode": "RW"}
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": size},
            "reservations": [{"type": "STATIC", "role": "db"}], "disk": info}


async def test_volumes_on_path_and_mount_disks(tmp_path: Path) -> None:
    mount_root = tmp_path / "ssd0"
    mount_root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_root)], check=True)
    path_src = {"type": "PATH", "path": {"root": str(tmp_path / "hdd")}}
    mount_src = {"type": "MOUNT", "mount": {"root": str(mount_root)}}
    resources = json.dumps([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
        disk(100, path_src), disk(16, mount_src)])
    master = start_master(tmp_path)
    agent = None
    try:
        agent = start_agent(tmp_path, master.address, "--resources", resources)
        assert (tmp_path / "hdd").is_dir()  # created at start, as Mesos
        info = {"roles": ["db"], "capabilities": [{"type": "MULTI_ROLE"}]}
        async with MiniScheduler(master.url, name="db", framework_info=info) as s:
            offer = await s.wait_for(lambda: s.offers and s.offers.pop(0))
            agent_id = offer["agent_id"]
            # A MOUNT disk is taken whole: a smaller volume is refused (409: not contained).
            code, text = operator_call(master.url, {"type": "CREATE_VOLUMES", "create_volumes": {
                "agent_id": agent_id, "volumes": [disk(8, mount_src, "fast", "fast")]}})
            assert code == 409 and "does not contain" in text, text
            code, text = operator_call(master.url, {"type": "CREATE_VOLUMES", "create_volumes": {
                "agent_id": agent_id, "volumes": [disk(16, mount_src, "fast", "fast"),
                                                  disk(40, path_src, "slow", "slow")]}})
            assert code == 202, text

            def both(o: dict[str, Any]) -> bool:
                ids = {r.get("disk", {}).get("persistence", {}).get("id") for r in o["resources"]}
                return {"fast", "slow"} <= ids

            offer = await s.wait_for(lambda: next((o for o in s.offers if both(o)), None))
            task = command_task("w", "echo f > fast/x && echo s > slow/y")
            task["agent_id"] = agent_id
            task["resources"] += [dict(disk(16, mount_src, "fast", "fast"), allocation_info={"role": "db"}),
                                  dict(disk(40, path_src, "slow", "slow"), allocation_info={"role": "db"})]
            status, body = await s.call({"type": "ACCEPT", "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            assert status == 202, body
            await s.wait_state("w", "TASK_FINISHED")
        assert (mount_root / "x").read_text() == "f\n"  # the MOUNT root is the volume
        assert (tmp_path / "hdd" / "volumes" / "roles" / "db" / "slow" / "y").read_text() == "s\n"
        # DESTROY empties the MOUNT volume but keeps the mount point.
        code, text = operator_call(master.url, {"type": "DESTROY_VOLUMES", "destroy_volumes": {
            "agent_id": agent_id, "volumes": [disk(16, mount_src, "fast", "fast")]}})
        assert code == 202, text
        await eventually(lambda: not (mount_root / "x").exists(), 20, "the MOUNT volume emptied")
        assert os.path.ismount(mount_root)
    finally:
        if agent is not None:
            agent.kill()
        master.kill()
        subprocess.run(["umount", "-l", str(mount_root)], check=False)


async def test_a_shared_volume_used_by_two_running_tasks(tmp_path: Path) -> None:
    """SHARED_RESOURCES: two tasks of one ACCEPT use one shared volume at the same time (each
    waits for the other's file in it), then a third task created later still finds both."""
    master = start_master(tmp_path)
    agent = None
    isolation = "filesystem/linux,posix/cpu,posix/mem"
    try:
        agent = start_agent(tmp_path, master.address, "--resources", "cpus:2;mem:512;disk(eng):100",
                            "--isolation", isolation)
        info = {"roles": ["eng"], "capabilities": [{"type": "MULTI_ROLE"},
                                                   {"type": "SHARED_RESOURCES"}]}
        shared = {"name": "disk", "type": "SCALAR", "scalar": {"value": 50},
                  "reservations": [{"type": "STATIC", "role": "eng"}], "shared": {},
                  "allocation_info": {"role": "eng"},
                  "disk": {"persistence": {"id": "scratch"},
                           "volume": {"container_path": "shared", "mode": "RW"}}}
        async with MiniScheduler(master.url, name="sharer", framework_info=info) as s:
            offer = await s.wait_for(lambda: s.offers and s.offers.pop(0))

            def task(tid: str, mine: str, other: str) -> dict[str, Any]:
                t = command_task(tid, f"echo {tid} > shared/{mine}; "
                                      f"while [ ! -f shared/{other} ]; do sleep 0.1; done")
                t["agent_id"] = offer["agent_id"]
                t["resources"].append(shared)
                return t

            status, body = await s.call({"type": "ACCEPT", "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                "operations": [{"type": "CREATE", "create": {"volumes": [shared]}},
                               {"type": "LAUNCH", "launch": {"task_infos": [
                                   task("a", "a", "b"), task("b", "b", "a")]}}]}})
            assert status == 202, body
            await s.wait_state("a", "TASK_FINISHED", 60)
            await s.wait_state("b", "TASK_FINISHED", 60)
        volume_dir = tmp_path / "agent" / "volumes" / "roles" / "eng" / "scratch"
        assert sorted(p.name for p in volume_dir.iterdir()) == ["a", "b"]
    finally:
        if agent is not None:
            agent.kill()
        master.kill()
        for point in mount_points_under(tmp_path):
            subprocess.run(["umount", "-l", point], check=False)
