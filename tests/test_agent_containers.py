"""What a container asks for: the agent's and the master's checks (pure), and real agents that
refuse Docker, images, volumes and named networks and apply `rlimit_info` (posix/rlimits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.agent.container_support import RlimitError, rlimits_of, unsupported_container
from mezzo.api.codec import convert
from mezzo.api.common import ContainerInfo, ExecutorInfo, ExecutorType, TaskInfo
from mezzo.master.container_validation import group_container_problem, task_container_problem
from mezzo.testing.agent_harness import (
    MiniScheduler,
    Proc,
    command_task,
    kill_leftovers,
    start_agent,
    start_master,
)


def container(**fields: Any) -> ContainerInfo:
    return convert({"type": "MESOS", **fields}, ContainerInfo)


def test_the_agent_names_what_it_cannot_provide() -> None:
    assert unsupported_container([None, container()]) is None
    docker = convert({"type": "DOCKER", "docker": {"image": "busybox"}}, ContainerInfo)
    assert "DOCKER is not supported" in (unsupported_container([docker]) or "")
    image = container(mesos={"image": {"type": "DOCKER", "docker": {"name": "busybox"}}})
    assert "images are not supported" in (unsupported_container([image]) or "")
    volume = container(volumes=[{"container_path": "/data", "host_path": "/tmp", "mode": "RW"}])
    assert "'/data'" in (unsupported_container([volume]) or "")
    cni = container(network_infos=[{"name": "overlay"}])
    assert "Network 'overlay'" in (unsupported_container([cni]) or "")
    host = container(network_infos=[{"ip_addresses": [{"ip_address": "10.0.0.1"}]}])
    assert unsupported_container([host]) is None


def test_rlimits_follow_mesos_rules() -> None:
    c = container(rlimit_info={"rlimits": [
        {"type": "RLMT_CORE"}, {"type": "RLMT_NOFILE", "soft": 100, "hard": "200"},
    ]})
    assert rlimits_of(c) == {"RLMT_CORE": (None, None), "RLMT_NOFILE": (100, 200)}
    assert rlimits_of(None) == {} and rlimits_of(container()) == {}
    for bad, words in [
        ({"type": "RLMT_NOFILE", "soft": 10}, "set both"),
        ({"type": "RLMT_NOFILE", "soft": 10, "hard": 5}, "exceeds hard"),
        ({"type": "UNKNOWN"}, "unknown rlimit type"),
        ({"type": "RLMT_NOFILE", "soft": -1, "hard": 5}, "out of range"),
        ({"type": "RLMT_NOFILE", "soft": "x", "hard": 5}, "not an integer"),
    ]:
        c = container(rlimit_info={"rlimits": [bad]})
        with pytest.raises(RlimitError, match=words):
            rlimits_of(c)
        assert words in (unsupported_container([c]) or "")


def task(**fields: Any) -> TaskInfo:
    return convert({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                    "command": {"value": "true"}, **fields}, TaskInfo)


def test_the_master_checks_containers_as_mesos_does() -> None:
    assert task_container_problem(task(container={"type": "MESOS"})) is None
    assert task_container_problem(task(container={"type": "DOCKER"})) == (
        "Task's `ContainerInfo` is invalid: DockerInfo 'docker' is not set for DOCKER typed "
        "ContainerInfo"
    )
    two = {"type": "MESOS", "volumes": [{"container_path": "d", "host_path": "/x", "image": {}}]}
    assert "Only one of them should be set" in (task_container_problem(task(container=two)) or "")
    named = {"type": "DOCKER", "docker": {"image": "i", "parameters": [{"key": "name", "value": "x"}]}}
    assert "must not be 'name'" in (task_container_problem(task(container=named)) or "")
    executor = convert({"executor_id": {"value": "e"}, "type": "DEFAULT",
                        "container": {"type": "MESOS", "mesos": {"image": {"type": "APPC"}}}},
                       ExecutorInfo)
    assert executor.type == ExecutorType.DEFAULT
    assert "must not be set for 'DEFAULT' executor" in (group_container_problem(executor, []) or "")
    plain = convert({"executor_id": {"value": "e"}, "type": "DEFAULT"}, ExecutorInfo)
    docker_task = task(container={"type": "DOCKER", "docker": {"image": "i"}})
    assert group_container_problem(plain, [docker_task]) == (
        "Docker ContainerInfo is not supported on the task"
    )


# ------------------------------------------------------------------ real master and agent


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Proc, Proc]]:
    master = start_master(tmp_path)
    agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:4096",
                        "--isolation", "posix/cpu,posix/mem,posix/rlimits")
    try:
        yield master, agent
    finally:
        agent.kill()
        kill_leftovers(tmp_path / "agent")
        master.kill()


@pytest.mark.slow
async def test_containers_the_agent_cannot_run_never_run(cluster: tuple[Proc, Proc], tmp_path: Path) -> None:
    master, _agent = cluster
    marker = tmp_path / "ran"
    touch = f"touch {marker}"
    async with MiniScheduler(master.url) as s:
        await s.launch([
            command_task("docker", touch, container={"type": "DOCKER", "docker": {"image": "busybox"}}),
            command_task("image", touch, container={
                "type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox"}}}}),
            command_task("cni", touch, container={"type": "MESOS", "network_infos": [{"name": "net1"}]}),
            command_task("nodocker", touch, container={"type": "DOCKER"}),
            command_task("limits", 'test "$(ulimit -n)" = 64 && test "$(ulimit -c)" = unlimited',
                         container={"type": "MESOS", "rlimit_info": {"rlimits": [
                             {"type": "RLMT_NOFILE", "soft": 64, "hard": 64}, {"type": "RLMT_CORE"}]}}),
            command_task("badlimits", touch, container={"type": "MESOS", "rlimit_info": {
                "rlimits": [{"type": "RLMT_NOFILE", "soft": 64}]}}),
        ])
        for task_id, words in [("docker", "DOCKER is not supported"),
                               ("image", "images are not supported"),
                               ("cni", "Network 'net1' is not supported"),
                               ("badlimits", "Invalid rlimit values for RLMT_NOFILE")]:
            failed = await s.wait_state(task_id, "TASK_FAILED")
            assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED", failed
            assert failed["message"].startswith("Failed to launch container: ") and words in failed["message"]
            assert failed["source"] == "SOURCE_AGENT"
        error = await s.wait_state("nodocker", "TASK_ERROR")
        assert error["source"] == "SOURCE_MASTER" and "DockerInfo 'docker' is not set" in error["message"]
        await s.wait_state("limits", "TASK_FINISHED")
    assert not marker.exists()
