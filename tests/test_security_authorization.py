"""Authorization (issue 15 §2): Mesos's local ACLs, then a real master on loopback with
authentication and ACLs on: authenticated but not authorised → 403 with a message,
authorised → served; filtered views of frameworks and tasks; the authorizer as a plug-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.flags import MasterFlags
from mezzo.security.authentication import basic_header
from mezzo.security.authorizer import Authorizer, LocalAuthorizer, create_authorizer
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import JSON, read_records
from tests.test_security_authentication import ALL_REALMS, Secured, start_master

OPS = {"Authorization": basic_header("alice", "wonderland")}      # the operator
GUEST = {"Authorization": basic_header("bob", "builder")}         # may do little
AGENT = {"Authorization": basic_header("agent", "s3cret")}
ANY = {"type": "ANY"}
NONE = {"type": "NONE"}


def some(*values: str) -> dict:
    return {"values": list(values)}


ACLS = {
    "permissive": False,
    "register_frameworks": [{"principals": some("alice"), "roles": ANY},
                            {"principals": some("bob"), "roles": some("guest")}],
    "run_tasks": [{"principals": ANY, "users": ANY}],
    "teardown_frameworks": [{"principals": some("alice"), "framework_principals": ANY}],
    "view_frameworks": [{"principals": some("alice"), "users": ANY},
                        {"principals": some("bob"), "users": some("bob")}],
    "view_tasks": [{"principals": some("alice"), "users": ANY},
                   {"principals": some("bob"), "users": some("bob")}],
    "view_executors": [{"principals": some("alice"), "users": ANY}],
    "view_roles": [{"principals": some("alice"), "roles": ANY}],
    "view_flags": [{"principals": some("alice"), "flags": ANY}],
    "update_weights": [{"principals": some("alice"), "roles": ANY}],
    "mark_agents_gone": [{"principals": some("alice"), "agents": ANY}],
    "get_endpoints": [{"principals": some("alice"), "paths": ANY}],
    "register_agents": [{"principals": some("agent"), "agents": ANY}],
    "reserve_resources": [{"principals": some("alice"), "roles": some("eng")}],
    "unreserve_resources": [{"principals": some("alice"), "reserver_principals": some("alice")}],
}


# ---------------------------------------------------------------- the local authorizer


def test_first_matching_acl_decides_else_permissive() -> None:
    # Mesos's docs/authorization.md example: only `foo` may register with role `analytics`.
    authz = LocalAuthorizer({
        "register_frameworks": [{"principals": some("foo"), "roles": some("analytics")},
                                {"principals": NONE, "roles": some("analytics")}],
    })
    assert authz.authorized("register_frameworks", "foo", "analytics")
    assert not authz.authorized("register_frameworks", "bar", "analytics")  # NONE matches, denies
    assert not authz.authorized("register_frameworks", None, "analytics")
    assert authz.authorized("register_frameworks", "bar", "other")  # nothing matches: permissive
    # No ACL for the action: permissive (default true) decides.
    assert authz.authorized("teardown_frameworks", "bar", "x")
    strict = LocalAuthorizer({"permissive": False, "view_flags": [{"principals": some("a"), "flags": ANY}]})
    assert strict.authorized("view_flags", "a") and not strict.authorized("view_flags", "b")
    assert not strict.authorized("view_flags", None)  # unauthenticated matches only ANY/NONE


@pytest.mark.parametrize(("acls", "reason"), [
    ({"permissive": "no"}, "permissive"),
    ({"launch_rockets": []}, "unknown ACL"),
    ({"run_tasks": [{"principals": ANY}]}, "missing 'users'"),
    ({"run_tasks": [{"principals": ANY, "roles": ANY}]}, "unknown field"),
    ({"run_tasks": [{"principals": {"type": "SOMETIMES"}, "users": ANY}]}, "SOME, ANY or NONE"),
    ({"run_tasks": [{"principals": {"values": "alice"}, "users": ANY}]}, "list of strings"),
])
def test_bad_acls_are_one_line_errors(acls: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        LocalAuthorizer(acls)


def test_acls_flag_inline_or_file(tmp_path: Path) -> None:
    (tmp_path / "acls.json").write_text(json.dumps(ACLS))
    for value in (json.dumps(ACLS), str(tmp_path / "acls.json"), f"file://{tmp_path / 'acls.json'}"):
        flags = MasterFlags.parse({"acls": value})
        assert flags.security.authorization.allowed("view_flags", "alice")
        assert not flags.security.authorization.allowed("view_flags", "bob")
    with pytest.raises(ConfigError, match="--acls"):
        MasterFlags.parse({"acls": "{broken"})
    assert MasterFlags.parse({}).security.authorization.authorizer is None


class DenyAll(Authorizer):
    def authorized(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        return False


def test_authorizer_plugin_by_class_path() -> None:
    assert isinstance(create_authorizer(f"{__name__}:DenyAll"), DenyAll)
    flags = MasterFlags.parse({"authorizers": f"{__name__}:DenyAll"})
    assert not flags.security.authorization.allowed("view_flags", "alice")
    with pytest.raises(ConfigError, match="not an Authorizer subclass"):
        create_authorizer("json:loads")
    with pytest.raises(ConfigError, match="cannot import authorizer"):
        create_authorizer("no.such.module:X")


# ---------------------------------------------------------------- a master with ACLs


@pytest.fixture
async def acl_master(tmp_path: Path) -> AsyncIterator[Secured]:
    process, runner, url = await start_master(tmp_path, {**ALL_REALMS, "acls": json.dumps(ACLS)})
    async with aiohttp.ClientSession() as session:
        yield Secured(process, url, session)
    await runner.cleanup()


async def subscribe_framework(m: Secured, headers: dict, user: str, role: str = "*"):
    info = {"user": user, "name": f"fw-{user}", "roles": [role],
            "capabilities": [{"type": "MULTI_ROLE"}]}
    resp = await m.session.post(m.url + "/api/v1/scheduler",
                                data=json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}),
                                headers={**JSON, **headers, "Accept": "application/json"})
    assert resp.status == 200
    first = (await read_records(resp, 1))[0]
    return resp, first


async def test_register_frameworks_by_role(acl_master: Secured) -> None:
    resp, event = await subscribe_framework(acl_master, GUEST, "bob", role="prod")
    assert event["type"] == "ERROR" and "Not authorized to use role 'prod'" in event["error"]["message"]
    resp.close()
    assert not acl_master.master.frameworks
    resp, event = await subscribe_framework(acl_master, GUEST, "bob", role="guest")
    assert event["type"] == "SUBSCRIBED"
    resp.close()


async def test_operator_calls_403_unless_allowed(acl_master: Secured) -> None:
    m = acl_master
    resp, event = await subscribe_framework(m, OPS, "alice")
    framework_id = event["subscribed"]["framework_id"]["value"]
    calls = [
        ({"type": "GET_FLAGS"}, 200),
        ({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "r", "weight": 2.0}]}}, 200),
        ({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "nope"}}}, 404),
        ({"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}}, 200),
    ]
    for call, _ in calls:
        status, text, _ = await m.request("POST", "/api/v1", body=call)
        assert status == 401, call  # unauthenticated
        status, text, _ = await m.request("POST", "/api/v1", GUEST, body=call)
        assert status == 403, call
        assert text.startswith("Forbidden: principal 'bob' is not authorized to")
    assert framework_id in m.master.frameworks and "r" not in m.master.weights
    for call, allowed_status in calls:
        status, text, _ = await m.request("POST", "/api/v1", OPS, body=call)
        assert status == allowed_status, (call, text)
    assert framework_id not in m.master.frameworks and m.master.weights["r"] == 2.0
    resp.close()


@pytest.mark.parametrize("path", ["/master/flags", "/metrics/snapshot", "/files/debug"])
async def test_guarded_endpoints(acl_master: Secured, path: str) -> None:
    assert (await acl_master.request("GET", path))[0] == 401
    status, text, _ = await acl_master.request("GET", path, GUEST)
    assert status == 403 and "Forbidden: principal 'bob'" in text
    assert (await acl_master.request("GET", path, OPS))[0] == 200


async def test_legacy_teardown_needs_teardown_frameworks(acl_master: Secured) -> None:
    m = acl_master
    resp, event = await subscribe_framework(m, OPS, "alice")
    framework_id = event["subscribed"]["framework_id"]["value"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with m.session.post(m.url + "/master/teardown", data=f"frameworkId={framework_id}",
                              headers={**form, **GUEST}) as r:
        assert r.status == 403
    async with m.session.post(m.url + "/master/teardown", data=f"frameworkId={framework_id}",
                              headers={**form, **OPS}) as r:
        assert r.status == 200
    assert framework_id not in m.master.frameworks
    resp.close()


async def test_views_are_filtered_per_principal(acl_master: Secured) -> None:
    m = acl_master
    streams = []
    for headers, user, role in ((OPS, "alice", "*"), (GUEST, "bob", "guest")):
        resp, _event = await subscribe_framework(m, headers, user, role)
        streams.append(resp)

    async def state(headers: dict) -> dict:
        status, text, _ = await m.request("GET", "/master/state", headers)
        assert status == 200
        return json.loads(text)
    assert sorted(f["user"] for f in (await state(OPS))["frameworks"]) == ["alice", "bob"]
    assert [f["user"] for f in (await state(GUEST))["frameworks"]] == ["bob"]
    status, text, _ = await m.request("GET", "/master/frameworks", GUEST)
    assert status == 200
    assert [f["user"] for f in json.loads(text)["frameworks"]] == ["bob"]
    status, text, _ = await m.request("POST", "/api/v1", GUEST, body={"type": "GET_FRAMEWORKS"})
    frameworks = json.loads(text)["get_frameworks"]["frameworks"]
    assert [f["framework_info"]["user"] for f in frameworks] == ["bob"]
    status, text, _ = await m.request("POST", "/api/v1", GUEST, body={"type": "GET_STATE"})
    assert [f["framework_info"]["user"] for f in json.loads(text)["get_state"]["get_frameworks"]["frameworks"]] == ["bob"]
    status, text, _ = await m.request("GET", "/master/tasks", GUEST)  # paged over the filtered view
    assert status == 200 and json.loads(text) == {"tasks": []}
    # Weights are visible only with view_roles.
    await m.request("POST", "/api/v1", OPS, body={"type": "UPDATE_WEIGHTS", "update_weights": {
        "weight_infos": [{"role": "guest", "weight": 3.0}]}})
    status, text, _ = await m.request("GET", "/master/weights", GUEST)
    assert json.loads(text) == []
    status, text, _ = await m.request("GET", "/master/weights", OPS)
    assert status == 200 and json.loads(text) == [{"role": "guest", "weight": 3.0}]
    for resp in streams:
        resp.close()


async def test_register_agents(acl_master: Secured) -> None:
    m = acl_master
    body = {"type": "SUBSCRIBE", "subscribe": {"agent_info": {"hostname": "h"}}}
    status, text, _ = await m.request("POST", "/api/v1/agent", GUEST, body=body)
    assert status == 403 and "register" in text
    async with aiohttp.ClientSession(headers=AGENT) as session:
        agent = EmulatedAgent(m.url, hostname="allowed", session=session)
        await asyncio.wait_for(agent.start(), 10)
        try:
            assert [a.info.hostname for a in m.master.agents.values()] == ["allowed"]
        finally:
            await agent.stop()


async def test_reserve_and_unreserve_resources_acls(acl_master: Secured) -> None:
    m = acl_master

    def call(kind: str, role: str, principal: str) -> dict:
        resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                      "reservations": [{"type": "DYNAMIC", "role": role, "principal": principal}]}]
        return {"type": kind, kind.lower(): {"agent_id": {"value": agent_id}, "resources": resources}}

    async with aiohttp.ClientSession(headers=AGENT) as session:
        agent = EmulatedAgent(m.url, hostname="h", resources="cpus:4;mem:100", session=session)
        await asyncio.wait_for(agent.start(), 10)
        try:
            [agent_id] = list(m.master.agents)
            status, text, _ = await m.request("POST", "/api/v1", GUEST, call("RESERVE_RESOURCES", "eng", "bob"))
            assert status == 403 and "RESERVE_RESOURCES" in text and "\n" not in text.strip()
            status, text, _ = await m.request("POST", "/api/v1", OPS, call("RESERVE_RESOURCES", "web", "alice"))
            assert status == 403  # alice may reserve for eng only
            status, text, _ = await m.request("POST", "/api/v1", OPS, call("RESERVE_RESOURCES", "eng", "carol"))
            assert status == 400 and "does not match a reserved resource" in text
            status, text, _ = await m.request("POST", "/api/v1", OPS, call("RESERVE_RESOURCES", "eng", "alice"))
            assert status == 202, text
            assert m.master.agents[agent_id].total.reserved("eng").cpus() == 1
            status, text, _ = await m.request("POST", "/api/v1", GUEST, call("UNRESERVE_RESOURCES", "eng", "alice"))
            assert status == 403
            status, text, _ = await m.request("POST", "/api/v1", OPS, call("UNRESERVE_RESOURCES", "eng", "alice"))
            assert status == 202, text
            assert m.master.agents[agent_id].total.reserved().is_empty()
        finally:
            await agent.stop()
