"""More of the master's ACLs (issue 15): run_tasks at launch (TASK_ERROR,
REASON_TASK_UNAUTHORIZED, as Mesos), update_quotas / get_quotas on the quota calls and
`/quota`, access_mesos_logs on the master's log; each with a real master on loopback:
unauthenticated → 401, authenticated but not authorised → 403, authorised → works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mezzo.security.authentication import basic_header
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import JSON
from tests.test_security_authentication import ALL_REALMS, Secured, start_master

OPS = {"Authorization": basic_header("alice", "wonderland")}
GUEST = {"Authorization": basic_header("bob", "builder")}
AGENT = {"Authorization": basic_header("agent", "s3cret")}
ANY = {"type": "ANY"}


def some(*values: str) -> dict:
    return {"values": list(values)}


ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": ANY, "roles": ANY}],
    "register_agents": [{"principals": some("agent"), "agents": ANY}],
    "view_frameworks": [{"principals": ANY, "users": ANY}],
    "view_tasks": [{"principals": ANY, "users": ANY}],
    # alice's frameworks may run tasks as alice only, bob's as nobody only.
    "run_tasks": [{"principals": some("alice"), "users": some("alice")},
                  {"principals": some("bob"), "users": some("nobody")}],
    "update_quotas": [{"principals": some("alice"), "roles": ANY}],
    "get_quotas": [{"principals": some("alice"), "roles": ANY},
                   {"principals": some("bob"), "roles": some("guest")}],
    "access_mesos_logs": [{"principals": some("alice"), "logs": ANY}],
}


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[Secured]:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mezzo-master.INFO").write_text("I1205 the master's log\n")
    process, runner, url = await start_master(
        tmp_path, {**ALL_REALMS, "acls": json.dumps(ACLS), "log_dir": str(tmp_path / "logs")})
    async with aiohttp.ClientSession() as session:
        yield Secured(process, url, session)
    await runner.cleanup()


class Framework:
    """A scheduler subscribed with `headers`, reading its events in the background."""

    def __init__(self, m: Secured, headers: dict[str, str], user: str) -> None:
        self.m, self.headers, self.user = m, headers, user
        self.events: list[dict[str, Any]] = []
        self.framework_id = ""
        self.stream_id = ""

    async def __aenter__(self) -> Framework:
        info = {"user": self.user, "name": f"fw-{self.user}"}
        self.resp = await self.m.session.post(
            self.m.url + "/api/v1/scheduler",
            data=json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}),
            headers={**JSON, **self.headers, "Accept": "application/json"})
        assert self.resp.status == 200
        self.stream_id = self.resp.headers["Mesos-Stream-Id"]
        self.reader = asyncio.create_task(self._read())
        subscribed = await self.next_event("SUBSCRIBED")
        self.framework_id = subscribed["subscribed"]["framework_id"]["value"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        self.resp.close()

    async def _read(self) -> None:
        buf = b""
        while True:
            buf += await self.resp.content.readany()
            while b"\n" in buf:
                length, rest = buf.split(b"\n", 1)
                if len(rest) < int(length):
                    break
                self.events.append(json.loads(rest[: int(length)]))
                buf = rest[int(length):]

    async def next_event(self, kind: str, pred: Any = lambda e: True) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            for event in self.events:
                if event["type"] == kind and pred(event):
                    self.events.remove(event)
                    return event
            assert asyncio.get_running_loop().time() < deadline, f"no {kind}: {self.events}"
            await asyncio.sleep(0.02)

    async def call(self, body: dict[str, Any]) -> int:
        body = {"framework_id": {"value": self.framework_id}, **body}
        async with self.m.session.post(
                self.m.url + "/api/v1/scheduler", data=json.dumps(body),
                headers={**JSON, **self.headers, "Mesos-Stream-Id": self.stream_id}) as r:
            return r.status

    async def launch(self, tasks: list[dict[str, Any]], group: bool = False) -> None:
        offer = (await self.next_event("OFFERS"))["offers"]["offers"][0]
        for info in tasks:
            info["agent_id"] = offer["agent_id"]
        operation: dict[str, Any] = {"type": "LAUNCH", "launch": {"task_infos": tasks}}
        if group:
            executor = {"executor_id": {"value": f"group-{tasks[0]['task_id']['value']}"},
                        "type": "DEFAULT", "framework_id": {"value": self.framework_id},
                        "resources": task("x")["resources"]}
            operation = {"type": "LAUNCH_GROUP", "launch_group": {
                "executor": executor, "task_group": {"tasks": tasks}}}
        status = await self.call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.01},
            "operations": [operation]}})
        assert status == 202

    async def update_of(self, task_id: str) -> dict[str, Any]:
        event = await self.next_event(
            "UPDATE", lambda e: e["update"]["status"]["task_id"]["value"] == task_id)
        status: dict[str, Any] = event["update"]["status"]
        return status


def task(task_id: str, user: str | None = None) -> dict[str, Any]:
    command: dict[str, Any] = {"value": "true"}
    if user is not None:
        command["user"] = user
    return {"name": task_id, "task_id": {"value": task_id}, "command": command,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}


async def test_run_tasks_is_checked_at_launch(master: Secured) -> None:
    async with aiohttp.ClientSession(headers=AGENT) as session:
        agent = EmulatedAgent(master.url, hostname="a1", session=session)
        await asyncio.wait_for(agent.start(), 10)
        try:
            async with Framework(master, OPS, "alice") as fw:
                await fw.launch([task("as-root", user="root"), task("as-alice")])
                refused = await fw.update_of("as-root")
                assert refused["state"] == "TASK_ERROR"
                assert refused["reason"] == "REASON_TASK_UNAUTHORIZED"
                assert refused["source"] == "SOURCE_MASTER"
                assert refused["message"] == (f"Not authorized to launch task as-root of framework "
                                              f"{fw.framework_id} under user 'root'")
                assert (await fw.update_of("as-alice"))["state"] == "TASK_RUNNING"
                # A task group is refused whole when one of its tasks is not authorised.
                await fw.launch([task("g-alice"), task("g-root", user="root")], group=True)
                for task_id in ("g-alice", "g-root"):
                    refused = await fw.update_of(task_id)
                    assert refused["state"] == "TASK_ERROR"
                    assert refused["reason"] == "REASON_TASK_GROUP_UNAUTHORIZED"
                    assert refused["message"] == (
                        f"Task 'g-root' is not authorized to launch task g-root of framework "
                        f"{fw.framework_id} under user 'root'")
            async with Framework(master, GUEST, "bob") as fw:
                await fw.launch([task("bob-as-root", user="root"), task("bob-as-nobody", user="nobody")])
                assert (await fw.update_of("bob-as-root"))["reason"] == "REASON_TASK_UNAUTHORIZED"
                assert (await fw.update_of("bob-as-nobody"))["state"] == "TASK_RUNNING"
        finally:
            await agent.stop()
    tasks = [t for fw in master.master.frameworks.values() for t in fw.tasks]
    assert "as-root" not in tasks and "bob-as-root" not in tasks


QUOTA = {"type": "UPDATE_QUOTA", "update_quota": {"force": True, "quota_configs": [
    {"role": "guest", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}]}}


async def test_quota_acls(master: Secured) -> None:
    m = master
    calls = [
        QUOTA,
        {"type": "SET_QUOTA", "set_quota": {"quota_request": {
            "role": "dev", "force": True, "guarantee": [{"name": "cpus", "type": "SCALAR",
                                                          "scalar": {"value": 1}}]}}},
        {"type": "REMOVE_QUOTA", "remove_quota": {"role": "dev"}},
    ]
    for call in calls:
        assert (await m.request("POST", "/api/v1", body=call))[0] == 401
        status, text, _ = await m.request("POST", "/api/v1", GUEST, body=call)
        assert status == 403 and "principal 'bob' is not authorized to update the quota" in text
    assert m.master.quota_config == {}
    for call in calls:
        status, text, _ = await m.request("POST", "/api/v1", OPS, body=call)
        assert status == 200, (call, text)
    assert sorted(m.master.quota_config) == ["guest"]
    status, _, _ = await m.request("POST", "/api/v1", OPS, body={
        "type": "UPDATE_QUOTA", "update_quota": {"force": True, "quota_configs": [
            {"role": "secret", "guarantees": {"cpus": {"value": 1}}}]}})
    assert status == 200
    # get_quotas filters GET_QUOTA and /quota.
    assert (await m.request("GET", "/quota"))[0] == 401

    def roles(text: str, key: str | None = None) -> list[str]:
        doc = json.loads(text)
        status = doc["get_quota"]["status"] if key else doc
        return sorted(c["role"] for c in status["configs"])

    for headers, expected in ((OPS, ["guest", "secret"]), (GUEST, ["guest"])):
        status, text, _ = await m.request("GET", "/quota", headers)
        assert status == 200 and roles(text) == expected
        status, text, _ = await m.request("POST", "/api/v1", headers, body={"type": "GET_QUOTA"})
        assert status == 200 and roles(text, "get_quota") == expected


async def test_access_mesos_logs(master: Secured) -> None:
    m = master
    read = {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0}}
    listing = {"type": "LIST_FILES", "list_files": {"path": "/master/log"}}
    assert (await m.request("GET", "/files/read?path=/master/log&offset=0"))[0] == 401
    status, text, _ = await m.request("GET", "/files/read?path=/master/log&offset=0", GUEST)
    assert status == 403 and "principal 'bob' is not authorized to access the master's log" in text
    for call in (read, listing):
        status, text, _ = await m.request("POST", "/api/v1", GUEST, body=call)
        assert status == 403, text
    status, text, _ = await m.request("GET", "/files/read?path=/master/log&offset=0", OPS)
    assert status == 200 and "the master's log" in json.loads(text)["data"]
    for call in (read, listing):
        status, text, _ = await m.request("POST", "/api/v1", OPS, body=call)
        assert status == 200, text


# ---------------------------------------------------------------- the operator event stream

VIEW_ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": ANY, "roles": ANY}],
    "register_agents": [{"principals": some("agent"), "agents": ANY}],
    "run_tasks": [{"principals": ANY, "users": ANY}],
    "view_frameworks": [{"principals": some("alice"), "users": ANY},
                        {"principals": some("bob"), "users": some("bob")}],
    "view_tasks": [{"principals": some("alice"), "users": ANY},
                   {"principals": some("bob"), "users": some("bob")}],
    "view_executors": [{"principals": some("alice"), "users": ANY}],
}


class EventStream:
    """An operator SUBSCRIBE stream read in the background."""

    def __init__(self, m: Secured, headers: dict[str, str]) -> None:
        self.m, self.headers = m, headers
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> EventStream:
        self.resp = await self.m.session.post(
            self.m.url + "/api/v1", data=b'{"type":"SUBSCRIBE"}',
            headers={**JSON, **self.headers, "Accept": "application/json"})
        assert self.resp.status == 200, await self.resp.text()
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        self.resp.close()

    async def _read(self) -> None:
        buf = b""
        while True:
            buf += await self.resp.content.readany()
            while b"\n" in buf:
                length, rest = buf.split(b"\n", 1)
                if len(rest) < int(length):
                    break
                self.events.append(json.loads(rest[: int(length)]))
                buf = rest[int(length):]

    async def wait_for(self, pred: Any) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            for event in self.events:
                if pred(event):
                    return event
            assert asyncio.get_running_loop().time() < deadline, self.events
            await asyncio.sleep(0.02)


def task_event(task_id: str, kind: str) -> Any:
    def pred(event: dict[str, Any]) -> bool:
        if event["type"] != kind:
            return False
        if kind == "TASK_ADDED":
            return bool(event["task_added"]["task"]["task_id"]["value"] == task_id)
        return bool(event["task_updated"]["status"]["task_id"]["value"] == task_id)
    return pred


async def test_operator_event_stream_is_filtered_per_principal(tmp_path: Path) -> None:
    process, runner, url = await start_master(tmp_path, {**ALL_REALMS, "acls": json.dumps(VIEW_ACLS)})
    try:
        async with aiohttp.ClientSession() as session, \
                aiohttp.ClientSession(headers=AGENT) as agent_session:
            m = Secured(process, url, session)
            async with m.session.post(m.url + "/api/v1", data=b'{"type":"SUBSCRIBE"}',
                                      headers={**JSON, "Accept": "application/json"}) as r:
                assert r.status == 401
            agent = EmulatedAgent(url, hostname="a1", session=agent_session)
            await asyncio.wait_for(agent.start(), 10)
            try:
                async with EventStream(m, OPS) as ops_events, EventStream(m, GUEST) as bob_events:
                    async with Framework(m, OPS, "alice") as alice_fw, Framework(m, GUEST, "bob") as bob_fw:
                        await alice_fw.launch([task("a-task")])
                        await bob_fw.launch([task("b-task")])
                        for stream in (ops_events, bob_events):
                            await stream.wait_for(task_event("b-task", "TASK_UPDATED"))
                        await ops_events.wait_for(task_event("a-task", "TASK_UPDATED"))
                        await ops_events.wait_for(task_event("a-task", "TASK_ADDED"))
                        # A late subscriber's SUBSCRIBED state is filtered too.
                        async with EventStream(m, GUEST) as late:
                            subscribed = await late.wait_for(lambda e: e["type"] == "SUBSCRIBED")
                        state = subscribed["subscribed"]["get_state"]
                        assert [f["framework_info"]["user"] for f in state["get_frameworks"]["frameworks"]] == ["bob"]
                        assert [t["task_id"]["value"] for t in state["get_tasks"]["tasks"]] == ["b-task"]
                        alice_id = alice_fw.framework_id
                    await ops_events.wait_for(lambda e: e["type"] == "FRAMEWORK_REMOVED" and
                                              e["framework_removed"]["framework_info"]["id"]["value"] == alice_id)
                    # An event bob may see, published after alice's removal: once it arrived,
                    # alice's removal would have too.
                    async with Framework(m, GUEST, "bob") as marker:
                        await bob_events.wait_for(
                            lambda e: e["type"] == "FRAMEWORK_ADDED" and e["framework_added"]["framework"]
                            ["framework_info"]["id"]["value"] == marker.framework_id)
                    bob_seen = json.dumps(bob_events.events)
                    assert "a-task" not in bob_seen and alice_id not in bob_seen, bob_seen
                    assert any(e["type"] == "AGENT_ADDED" or e["type"] == "SUBSCRIBED"
                               for e in bob_events.events)
                    kinds = {e["type"] for e in bob_events.events}
                    assert {"SUBSCRIBED", "FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED"} <= kinds
            finally:
                await agent.stop()
    finally:
        await runner.cleanup()
