"""Fuzz every HTTP API of a real master and agent (subprocesses, loopback) with seeded mutations
of valid calls (`mezzo.testing.fuzz`), and check what issue 9 promises of bad input:

- no 5xx, ever; no dropped connection except on framing the server cannot parse;
- a refused call (4xx) changes nothing: the cluster's state (frameworks, tasks, the agent's
  resources, weights, what the agent runs) is the same before and after it;
- neither process logs an unhandled exception, and afterwards a real task still launches and
  finishes.

The corpus covers every call, today's included: reservations, persistent volumes, quota,
operation feedback and task groups (ACCEPTs of the framework's newest offer, filled in before
each draw, and operator calls), nested and standalone containers, sessions and the ATTACH
streams (ATTACH_CONTAINER_INPUT as a chunked RecordIO request body), and the files each daemon
serves: sandboxes at their real paths and at the live executor's virtual path
(`/frameworks/<framework>/executors/<executor>/runs/latest`), and both daemons' logs
(`/master/log`, `/slave/log`: they run with `--log_dir`), through `/files/*`, LIST_FILES and
READ_FILE, whose virtual paths the fuzzer also mutates part by part. The only 5xx allowed are
501 and Mesos's 500 on ATTACH to an ended container or one without an I/O switchboard, which
the Mesos CLI reads (`mesos_500`).

Everything runs twice (`cluster`'s params): on an open cluster, and on one with every
authentication on (master realms, agent realms, executor tokens), where the seeds carry
credentials that the fuzzer also mangles (a 401 is one more 4xx that must change nothing).

Deterministic: each seed gives the same request sequence. `MEZZO_FUZZ_SEEDS` (comma-separated)
and `MEZZO_FUZZ_REQUESTS` (per seed) widen a run by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from mezzo.agent.nested import NO_SWITCHBOARD
from mezzo.security.authentication import basic_header
from mezzo.security.executor_tokens import ExecutorTokens
from mezzo.testing.agent_harness import (
    MiniScheduler,
    Proc,
    command_task,
    default_executor,
    start_agent,
    start_master,
)
from mezzo.testing.fuzz import Fuzzer, FuzzRequest, Outcome, Seed, send

# ~50 s for the three seeds (2,100 requests) on an idle machine: with the slow scenarios.
pytestmark = pytest.mark.slow

SEEDS = [int(s) for s in os.environ.get("MEZZO_FUZZ_SEEDS", "1,2,3").split(",")]
REQUESTS_PER_SEED = int(os.environ.get("MEZZO_FUZZ_REQUESTS", "700"))
# Log lines that mean a request escaped its handler's error handling.
UNHANDLED = ("Traceback", "Error handling request", "Unhandled exception")


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as reply:
        return json.load(reply)


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(),
        {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        data = reply.read()
        return json.loads(data) if data else None


# Static disk of the fuzzing framework's role: what its persistent volumes are made of.
AGENT_RESOURCES = "cpus:4;mem:2048;disk:1024;disk(fuzz):512;ports:[31000-31100]"
# Placeholder of the live offer id in the ACCEPT seeds, filled before each draw.
OFFER = "@@offer@@"
FUZZ_CREDENTIAL = {"Authorization": basic_header("fuzz", "fuzz-s3cret")}
EXECUTOR_KEY = "the fuzzing cluster's executor token key"


@dataclass
class Cluster:
    master: Proc
    agent: Proc
    agent_id: str
    # The credentials of every request the tests make ({} on the open cluster), and the key
    # executor tokens are signed with (None: executors are not authenticated).
    headers: dict[str, str]
    executor_key: str | None = None

    @property
    def master_address(self) -> tuple[str, int]:
        host, port = self.master.address.split(":")
        return host, int(port)

    @property
    def agent_address(self) -> tuple[str, int]:
        host, port = self.agent.address.split(":")
        return host, int(port)


@pytest.fixture(scope="module", params=["open", "authenticated"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    master_args: list[str] = []
    agent_args: list[str] = []
    headers: dict[str, str] = {}
    key: str | None = None
    if request.param == "authenticated":
        (tmp / "credentials").write_text("fuzz fuzz-s3cret\nagent ag3nt\n")
        (tmp / "agent-credential").write_text("agent ag3nt\n")
        (tmp / "executor-key").write_text(EXECUTOR_KEY)
        master_args = ["--credentials", str(tmp / "credentials"),
                       *(f"--{flag}=true" for flag in (
                           "authenticate_http_frameworks", "authenticate_agents",
                           "authenticate_http_readonly", "authenticate_http_readwrite"))]
        agent_args = ["--credential", str(tmp / "agent-credential"),
                      "--http_credentials", str(tmp / "credentials"),
                      "--authenticate_http_readonly", "true", "--authenticate_http_readwrite", "true",
                      "--jwt_secret_key", str(tmp / "executor-key"),
                      "--authenticate_http_executors", "true"]
        headers, key = FUZZ_CREDENTIAL, EXECUTOR_KEY
    # Both daemons log to a --log_dir too, so that /master/log and /slave/log are live.
    master = start_master(tmp, "--log_dir", str(tmp / "master-log"), *master_args)
    agent = start_agent(tmp, master.address, "--resources", AGENT_RESOURCES,
                        "--log_dir", str(tmp / "agent-log"), *agent_args)
    try:
        deadline = time.monotonic() + 30
        while True:
            slaves = get_json(master.url + "/state", headers)["slaves"]
            if slaves:
                break
            assert time.monotonic() < deadline, master.log()
            time.sleep(0.1)
        yield Cluster(master, agent, slaves[0]["id"], headers, key)
    finally:
        agent.kill()
        master.kill()


def projection(cluster: Cluster) -> dict[str, Any]:
    """What a refused call must leave untouched. Timestamps, offers, connection flags and
    fake agents (which come and go on their own timers) are left out."""
    state = get_json(cluster.master.url + "/state", cluster.headers)
    frameworks = {}
    tasks = {}
    for fw in state["frameworks"] + state["completed_frameworks"]:
        frameworks[fw["id"]] = (fw.get("name"), sorted(fw.get("roles") or []))
        for task in fw.get("tasks", []) + fw.get("unreachable_tasks", []) + fw.get("completed_tasks", []):
            tasks[task["id"]] = task["state"]
    agent = next((a for a in state["slaves"] if a["id"] == cluster.agent_id), None)
    weights = post_json(cluster.master.url + "/api/v1", {"type": "GET_WEIGHTS"}, cluster.headers)
    quota = post_json(cluster.master.url + "/api/v1", {"type": "GET_QUOTA"}, cluster.headers)
    operations = post_json(cluster.master.url + "/api/v1", {"type": "GET_OPERATIONS"}, cluster.headers)
    agent_state = get_json(cluster.agent.url + "/state", cluster.headers)
    containers = post_json(cluster.agent.url + "/api/v1", {
        "type": "GET_CONTAINERS", "get_containers": {"show_nested": True, "show_standalone": True}},
        cluster.headers)
    executors = {
        (fw["id"], ex["id"]): sorted((t["id"], t["state"]) for t in ex["tasks"])
        for fw in agent_state["frameworks"] for ex in fw["executors"]
    }
    return {
        "frameworks": frameworks,
        "tasks": tasks,
        "agent": agent and (agent["resources"], agent.get("attributes"),
                            agent.get("reserved_resources_full")),
        "weights": weights,
        "quota": quota,
        "operations": sorted(
            json.dumps(o.get("info"), sort_keys=True)
            for o in operations.get("get_operations", {}).get("operations", [])),
        "agent_executors": executors,
        "agent_total": agent_state["resources"],
        "agent_reserved": agent_state.get("reserved_resources_full"),
        "containers": sorted(json.dumps(c["container_id"], sort_keys=True)
                             for c in containers["get_containers"]["containers"]),
    }


async def settled(cluster: Cluster, timeout: float = 5.0) -> dict[str, Any]:
    """The projection once two reads 200 ms apart agree (after an accepted call whose effects
    may still be travelling between scheduler, master, agent and executor)."""
    loop = asyncio.get_running_loop()
    last = await asyncio.to_thread(projection, cluster)
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        now = await asyncio.to_thread(projection, cluster)
        if now == last:
            return now
        last = now
    return last


@dataclass
class Live:
    """Ids of the live cluster the seeds point at."""

    framework_id: str
    stream_id: str
    agent_id: str
    offer_id: str
    task_id: str
    executor_id: str
    sandbox: str
    container_id: str
    tty_container: dict[str, Any]  # a nested container running `cat` on a TTY


FUZZ_PRINCIPAL = "fuzz"


def _disk(mb: float, *, volume: str | None = None, dynamic: bool = False) -> dict[str, Any]:
    """Disk of the fuzzing role (statically reserved, or dynamically on top), as a volume
    called `volume` if given."""
    reservations: list[dict[str, Any]] = [{"type": "STATIC", "role": "fuzz"}]
    if dynamic:
        reservations.append({"type": "DYNAMIC", "role": "fuzz", "principal": FUZZ_PRINCIPAL})
    out: dict[str, Any] = {"name": "disk", "type": "SCALAR", "scalar": {"value": mb},
                           "reservations": reservations}
    if volume is not None:
        out["disk"] = {"persistence": {"id": volume, "principal": FUZZ_PRINCIPAL},
                       "volume": {"container_path": "data", "mode": "RW"}}
    return out


def _reserved(cpus: float) -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus},
             "reservations": [{"type": "DYNAMIC", "role": "fuzz", "principal": FUZZ_PRINCIPAL,
                               "labels": {"labels": [{"key": "fuzz", "value": "1"}]}}]}]


TODAYS_MASTER_CALLS = (
    "accept-", "acknowledge-operation", "reconcile-operations", "operator-reserve", "operator-unreserve",
    "operator-create_volumes", "operator-destroy_volumes", "operator-grow", "operator-shrink",
    "operator-set_quota", "operator-update_quota", "operator-remove_quota", "operator-get_operations",
    "master-quota",
)
TODAYS_AGENT_CALLS = (
    "agent-launch-", "agent-wait-", "agent-kill-", "agent-remove-", "agent-attach-",
    "agent-operator-launch-container",
)


def with_offer(body: Any, offer_id: str) -> Any:
    """`body` with the OFFER placeholder replaced by `offer_id`."""
    if isinstance(body, dict):
        return {k: with_offer(v, offer_id) for k, v in body.items()}
    if isinstance(body, list):
        return [with_offer(v, offer_id) for v in body]
    return offer_id if body == OFFER else body


def seeds(live: Live, cluster: Cluster) -> tuple[list[Seed], list[Seed]]:
    """Valid calls for every endpoint: (master seeds, agent seeds)."""
    fw = {"value": live.framework_id}
    auth = cluster.headers
    stream = {"Mesos-Stream-Id": live.stream_id, **auth}
    task = command_task("fuzz-launched", "true", cpus=0.01, mem=8,
                        kill_policy={"grace_period": {"nanoseconds": 1_000_000_000}},
                        labels={"labels": [{"key": "k", "value": "v"}]})
    task["agent_id"] = {"value": live.agent_id}
    scalar = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
              {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]
    status = {"task_id": {"value": live.task_id}, "state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR",
              "uuid": "AAAAAAAAAAAAAAAAAAAAAA==", "agent_id": {"value": live.agent_id}}
    sched = "/api/v1/scheduler"

    def call(name: str, body: dict[str, Any], settles: bool = False) -> Seed:
        return Seed(name, sched, {"framework_id": fw, **body}, headers=stream, settles=settles)

    master = [
        Seed("subscribe", sched, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "fuzz", "name": "fuzz-new", "roles": ["fuzz"], "failover_timeout": 0,
            "capabilities": [{"type": "MULTI_ROLE"}]}}}, headers=dict(auth), streams=True),
        call("accept", {"type": "ACCEPT", "accept": {
            "offer_ids": [{"value": live.offer_id}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            "filters": {"refuse_seconds": 1.0}}}, settles=True),
        call("decline", {"type": "DECLINE", "decline": {"offer_ids": [{"value": "no-such-offer"}],
                                                        "filters": {"refuse_seconds": 5.0}}}),
        call("revive", {"type": "REVIVE", "revive": {"roles": ["*"]}}),
        call("suppress", {"type": "SUPPRESS", "suppress": {"roles": ["not-mine"]}}),
        call("kill", {"type": "KILL", "kill": {"task_id": {"value": "no-such-task"},
                                               "agent_id": {"value": live.agent_id},
                                               "kill_policy": {"grace_period": {"nanoseconds": 5}}}}),
        call("shutdown", {"type": "SHUTDOWN", "shutdown": {"executor_id": {"value": "no-such-executor"},
                                                           "agent_id": {"value": live.agent_id}}}),
        call("acknowledge", {"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": {"value": live.agent_id}, "task_id": {"value": live.task_id},
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}),
        call("reconcile", {"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": live.task_id}, "agent_id": {"value": live.agent_id}}]}}),
        call("message", {"type": "MESSAGE", "message": {
            "agent_id": {"value": live.agent_id}, "executor_id": {"value": live.executor_id}, "data": "aGk="}}),
        call("request", {"type": "REQUEST", "request": {"requests": [{"resources": scalar}]}}),
        call("update-framework", {"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": {
            "id": fw, "user": "root", "name": "fuzz", "checkpoint": False,
            "capabilities": [{"type": "TASK_KILLING_STATE"}]}}}),
        # Today's calls: reservations, volumes, task groups and operation feedback, in ACCEPTs of
        # the live offer (OFFER is replaced by the framework's newest offer before each draw).
        *(call(f"accept-{name}", {"type": "ACCEPT", "accept": {
            "offer_ids": [{"value": OFFER}], "operations": [operation],
            "filters": {"refuse_seconds": 0.5}}}, settles=True) for name, operation in [
            ("reserve", {"type": "RESERVE", "id": {"value": "fuzz-op-reserve"},
                         "reserve": {"resources": _reserved(0.05)}}),
            ("unreserve", {"type": "UNRESERVE", "id": {"value": "fuzz-op-unreserve"},
                           "unreserve": {"resources": _reserved(0.05)}}),
            ("create", {"type": "CREATE", "create": {"volumes": [_disk(16, volume="fuzz-vol")]}}),
            ("destroy", {"type": "DESTROY", "destroy": {"volumes": [_disk(16, volume="fuzz-vol")]}}),
            ("grow", {"type": "GROW_VOLUME", "grow_volume": {
                "volume": _disk(16, volume="fuzz-vol"), "addition": _disk(4)}}),
            ("shrink", {"type": "SHRINK_VOLUME", "shrink_volume": {
                "volume": _disk(20, volume="fuzz-vol"), "subtract": {"value": 4}}}),
            ("launch-group", {"type": "LAUNCH_GROUP", "launch_group": {
                "executor": {**default_executor("fuzz-default", cpus=0.05, mem=32, disk=4),
                             "framework_id": fw},
                "task_group": {"tasks": [{**command_task("fuzz-group-task", "true", cpus=0.01, mem=8),
                                          "agent_id": {"value": live.agent_id}}]}}}),
        ]),
        call("acknowledge-operation", {"type": "ACKNOWLEDGE_OPERATION_STATUS", "acknowledge_operation_status": {
            "agent_id": {"value": live.agent_id}, "operation_id": {"value": "fuzz-op-reserve"},
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}),
        call("reconcile-operations", {"type": "RECONCILE_OPERATIONS", "reconcile_operations": {"operations": [
            {"operation_id": {"value": "fuzz-op-reserve"}, "agent_id": {"value": live.agent_id}}]}}),
        # TEARDOWN of the fuzzing framework itself would end the run; another id is refused.
        Seed("teardown-other", sched, {"type": "TEARDOWN", "framework_id": {"value": "no-such-framework"}},
             headers=stream),
    ]
    operator = [
        {"type": t} for t in ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_STATE", "GET_AGENTS",
                              "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_TASKS", "GET_ROLES",
                              "GET_WEIGHTS", "GET_MASTER", "GET_MAINTENANCE_STATUS", "GET_QUOTA")
    ] + [
        {"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 1000000000}}},
        {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "fuzz", "weight": 2.0}]}},
        {"type": "TEARDOWN", "teardown": {"framework_id": {"value": "no-such-framework"}}},
        {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "no-such-agent"}}},
        {"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": live.agent_id},
                                                            "resources": scalar}},
        {"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": live.agent_id},
                                                            "resources": _reserved(0.05)}},
        {"type": "SET_QUOTA", "set_quota": {"quota_request": {"role": "fuzz", "guarantee": scalar}}},
        {"type": "REMOVE_QUOTA", "remove_quota": {"role": "fuzz"}},
        {"type": "UPDATE_QUOTA", "update_quota": {"force": False, "quota_configs": [
            {"role": "fuzz-quota", "guarantees": {"cpus": {"value": 0.5}, "mem": {"value": 64}},
             "limits": {"cpus": {"value": 2}, "mem": {"value": 1024}}}]}},
        {"type": "GET_OPERATIONS"},
        {"type": "LIST_FILES", "list_files": {"path": "/master/log"}},
        {"type": "GET_LOGGING_LEVEL"},
        {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 0, "duration": {"nanoseconds": 1_000_000_000}}},
        {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0, "length": 100}},
        {"type": "UNRESERVE_RESOURCES", "unreserve_resources": {"agent_id": {"value": live.agent_id},
                                                                "resources": _reserved(0.05)}},
        {"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": {"value": live.agent_id},
                                                      "volumes": [_disk(8, volume="fuzz-op-vol")]}},
        {"type": "DESTROY_VOLUMES", "destroy_volumes": {"agent_id": {"value": live.agent_id},
                                                        "volumes": [_disk(8, volume="fuzz-op-vol")]}},
        {"type": "GROW_VOLUME", "grow_volume": {"agent_id": {"value": live.agent_id},
                                                "volume": _disk(8, volume="fuzz-op-vol"),
                                                "addition": _disk(2)}},
        {"type": "SHRINK_VOLUME", "shrink_volume": {"agent_id": {"value": live.agent_id},
                                                    "volume": _disk(10, volume="fuzz-op-vol"),
                                                    "subtract": {"value": 2}}},
    ]
    master += [Seed(f"operator-{b['type'].lower()}", "/api/v1", b, headers=dict(auth), settles=True)
               for b in operator]
    master.append(Seed("operator-subscribe", "/api/v1", {"type": "SUBSCRIBE"}, headers=dict(auth),
                       streams=True))
    fake = {"value": "fuzz-fake-agent"}
    agent_protocol = [
        Seed("agent-subscribe", "/api/v1/agent", {"type": "SUBSCRIBE", "subscribe": {"agent_info": {
            "hostname": "fuzz-fake", "port": 5051, "resources": scalar}}}, streams=True),
        Seed("agent-status-update", "/api/v1/agent", {"type": "STATUS_UPDATE", "agent_id": fake,
             "status_update": {"framework_id": fw, "status": status}}),
        Seed("agent-pong", "/api/v1/agent", {"type": "PONG", "agent_id": fake, "pong": {"ping_id": 1}}),
        Seed("agent-message", "/api/v1/agent", {"type": "FRAMEWORK_MESSAGE", "agent_id": fake,
             "framework_message": {"framework_id": fw, "executor_id": {"value": live.executor_id},
                                   "data": "aGk="}}),
        Seed("agent-executor-exited", "/api/v1/agent", {"type": "EXECUTOR_EXITED", "agent_id": fake,
             "executor_exited": {"framework_id": fw, "executor_id": {"value": live.executor_id}, "status": 0}}),
        Seed("agent-unregister", "/api/v1/agent", {"type": "UNREGISTER", "agent_id": fake}),
    ]
    master += agent_protocol
    master += [
        Seed("master-tasks", "/tasks", None, method="GET", query={"limit": "10", "offset": "0"}),
        Seed("master-state", "/state", None, method="GET", query={"jsonp": "cb"}),
        Seed("master-metrics", "/metrics/snapshot", None, method="GET", query={}),
        Seed("master-quota", "/quota", None, method="GET", query={}),
        Seed("master-files-read", "/files/read", None, method="GET",
             query={"path": "/master/log", "offset": "0", "length": "100"}),
        Seed("master-files-browse", "/files/browse", None, method="GET", query={"path": "/master"}),
        Seed("master-logging-toggle", "/logging/toggle", None, method="GET",
             query={"level": "0", "duration": "1secs"}),
        # The web UI's proxy to the agent's sandbox files.
        Seed("master-proxy-files-read", f"/agent/{live.agent_id}/files/read", None, method="GET",
             query={"path": live.sandbox + "/stdout", "offset": "0", "length": "100"}),
        Seed("master-proxy-files-browse", f"/agent/{live.agent_id}/files/browse", None, method="GET",
             query={"path": live.sandbox}),
        Seed("master-proxy-files-virtual-read", f"/agent/{live.agent_id}/files/read", None, method="GET",
             query={"path": f"/frameworks/{live.framework_id}/executors/{live.executor_id}/runs/latest/stdout",
                    "offset": "0", "length": "100"}),
    ]

    ex = {"framework_id": fw, "executor_id": {"value": live.executor_id}}
    virtual = f"/frameworks/{live.framework_id}/executors/{live.executor_id}/runs/latest"
    parent = {"value": live.container_id}
    nested = {"value": "fuzz-nested", "parent": parent}
    agent = [
        Seed(f"agent-operator-{t.lower()}", "/api/v1", {"type": t})
        for t in ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_STATE", "GET_FRAMEWORKS",
                  "GET_EXECUTORS", "GET_TASKS", "GET_AGENT", "GET_CONTAINERS", "GET_OPERATIONS")
    ] + [
        Seed("agent-operator-read-file", "/api/v1", {"type": "READ_FILE", "read_file": {
            "path": live.sandbox + "/stdout", "offset": 0, "length": 10}}),
        Seed("agent-operator-launch-container", "/api/v1", {"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": "c"}, "command": {"value": "true"}, "resources": scalar}}, settles=True),
        # Nested containers in the live task's executor container, and the TTY one's streams.
        Seed("agent-launch-nested", "/api/v1", {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": nested, "command": {"value": "true", "shell": True,
                                                "environment": {"variables": [{"name": "A", "value": "b"}]}},
            "container": {"type": "MESOS"}}}, settles=True),
        Seed("agent-launch-session", "/api/v1", {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
             "launch_nested_container_session": {
                 "container_id": {"value": "fuzz-session", "parent": parent},
                 "command": {"value": "echo", "shell": False, "arguments": ["echo", "hi"]},
                 "container": {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}}},
             streams=True, settles=True),
        Seed("agent-wait-nested", "/api/v1", {"type": "WAIT_NESTED_CONTAINER",
                                              "wait_nested_container": {"container_id": nested}}),
        Seed("agent-wait-container", "/api/v1", {"type": "WAIT_CONTAINER",
                                                 "wait_container": {"container_id": {"value": "c"}}}),
        Seed("agent-kill-nested", "/api/v1", {"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": nested, "signal": 15}}, settles=True),
        Seed("agent-remove-nested", "/api/v1", {"type": "REMOVE_NESTED_CONTAINER",
                                                "remove_nested_container": {"container_id": nested}},
             settles=True),
        Seed("agent-remove-container", "/api/v1", {"type": "REMOVE_CONTAINER",
                                                   "remove_container": {"container_id": {"value": "c"}}},
             settles=True),
        Seed("agent-attach-output", "/api/v1", {"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {
            "container_id": live.tty_container}}, streams=True),
        Seed("agent-attach-input", "/api/v1", None, records=[
            {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
                "type": "CONTAINER_ID", "container_id": live.tty_container}},
            {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {"type": "PROCESS_IO", "process_io": {
                "type": "DATA", "data": {"type": "STDIN", "data": "aGkK"}}}},
            {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {"type": "PROCESS_IO", "process_io": {
                "type": "CONTROL", "control": {"type": "TTY_INFO", "tty_info": {
                    "window_size": {"rows": 30, "columns": 100}}}}}},
            {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {"type": "PROCESS_IO", "process_io": {
                "type": "CONTROL", "control": {"type": "HEARTBEAT", "heartbeat": {
                    "interval": {"nanoseconds": 1000000000}}}}}},
        ]),
        # The executor API, with the ids of the live executor.
        Seed("executor-heartbeat", "/api/v1/executor", {"type": "HEARTBEAT", **ex}),
        Seed("executor-message", "/api/v1/executor", {"type": "MESSAGE", **ex, "message": {"data": "aGk="}}),
        Seed("executor-update", "/api/v1/executor", {"type": "UPDATE", **ex, "update": {"status": {
            **status, "executor_id": {"value": live.executor_id}, "state": "TASK_RUNNING"}}}, settles=True),
        Seed("executor-subscribe-other", "/api/v1/executor", {
            "type": "SUBSCRIBE", "framework_id": fw, "executor_id": {"value": "no-such-executor"},
            "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []}}, streams=True),
        Seed("files-read", "/files/read", None, method="GET",
             query={"path": live.sandbox + "/stdout", "offset": "0", "length": "100"}),
        Seed("files-browse", "/files/browse", None, method="GET", query={"path": live.sandbox}),
        # The agent's virtual paths: the live executor's latest run and (--log_dir) its log.
        Seed("files-virtual-read", "/files/read", None, method="GET",
             query={"path": virtual + "/stdout", "offset": "0", "length": "100"}),
        Seed("files-virtual-browse", "/files/browse", None, method="GET", query={"path": virtual}),
        Seed("files-virtual-download", "/files/download", None, method="GET",
             query={"path": virtual + "/stdout"}),
        Seed("files-log-read", "/files/read", None, method="GET",
             query={"path": "/slave/log", "offset": "0", "length": "100"}),
        Seed("files-log-browse", "/files/browse", None, method="GET", query={"path": "/slave/log"}),
        Seed("files-debug", "/files/debug", None, method="GET", query={"jsonp": "cb"}),
        # The verbosity toggle over the daemon's --logging_level.
        Seed("agent-logging-toggle", "/logging/toggle", None, method="GET",
             query={"level": "0", "duration": "1secs"}),
        Seed("agent-operator-set-logging-level", "/api/v1", {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
            "level": 0, "duration": {"nanoseconds": 1_000_000_000}}}),
        Seed("agent-operator-get-logging-level", "/api/v1", {"type": "GET_LOGGING_LEVEL"}),
        Seed("agent-operator-virtual-list-files", "/api/v1", {"type": "LIST_FILES", "list_files": {
            "path": virtual}}),
        Seed("agent-operator-virtual-read-file", "/api/v1", {"type": "READ_FILE", "read_file": {
            "path": virtual + "/stdout", "offset": 0, "length": 10}}),
        Seed("agent-operator-log-list-files", "/api/v1", {"type": "LIST_FILES", "list_files": {
            "path": "/slave/log"}}),
        Seed("agent-operator-log-read-file", "/api/v1", {"type": "READ_FILE", "read_file": {
            "path": "/slave/log", "offset": 0, "length": 100}}),
        Seed("agent-state", "/state", None, method="GET", query={"jsonp": "cb"}),
    ]
    # Today's calls are drawn three times as often as the others.
    master = [dataclasses.replace(s, weight=3) if s.name.startswith(TODAYS_MASTER_CALLS) else s
              for s in master]
    agent = [dataclasses.replace(s, weight=3) if s.name.startswith(TODAYS_AGENT_CALLS) else s
             for s in agent]
    if cluster.headers:
        # The authenticated cluster: every seed carries what its realm asks for.
        token = ExecutorTokens(cluster.executor_key.encode()).mint(  # type: ignore[union-attr]
            live.framework_id, live.executor_id, live.container_id)
        agent_credential = {"Authorization": basic_header("agent", "ag3nt")}

        def credential(seed: Seed) -> Seed:
            if seed.path == "/api/v1/agent":
                header = agent_credential
            elif seed.path == "/api/v1/executor":
                header = {"Authorization": f"Bearer {token}"}
            else:
                header = cluster.headers
            return dataclasses.replace(seed, headers={**seed.headers, **header})

        master, agent = [credential(s) for s in master], [credential(s) for s in agent]
    return master, agent


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(cluster: Cluster) -> AsyncIterator[tuple[Live, MiniScheduler]]:
    """A framework (role `fuzz`) with one long-running task, and a nested container on a TTY
    in that task's container: the ids the seeds use."""
    info = {"roles": ["fuzz"], "principal": FUZZ_PRINCIPAL,
            "capabilities": [{"type": "MULTI_ROLE"}, {"type": "TASK_KILLING_STATE"},
                             {"type": "RESERVATION_REFINEMENT"}]}
    async with MiniScheduler(cluster.master.url, name="fuzz", headers=cluster.headers,
                             framework_info=info) as sched:
        offer = await sched.wait_for(
            lambda: next((o for o in sched.offers if o["agent_id"]["value"] == cluster.agent_id), None)
        )
        sched.offers.remove(offer)
        task = command_task("fuzz-sleeper", "sleep 600", cpus=0.1, mem=16)
        task["agent_id"] = offer["agent_id"]
        status, body = await sched.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
        assert status == 202, body
        await sched.wait_state("fuzz-sleeper", "TASK_RUNNING")
        agent_state = await asyncio.to_thread(get_json, cluster.agent.url + "/state", cluster.headers)
        executor = agent_state["frameworks"][0]["executors"][0]
        next_offer = await sched.wait_for(lambda: sched.offers and sched.offers[-1])
        assert sched.framework_id is not None and sched.stream_id is not None
        tty = {"value": "fuzz-tty", "parent": {"value": executor["container"]}}
        await asyncio.to_thread(post_json, cluster.agent.url + "/api/v1", {
            "type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
                "container_id": tty, "command": {"value": "cat", "shell": True},
                "container": {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}}},
            cluster.headers)
        yield Live(sched.framework_id, sched.stream_id, cluster.agent_id, next_offer["id"]["value"],
                   "fuzz-sleeper", executor["id"], executor["directory"], executor["container"], tty), sched


