"""Status codes and messages of today's calls on bad input, against a real master and agent,
compared with Apache Mesos's source (src/master/http.cpp `_reserve`, `_unreserve`,
`_createVolumes`, `_destroyVolumes`, `growVolume`, `shrinkVolume`, `_operation`;
src/master/validation.cpp `call::validate`; src/slave/http.cpp `waitContainer`,
`killContainer`, `_launchContainer`, `attachContainerOutput`; the Mesos containerizer's
launch of a nested container). Where mezzo differs on purpose it says so (docs/agent.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mezzo.testing.agent_harness import MiniScheduler, ProcessCluster, command_task
from mezzo.testing.processes import eventually

pytestmark = pytest.mark.slow

STREAM = {"Accept": "application/recordio", "Message-Accept": "application/json"}


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {
        "Content-Type": "application/json", "Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:2;mem:1024;disk:512;disk(web):256") as c:
        yield c


def dynamic(cpus: float) -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus},
             "reservations": [{"type": "DYNAMIC", "role": "web"}]}]


VOLUME = {"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
          "reservations": [{"type": "STATIC", "role": "web"}],
          "disk": {"persistence": {"id": "v1"}, "volume": {"container_path": "d", "mode": "RW"}}}


async def test_operator_calls_answer_as_mesos(cluster: ProcessCluster) -> None:
    cluster.agent()
    async with MiniScheduler(cluster.master.url) as sched:
        offer = await sched.wait_for(lambda: sched.offers and sched.offers[0])
    agent_id = offer["agent_id"]["value"]
    master = cluster.master.url + "/api/v1"
    on_agent = f"on agent {agent_id} at "
    mesos_missing_agent = ("Failed to validate master::Call: Expecting 'agent_id' to be present;"
                           " only agent default resources are supported right now")
    cases: list[tuple[dict[str, Any], int, str]] = [
        # _operation: what the agent lacks is a Conflict with the conversion's failure.
        ({"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": {"value": agent_id}, "resources": dynamic(8)}},
         409, " does not contain cpus:8"),
        ({"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
            "agent_id": {"value": agent_id}, "resources": dynamic(1)}},
         409, "does not contain cpus(reservations: [(DYNAMIC,web)]):1"),
        # An unknown agent is a BadRequest, for every operation.
        ({"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": {"value": "nope"}, "resources": dynamic(1)}}, 400, "No agent found with specified ID"),
        ({"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
            "agent_id": {"value": "nope"}, "resources": dynamic(1)}}, 400, "No agent found with specified ID"),
        ({"type": "CREATE_VOLUMES", "create_volumes": {
            "agent_id": {"value": "nope"}, "volumes": [VOLUME]}}, 400, "No agent found with specified ID"),
        ({"type": "GROW_VOLUME", "grow_volume": {
            "agent_id": {"value": "nope"}, "volume": VOLUME, "addition": VOLUME}},
         400, "No agent found with specified ID"),
        # validation.cpp: payloads and agent ids.
        ({"type": "RESERVE_RESOURCES"}, 400,
         "Failed to validate master::Call: Expecting 'reserve_resources' to be present"),
        ({"type": "GROW_VOLUME", "grow_volume": {"volume": VOLUME, "addition": VOLUME}}, 400,
         mesos_missing_agent),
        ({"type": "SHRINK_VOLUME", "shrink_volume": {"volume": VOLUME, "subtract": {"value": 1}}}, 400,
         mesos_missing_agent),
        ({"type": "UPDATE_QUOTA"}, 400, "Failed to validate master::Call: Expecting 'update_quota' to be present"),
        ({"type": "REMOVE_QUOTA", "remove_quota": {"role": ["web"]}}, 400,
         "Failed to validate master::Call: 'remove_quota.role' must be a string"),
        ({"type": "REMOVE_QUOTA", "remove_quota": {"role": "web"}}, 400,
         "Failed to remove quota: Role 'web' has no quota set"),
        # A reservation without a (known) type: Resources::validate refuses it.
        ({"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": agent_id}, "resources": [
            {**dynamic(1)[0], "reservations": [{"type": "FROB", "role": "web"}]}]}}, 400,
         "'Resource.ReservationInfo.type' field must be set"),
        # GROW_VOLUME of a volume of no size (the fuzz test's 500).
        ({"type": "GROW_VOLUME", "grow_volume": {"agent_id": {"value": agent_id},
                                                 "volume": {**VOLUME, "scalar": {"value": 0}},
                                                 "addition": {**VOLUME, "disk": None}}}, 400,
         "The size of 'GrowVolume.volume' field must be greater than zero"),
        # Operation validation: prefixed with the agent (RESERVE, CREATE...) or not (DESTROY).
        ({"type": "RESERVE_RESOURCES", "reserve_resources": {
            "agent_id": {"value": agent_id}, "resources": []}}, 400,
         f"Invalid RESERVE operation {on_agent}"),
        ({"type": "DESTROY_VOLUMES", "destroy_volumes": {
            "agent_id": {"value": agent_id}, "volumes": [VOLUME]}}, 400,
         "Invalid DESTROY operation: Persistent volumes not found"),
        ({"type": "CREATE_VOLUMES", "create_volumes": {
            "agent_id": {"value": agent_id}, "volumes": [{**VOLUME, "reservations": []}]}}, 400,
         "Persistent volumes cannot be created from unreserved resources"),
    ]
    for body, status, text in cases:
        got = post(master, body)
        assert got[0] == status and text in got[1] and "\n" not in got[1].strip(), (body["type"], got)


async def test_container_calls_answer_as_mesos(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    url = agent.url + "/api/v1"
    async with MiniScheduler(cluster.master.url) as sched:
        await sched.launch([command_task("t", "sleep 60")])
        update = await sched.wait_state("t", "TASK_RUNNING")
        parent = update["container_status"]["container_id"]
        name = parent["value"]
        unknown = {"value": "x", "parent": parent}
        cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
            # waitContainer / killContainer: NotFound with Mesos's words.
            ({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"container_id": unknown}}, {},
             404, f"Container {name}.x cannot be found"),
            ({"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {"container_id": unknown}}, {},
             404, f"Container '{name}.x' cannot be found (or is already killed)"),
            ({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "nope"}}}, {},
             404, "Container nope cannot be found"),
            # _launchContainer: a launch failure is a BadRequest (the containerizer's words).
            ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
                "container_id": {"value": "s", "parent": {"value": "nope"}}, "command": {"value": "true"}}},
             STREAM, 400, "Parent container nope does not exist"),
            # attachContainerOutput: an unknown root is NotFound; no switchboard is Mesos's 500.
            ({"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {
                "container_id": {"value": "nope"}}}, STREAM, 404, "Container nope cannot be found"),
            ({"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {"container_id": parent}},
             STREAM, 500, "I/O switchboard server was disabled for this container"),
        ]
        for body, headers, status, text in cases:
            got = post(url, body, headers)
            assert got == (status, text), (body["type"], got)
        # A session on a parent that is no longer running: the same BadRequest.
        await sched.call({"type": "KILL", "kill": {"task_id": {"value": "t"}, "agent_id": update["agent_id"]}})
        await sched.wait_state("t", "TASK_KILLED")
        # TASK_KILLED may arrive before the executor's container has ended: wait for that.
        await eventually(lambda: name not in post(url, {"type": "GET_CONTAINERS"})[1],
                         30, "the executor's container to end")
        got = post(url, {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
            "container_id": {"value": "late", "parent": parent}, "command": {"value": "true"}}}, STREAM)
        assert got == (400, f"Parent container {name} does not exist"), got
