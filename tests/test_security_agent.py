"""The agent's security (issue 15): executor tokens (JWT minted per executor, required on the
executor API with `--authenticate_http_executors`, an executor speaking only for itself) and
the agent's own endpoints (Basic realms, access_sandboxes, view_flags, get_endpoints), with a
real `mezzo master` and `mezzo agent` and real executors over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from mezzo.agent.flags import AgentFlags
from mezzo.core.errors import ConfigError
from mezzo.security.authentication import basic_header
from mezzo.security.executor_tokens import ExecutorTokens, InvalidToken, claims_mismatch
from mezzo.testing.agent_harness import MiniScheduler, Proc, ProcessCluster, command_task

KEY = "an executor secret key, 32 bytes+"
OPS = {"Authorization": basic_header("ops", "0ps")}
EVE = {"Authorization": basic_header("eve", "3ve")}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# ---------------------------------------------------------------- tokens (no I/O)


def test_tokens_carry_mesos_claims_and_refuse_forgeries() -> None:
    tokens = ExecutorTokens(KEY.encode())
    token = tokens.mint("fw-1", "ex-1", "c-1")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert tokens.verify(token) == {"fid": "fw-1", "eid": "ex-1", "cid": "c-1"}
    forged = jwt.encode({"fid": "fw-1", "eid": "ex-1", "cid": "c-1"}, b"another key at least 32 bytes long", "HS256")
    with pytest.raises(InvalidToken, match="Invalid JWT"):
        tokens.verify(forged)
    with pytest.raises(InvalidToken, match="Invalid JWT"):
        tokens.verify("not.a.token")
    with pytest.raises(InvalidToken, match="claims missing"):
        tokens.verify(jwt.encode({}, KEY.encode(), "HS256"))
    claims = tokens.verify(token)
    assert claims_mismatch(claims, "fw-1", "ex-1", "c-1") is None
    assert "'fid' claim with the framework ID fw-2" in (claims_mismatch(claims, "fw-2", "ex-1", "c-1") or "")
    assert "'eid' claim with the executor ID ex-2" in (claims_mismatch(claims, "fw-1", "ex-2", "c-1") or "")
    assert "'cid' claim" in (claims_mismatch(claims, "fw-1", "ex-1", "c-2") or "")
    assert KEY not in repr(tokens)


def test_agent_security_flags(tmp_path: Path) -> None:
    def parse(**values: str) -> AgentFlags:
        return AgentFlags.parse({"work_dir": str(tmp_path), **values}, {})

    with pytest.raises(ConfigError, match="--jwt_secret_key must be specified when "
                                          "--authenticate_http_executors is set to true"):
        parse(authenticate_http_executors="true")
    with pytest.raises(ConfigError, match="--jwt_secret_key: cannot read"):
        parse(jwt_secret_key=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"No credentials provided .* 'mesos-agent-readonly'"):
        parse(authenticate_http_readonly="true")
    (tmp_path / "key").write_text(KEY)
    parse(executor_secret_key=str(tmp_path / "key"), authenticate_http_executors="true")
    with pytest.raises(ConfigError, match="--acls"):
        parse(acls="{bad")


# ---------------------------------------------------------------- a real cluster


@pytest.fixture
def secured_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "key").write_text(KEY)
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "http-credentials").write_text("ops 0ps\neve 3ve\n")
    acls = {
        "permissive": False,
        "access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
        "view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}}],
        "get_endpoints": [{"principals": {"values": ["ops"]}, "paths": {"type": "ANY"}}],
        **{view: [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]
           for view in ("view_frameworks", "view_executors", "view_tasks")},
    }
    (tmp_path / "acls.json").write_text(json.dumps(acls))
    return {"key": str(tmp_path / "key"), "credentials": str(tmp_path / "http-credentials"),
            "acls": str(tmp_path / "acls.json")}


@pytest.fixture
def cluster(tmp_path: Path, secured_files: dict[str, str]) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096",
                        "--jwt_secret_key", secured_files["key"],
                        "--authenticate_http_executors", "true") as c:
        yield c


def custom_executor_task(task_id: str, executor_id: str, shell: str) -> dict[str, Any]:
    task = command_task(task_id, "unused")
    del task["command"]
    task["executor"] = {"executor_id": {"value": executor_id}, "name": executor_id,
                        "command": {"shell": True, "value": shell}}
    return task


async def agent_state(agent: Proc, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(agent.url + "/state", headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def sandbox_of(agent: Proc, executor_id: str, headers: dict[str, str] | None = None) -> Path:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        state = await agent_state(agent, headers)
        for fw in state["frameworks"] + state["completed_frameworks"]:
            for ex in fw["executors"] + fw["completed_executors"]:
                if ex["id"] == executor_id:
                    return Path(ex["directory"])
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.1)


async def read_when_written(path: Path) -> str:
    deadline = asyncio.get_running_loop().time() + 30
    while not (path.exists() and path.read_text()):
        assert asyncio.get_running_loop().time() < deadline, f"{path} never written"
        await asyncio.sleep(0.1)
    return path.read_text()


async def executor_post(agent: Proc, body: dict[str, Any], token: str | None,
                        scheme: str = "Bearer") -> tuple[int, str, list[str]]:
    headers = dict(JSON_HEADERS)
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    async with aiohttp.ClientSession() as s, s.post(
        agent.url + "/api/v1/executor", data=json.dumps(body), headers=headers
    ) as r:
        text = "" if r.status == 200 else await r.text()
        return r.status, text, r.headers.getall("WWW-Authenticate", [])


@pytest.mark.slow
async def test_executor_tokens_end_to_end(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        # The command executor sends its token (or it could not subscribe); the task does
        # not inherit it.
        await s.launch([command_task("cmd", 'printf "[%s]" "$MESOS_EXECUTOR_AUTHENTICATION_TOKEN" > seen')])
        await s.wait_state("cmd", "TASK_FINISHED")
        assert (await sandbox_of(agent, "cmd") / "seen").read_text() == "[]"

        # Two custom executors that write down their tokens and never subscribe.
        keep = 'printf %s "$MESOS_EXECUTOR_AUTHENTICATION_TOKEN" > token; sleep 60'
        await s.launch([custom_executor_task("ta", "exA", keep), custom_executor_task("tb", "exB", keep)])
        token_a = await read_when_written(await sandbox_of(agent, "exA") / "token")
        token_b = await read_when_written(await sandbox_of(agent, "exB") / "token")
        fid = s.framework_id
        assert fid is not None
        claims = jwt.decode(token_a, KEY.encode(), algorithms=["HS256"])
        assert claims["fid"] == fid and claims["eid"] == "exA" and claims["cid"]

        def call(executor_id: str, kind: str, **extra: Any) -> dict[str, Any]:
            return {"framework_id": {"value": fid}, "executor_id": {"value": executor_id},
                    "type": kind, **extra}

        subscribe_a = call("exA", "SUBSCRIBE", subscribe={"unacknowledged_tasks": [],
                                                          "unacknowledged_updates": []})
        # No token: 401 with the executor realm's Bearer challenge.
        status, _, challenges = await executor_post(agent, subscribe_a, None)
        assert status == 401
        assert challenges == ['Bearer realm="mesos-agent-executor"']
        # A forged or malformed token: 401 invalid_token.
        forged = jwt.encode({"fid": fid, "eid": "exA", "cid": claims["cid"]}, b"x" * 32, "HS256")
        status, _, challenges = await executor_post(agent, subscribe_a, forged)
        assert status == 401 and 'error="invalid_token"' in challenges[0]
        status, _, _ = await executor_post(agent, subscribe_a, token_a, scheme="Basic")
        assert status == 401
        # Executor B's token cannot subscribe as (or update the tasks of) executor A.
        status, text, _ = await executor_post(agent, subscribe_a, token_b)
        assert status == 403 and "'eid' claim with the executor ID exA" in text
        update_a = call("exA", "UPDATE", update={"status": {
            "task_id": {"value": "ta"}, "state": "TASK_FAILED", "source": "SOURCE_EXECUTOR",
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}})
        status, text, _ = await executor_post(agent, update_a, token_b)
        assert status == 403 and "'eid' claim" in text
        # Its own token is accepted (its call reaches the agent, which answers as always:
        # an UPDATE before SUBSCRIBE is 403 "not subscribed").
        status, text, _ = await executor_post(agent, update_a, token_a)
        assert status == 403 and "not subscribed" in text.lower()
        status, text, _ = await executor_post(agent, subscribe_a, token_a)
        assert status == 200, text
        # Nothing of the above failed task ta.
        assert "TASK_FAILED" not in s.states("ta")


@pytest.mark.slow
async def test_agent_endpoints_authentication_and_acls(
        tmp_path: Path, secured_files: dict[str, str]) -> None:
    c = ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096",
                       "--http_credentials", secured_files["credentials"],
                       "--authenticate_http_readonly", "true",
                       "--authenticate_http_readwrite", "true",
                       "--acls", secured_files["acls"])
    try:
        agent = c.agent()
        async with MiniScheduler(c.master.url) as s:
            await s.launch([command_task("t1", "echo secret-output")])
            await s.wait_state("t1", "TASK_FINISHED")
        sandbox = await sandbox_of(agent, "t1", OPS)
        stdout = str(sandbox / "stdout")
        list_files = {"type": "LIST_FILES", "list_files": {"path": str(sandbox)}}
        read_file = {"type": "READ_FILE", "read_file": {"path": stdout, "offset": 0}}
        async with aiohttp.ClientSession() as http:
            async def get(endpoint: str, headers: dict[str, str] | None = None,
                          **params: str) -> tuple[int, str, list[str]]:
                async with http.get(agent.url + endpoint, params=params, headers=headers) as r:
                    return r.status, await r.text(), r.headers.getall("WWW-Authenticate", [])

            async def post(body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
                async with http.post(agent.url + "/api/v1", data=json.dumps(body),
                                     headers={**JSON_HEADERS, **(headers or {})}) as r:
                    return r.status, await r.text(), r.headers.getall("WWW-Authenticate", [])

            # Public.
            for path in ("/health", "/version"):
                assert (await get(path))[0] == 200
            # Unauthenticated: 401 with the realm's challenge.
            for endpoint, params in (("/state", {}), ("/flags", {}), ("/metrics/snapshot", {}),
                                     ("/files/read", {"path": stdout, "offset": "0"}),
                                     ("/files/browse", {"path": str(sandbox)})):
                status, _, challenges = await get(endpoint, **params)
                assert (status, challenges) == (401, ['Basic realm="mesos-agent-readonly"']), endpoint
            for body in (list_files, read_file, {"type": "GET_FLAGS"}):
                status, _, challenges = await post(body)
                assert (status, challenges) == (401, ['Basic realm="mesos-agent-readwrite"'])
            # Authenticated but not authorised (eve): 403 with one line.
            for endpoint, params in (("/flags", {}), ("/metrics/snapshot", {}),
                                     ("/files/read", {"path": stdout, "offset": "0"}),
                                     ("/files/browse", {"path": str(sandbox)}),
                                     ("/files/download", {"path": stdout})):
                status, text, _ = await get(endpoint, EVE, **params)
                assert status == 403 and "principal 'eve' is not authorized" in text, (endpoint, text)
            for body in (list_files, read_file, {"type": "GET_FLAGS"}):
                status, text, _ = await post(body, EVE)
                assert status == 403 and "principal 'eve'" in text, text
            # Views are filtered: eve sees no framework, ops sees t1's.
            status, text, _ = await get("/state", EVE)
            assert status == 200 and json.loads(text)["completed_frameworks"] == []
            assert json.loads(text)["frameworks"] == []
            status, text, _ = await get("/state", OPS)
            assert status == 200 and "t1" in text
            status, text, _ = await post({"type": "GET_FRAMEWORKS"}, EVE)
            assert status == 200 and json.loads(text)["get_frameworks"]["completed_frameworks"] == []
            status, text, _ = await post({"type": "GET_FRAMEWORKS"}, OPS)
            assert status == 200 and json.loads(text)["get_frameworks"]["completed_frameworks"] != []
            # Authorised (ops): served.
            status, text, _ = await get("/files/read", OPS, path=stdout, offset="0")
            assert status == 200 and "secret-output" in json.loads(text)["data"]
            assert (await get("/files/browse", OPS, path=str(sandbox)))[0] == 200
            assert (await get("/flags", OPS))[0] == 200
            assert (await get("/metrics/snapshot", OPS))[0] == 200
            status, text, _ = await post(read_file, OPS)
            assert status == 200, text
            status, text, _ = await post(list_files, OPS)
            assert status == 200 and "stdout" in text
            assert (await post({"type": "GET_FLAGS"}, OPS))[0] == 200
    finally:
        c.close()


@pytest.mark.slow
async def test_container_calls_acls_and_executor_tokens(
        tmp_path: Path, secured_files: dict[str, str]) -> None:
    acls = json.loads(Path(secured_files["acls"]).read_text())
    acls["kill_nested_containers"] = [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]
    for view in ("view_frameworks", "view_executors", "view_tasks"):  # this test reads /state
        acls[view] = [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]
    acls["wait_nested_containers"] = [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]
    Path(secured_files["acls"]).write_text(json.dumps(acls))
    c = ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096",
                       "--http_credentials", secured_files["credentials"],
                       "--authenticate_http_readwrite", "true",
                       "--jwt_secret_key", secured_files["key"],
                       "--authenticate_http_executors", "true",
                       "--acls", secured_files["acls"])
    try:
        agent = c.agent()
        async with MiniScheduler(c.master.url) as s:
            keep = 'printf %s "$MESOS_EXECUTOR_AUTHENTICATION_TOKEN" > token; sleep 60'
            await s.launch([custom_executor_task("ta", "exA", keep),
                            custom_executor_task("tb", "exB", keep)])
            token_a = await read_when_written(await sandbox_of(agent, "exA") / "token")
            token_b = await read_when_written(await sandbox_of(agent, "exB") / "token")
            cid_b = jwt.decode(token_b, KEY.encode(), algorithms=["HS256"])["cid"]

            async def kill(headers: dict[str, str] | None, kind: str = "KILL_NESTED_CONTAINER") -> tuple[int, str]:
                body = {"type": kind, kind.lower(): {
                    "container_id": {"value": "child", "parent": {"value": cid_b}}}}
                async with aiohttp.ClientSession() as http, http.post(
                        agent.url + "/api/v1", data=json.dumps(body),
                        headers={**JSON_HEADERS, **(headers or {})}) as r:
                    return r.status, await r.text()

            bearer = {"Authorization": f"Bearer {token_a}"}
            assert (await kill(None))[0] == 401
            # Executor A's token cannot touch containers under executor B's.
            status, text = await kill(bearer)
            assert status == 403 and "executor 'exA'" in text, text
            status, text = await kill(bearer, "WAIT_NESTED_CONTAINER")
            assert status == 403, text
            # B's own token may (the container does not exist: 404, past authorization).
            status, text = await kill({"Authorization": f"Bearer {token_b}"})
            assert status == 404, text
            # Basic principals go by the ACLs.
            status, text = await kill(EVE)
            assert status == 403 and "principal 'eve' is not authorized to kill nested container" in text
            status, text = await kill(OPS)
            assert status == 404, text
    finally:
        c.close()


@pytest.mark.slow
async def test_the_default_executor_sends_its_token(cluster: ProcessCluster) -> None:
    """A task group's default executor authenticates with its token too (the agent requires
    it here): both tasks finish, and the tasks do not inherit the token."""
    from mezzo.testing.agent_harness import default_executor

    agent = cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        await s.launch_group([(default_executor("pod"), [
            command_task("g1", 'printf "[%s]" "$MESOS_EXECUTOR_AUTHENTICATION_TOKEN" > seen'),
            command_task("g2", "true"),
        ])])
        for task in ("g1", "g2"):
            await s.wait_state(task, "TASK_FINISHED")
        assert (await sandbox_of(agent, "pod") / "tasks" / "g1" / "seen").read_text() == "[]"