def mesos_500(request: FuzzRequest, outcome: Outcome) -> bool:
    """The 500s Mesos gives on ATTACH to a container that ended or has no I/O switchboard,
    kept because the Mesos CLI reads them (docs/agent.md): never for an id the agent never ran."""
    return (outcome.status == 500 and request.seed.startswith("agent-attach")
            and (outcome.body == NO_SWITCHBOARD.encode() or outcome.body.startswith(b"Unknown container ")))


def current_offer(sched: MiniScheduler, agent_id: str, used: set[str]) -> str:
    """The framework's newest offer of the agent that is neither used nor rescinded."""
    gone = used | {e["rescind"]["offer_id"]["value"] for e in sched.events if e.get("type") == "RESCIND"}
    for offer in reversed(sched.offers):
        if offer["agent_id"]["value"] == agent_id and offer["id"]["value"] not in gone:
            return str(offer["id"]["value"])
    return "no-live-offer"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("seed", SEEDS)
async def test_mutated_requests_get_a_4xx_and_change_nothing(
    cluster: Cluster, live: tuple[Live, MiniScheduler], seed: int
) -> None:
    ids, sched = live
    master_seeds, agent_seeds = seeds(ids, cluster)
    templates = {s.name: s.body for s in master_seeds if s.name.startswith("accept")}
    used: set[str] = set()
    targets = [(cluster.master_address, Fuzzer(master_seeds, seed)),
               (cluster.agent_address, Fuzzer(agent_seeds, seed + 1_000_003))]
    rng_pick = Fuzzer([], seed).rng
    failures: list[str] = []
    statuses: dict[int, int] = {}
    per_seed: dict[str, dict[int, int]] = {}
    before = await settled(cluster)
    log_start = {proc.log_path: len(proc.log()) for proc in (cluster.master, cluster.agent)}
    for _ in range(REQUESTS_PER_SEED):
        address, fuzzer = targets[0] if rng_pick.random() < 0.6 else targets[1]
        offer_id = current_offer(sched, ids.agent_id, used)
        for s in master_seeds:
            if s.name in templates:
                s.body = with_offer(templates[s.name], offer_id)
        request: FuzzRequest = fuzzer.draw()
        outcome: Outcome = await send(address, request)
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        per_seed.setdefault(request.seed, {}).setdefault(outcome.status, 0)
        per_seed[request.seed][outcome.status] += 1
        where = f"{request.describe()} -> {outcome.status} {outcome.error} {outcome.body[:200]!r}"
        if outcome.status >= 500 and outcome.status != 501 and not mesos_500(request, outcome):
            # 501: a known call not served
            failures.append(f"5xx: {where}")
        elif outcome.dropped and not request.may_drop:
            failures.append(f"dropped: {where}")
        elif 400 <= outcome.status < 500 or outcome.dropped:
            after = await asyncio.to_thread(projection, cluster)
            if after != before:
                # Something may still be settling from an earlier accepted call: look again.
                after = await settled(cluster)
                if after != before:
                    failures.append(f"state changed by a refused call: {where}\n  {before}\n  {after}")
            before = after
        elif request.settles:
            if request.seed.startswith("accept"):
                used.add(offer_id)
            before = await settled(cluster)
        else:
            before = await asyncio.to_thread(projection, cluster)
        if len(failures) >= 20:
            break
    for proc in (cluster.master, cluster.agent):
        assert proc.popen.poll() is None, f"process exited:\n{proc.log()[-3000:]}"
        log = proc.log()[log_start[proc.log_path]:]  # this seed's part
        for marker in UNHANDLED:
            if marker in log:
                failures.append(f"unhandled exception in {proc.log_path.name}:\n{log[log.index(marker) - 500:][:3000]}")
                break
    print(f"seed {seed} ({'authenticated' if cluster.headers else 'open'}): statuses {sorted(statuses.items())}")
    print("  per call:", "; ".join(f"{name} {sorted(c.items())}" for name, c in sorted(per_seed.items())))
    assert not failures, "\n".join(failures) + f"\nstatuses: {statuses}"
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > REQUESTS_PER_SEED // 2, statuses


@pytest.mark.asyncio(loop_scope="module")
async def test_a_real_task_still_runs_after_the_fuzzing(
    cluster: Cluster, live: tuple[Live, MiniScheduler]
) -> None:
    _, fuzzing = live
    # Quota the fuzzing set (a guarantee holds back headroom from other roles) goes.
    quota = await asyncio.to_thread(post_json, cluster.master.url + "/api/v1", {"type": "GET_QUOTA"},
                                    cluster.headers)
    roles = [c["role"] for c in quota["get_quota"]["status"].get("configs", [])]
    if roles:
        await asyncio.to_thread(post_json, cluster.master.url + "/api/v1", {
            "type": "UPDATE_QUOTA", "update_quota": {"force": True, "quota_configs": [
                {"role": role} for role in roles]}}, cluster.headers)
    # What the fuzzing reserved dynamically (amounts mutated up to whole cpus) is given back.
    state = await asyncio.to_thread(get_json, cluster.master.url + "/state", cluster.headers)
    agent = next(a for a in state["slaves"] if a["id"] == cluster.agent_id)
    for resources in (agent.get("reserved_resources_full") or {}).values():
        for resource in resources:
            stack = resource.get("reservations") or []
            if stack and stack[-1].get("type") == "DYNAMIC" and "persistence" not in resource.get("disk", {}):
                try:
                    await asyncio.to_thread(post_json, cluster.master.url + "/api/v1", {
                        "type": "UNRESERVE_RESOURCES", "unreserve_resources": {
                            "agent_id": {"value": cluster.agent_id}, "resources": [resource]}},
                        cluster.headers)
                except urllib.error.HTTPError as error:  # in use by a task: left alone
                    print("not unreserved:", resource, error.code, error.read()[:200])
    # The fuzzing framework holds its offers (as any framework may): it stops taking new ones
    # (a decline's filter does not cover an offer that grew since) and gives them back.
    status, body = await fuzzing.call({"type": "SUPPRESS", "suppress": {}})
    assert status == 202, body
    for offer in fuzzing.offers:
        await fuzzing.call({"type": "DECLINE", "decline": {
            "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 600}}})
    async with MiniScheduler(cluster.master.url, name="after-fuzz", headers=cluster.headers) as sched:
        offer = await sched.wait_for(
            lambda: next((o for o in sched.offers if o["agent_id"]["value"] == cluster.agent_id), None)
        )
        task = command_task("after-fuzz", "echo done", cpus=0.05, mem=16)
        task["agent_id"] = offer["agent_id"]
        status, body = await sched.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
        assert status == 202, body
        await sched.wait_state("after-fuzz", "TASK_FINISHED", timeout=60)


def test_the_generator_is_deterministic() -> None:
    corpus = [Seed("s", "/api/v1", {"type": "GET_HEALTH", "n": [1, {"a": "b"}]})]
    one, two = Fuzzer(corpus, 7), Fuzzer(corpus, 7)
    first = [one.draw() for _ in range(50)]
    second = [two.draw() for _ in range(50)]
    assert [(r.mutation, r.body, r.headers) for r in first] == [(r.mutation, r.body, r.headers) for r in second]



def test_virtual_paths_are_mutated_part_by_part() -> None:
    """An agent's virtual paths (in a query or a LIST_FILES/READ_FILE body) get their own
    mutations, deterministically, and every one still reaches the server as a request."""
    virtual = "/frameworks/F-1/executors/E-1/runs/latest"
    corpus = [Seed("q", "/files/read", None, method="GET", query={"path": virtual + "/stdout"}),
              Seed("b", "/api/v1", {"type": "LIST_FILES", "list_files": {"path": virtual}}),
              Seed("log", "/files/browse", None, method="GET", query={"path": "/slave/log"})]
    one, two = Fuzzer(corpus, 11), Fuzzer(corpus, 11)
    first = [one.draw() for _ in range(400)]
    assert [(r.mutation, r.path, r.body) for r in first] == [(r.mutation, r.path, r.body) for r in
                                                             (two.draw() for _ in range(400))]
    kinds = {r.mutation for r in first if r.mutation.startswith("virtual-")}
    assert {"virtual-traversal", "virtual-missing-part", "virtual-empty-id", "virtual-nul",
            "virtual-long-id", "virtual-latest"} <= kinds
    assert any(k.startswith("virtual-log-") for k in kinds)
