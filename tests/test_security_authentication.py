"""Authentication (issue 15 §1): Mesos credentials files, and a real master on loopback with
every realm on: unauthenticated → 401 with the realm's `WWW-Authenticate`, wrong secret → 401,
right credentials → served; a framework's principal bound to its registration; agents
authenticate with `--credential`; public endpoints stay public; the default stays open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.security.authentication import basic_header
from mezzo.security.credentials import load_credential, load_credentials
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import JSON, read_records, serve_on_loopback

ALICE = {"Authorization": basic_header("alice", "wonderland")}
BOB = {"Authorization": basic_header("bob", "builder")}
WRONG = {"Authorization": basic_header("alice", "nope")}
AGENT = {"Authorization": basic_header("agent", "s3cret")}
CREDENTIALS = {"credentials": [{"principal": "alice", "secret": "wonderland"},
                               {"principal": "bob", "secret": "builder"},
                               {"principal": "agent", "secret": "s3cret"}]}
ALL_REALMS = {"authenticate_http_frameworks": "true", "authenticate_agents": "true",
              "authenticate_http_readonly": "true", "authenticate_http_readwrite": "true"}


# ---------------------------------------------------------------- credentials files


def test_credentials_json_and_text_formats(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(CREDENTIALS))
    (tmp_path / "c.txt").write_text("alice wonderland\n\nbob   builder\n")
    assert load_credentials(str(tmp_path / "c.json"))["bob"] == "builder"
    assert load_credentials(f"file://{tmp_path / 'c.txt'}") == {"alice": "wonderland", "bob": "builder"}
    (tmp_path / "one").write_text("agent s3cret\n")
    one = load_credential(str(tmp_path / "one"))
    assert (one.principal, one.secret) == ("agent", "s3cret")
    assert "s3cret" not in repr(one)


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "invalid JSON"),
    ('{"credentials": {}}', "credentials"),
    ('{"credentials": [{"secret": "x"}]}', "principal"),
    ("alice\n", "line 1"),
    ("a:b secret\n", "invalid principal"),
])
def test_bad_credentials_file_is_one_line_error(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "c").write_text(text)
    with pytest.raises(ConfigError, match=reason):
        load_credentials(str(tmp_path / "c"))


def test_missing_credentials_file_and_realm_without_credentials() -> None:
    with pytest.raises(ConfigError, match="--credentials: cannot read"):
        MasterFlags.parse({"credentials": "/nonexistent/creds"})
    with pytest.raises(ConfigError, match="--authenticate_agents requires --credentials"):
        MasterFlags.parse({"authenticate_agents": "true"})
    with pytest.raises(ConfigError, match="expected true or false"):
        MasterFlags.parse({"authenticate_http_readonly": "maybe"})


def test_agent_credential_flag(tmp_path: Path) -> None:
    from mezzo.agent.flags import AgentFlags

    def parse_flags(values: dict) -> AgentFlags:
        return AgentFlags.parse(values, {})

    (tmp_path / "cred").write_text('{"credentials": [{"principal": "agent", "secret": "s3cret"}]}')
    flags = parse_flags({"work_dir": str(tmp_path), "credential": str(tmp_path / "cred")})
    assert flags.master_auth_headers() == AGENT
    (tmp_path / "two").write_text("a b\nc d\n")
    with pytest.raises(ConfigError, match="exactly one credential"):
        parse_flags({"work_dir": str(tmp_path), "credential": str(tmp_path / "two")})


# ---------------------------------------------------------------- a secured master on loopback


class Secured:
    def __init__(self, process, url: str, session: aiohttp.ClientSession) -> None:
        self.process, self.master, self.url, self.session = process, process.master, url, session

    async def request(self, method: str, path: str, headers: dict | None = None,
                      body: dict | None = None) -> tuple[int, str, dict]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {**(JSON if body is not None else {}), **(headers or {})}
        async with self.session.request(method, self.url + path, data=data, headers=hdrs) as resp:
            return resp.status, await resp.text(), dict(resp.headers)


async def start_master(tmp_path: Path, extra: dict[str, str]) -> tuple[object, object, str]:
    (tmp_path / "credentials").write_text(json.dumps(CREDENTIALS))
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1",
                               "allocation_interval": "50ms",
                               "credentials": str(tmp_path / "credentials"), **extra})
    process = build_master(flags)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    return process, runner, url


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    process, runner, url = await start_master(tmp_path, ALL_REALMS)
    async with aiohttp.ClientSession() as session:
        yield Secured(process, url, session)
    await runner.cleanup()


READONLY = ["/master/state", "/state.json", "/master/frameworks", "/master/slaves", "/master/tasks",
            "/master/flags", "/master/state-summary", "/master/roles", "/master/weights",
            "/metrics/snapshot", "/files/debug"]


@pytest.mark.parametrize("path", READONLY)
async def test_readonly_endpoints_need_credentials(secured: Secured, path: str) -> None:
    status, _, headers = await secured.request("GET", path)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-readonly"'
    assert (await secured.request("GET", path, WRONG))[0] == 401
    assert (await secured.request("GET", path, ALICE))[0] == 200


@pytest.mark.parametrize("path", ["/health", "/master/health", "/version", "/master/redirect", "/"])
async def test_public_endpoints_stay_public(secured: Secured, path: str) -> None:
    async with secured.session.get(secured.url + path, allow_redirects=False) as resp:
        assert resp.status in (200, 307)


async def test_operator_api_needs_readwrite_credentials(secured: Secured) -> None:
    call = {"type": "GET_HEALTH"}
    status, _, headers = await secured.request("POST", "/api/v1", body=call)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-readwrite"'
    status, body, _ = await secured.request("POST", "/api/v1", ALICE, body=call)
    assert status == 200 and json.loads(body)["get_health"]["healthy"] is True
    status, _, _ = await secured.request("POST", "/master/teardown")
    assert status == 401
    # Bad input with authentication on: credentials first, then the usual 4xx.
    assert (await secured.request("POST", "/api/v1", ALICE, body={"type": "NOPE"}))[0] == 400


def subscribe(principal: str | None = None, framework_id: str | None = None) -> dict:
    info: dict = {"user": "u", "name": "f"}
    if principal is not None:
        info["principal"] = principal
    if framework_id is not None:
        info["id"] = {"value": framework_id}
    call: dict = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
    if framework_id is not None:
        call["framework_id"] = {"value": framework_id}
    return call


async def test_framework_principal_is_bound_to_its_registration(secured: Secured) -> None:
    status, _, headers = await secured.request("POST", "/api/v1/scheduler", body=subscribe())
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-scheduler"'
    # Naming another principal than the one authenticated: refused, as Mesos does (400).
    status, text, _ = await secured.request("POST", "/api/v1/scheduler", ALICE, body=subscribe("bob"))
    assert status == 400 and "does not match principal 'bob'" in text
    assert not secured.master.frameworks
    # No principal in FrameworkInfo: it becomes the authenticated one.
    resp = await secured.session.post(secured.url + "/api/v1/scheduler", data=json.dumps(subscribe()),
                                      headers={**JSON, **ALICE, "Accept": "application/json"})
    assert resp.status == 200
    stream_id = resp.headers["Mesos-Stream-Id"]
    framework_id = (await read_records(resp, 1))[0]["subscribed"]["framework_id"]["value"]
    assert secured.master.frameworks[framework_id].info.principal == "alice"
    # Bob, with valid credentials, can neither re-subscribe as it, nor tear it down, nor revive.
    status, text, _ = await secured.request("POST", "/api/v1/scheduler", BOB,
                                            body=subscribe("alice", framework_id))
    assert status == 400 and "Authenticated principal 'bob'" in text
    # Naming itself: the core refuses a principal change on the stream (ERROR), as Mesos.
    other = await secured.session.post(secured.url + "/api/v1/scheduler",
                                       data=json.dumps(subscribe("bob", framework_id)),
                                       headers={**JSON, **BOB, "Accept": "application/json"})
    error = (await read_records(other, 1))[0]
    assert error["type"] == "ERROR" and "Changing framework's principal is not allowed" in error["error"]["message"]
    other.close()
    assert secured.master.frameworks[framework_id].info.principal == "alice"
    for call_type in ("TEARDOWN", "REVIVE"):
        status, text, _ = await secured.request(
            "POST", "/api/v1/scheduler", {**BOB, "Mesos-Stream-Id": stream_id},
            body={"type": call_type, "framework_id": {"value": framework_id}})
        assert status == 400 and "does not match principal 'alice'" in text
    assert framework_id in secured.master.frameworks
    # Alice can.
    status, _, _ = await secured.request(
        "POST", "/api/v1/scheduler", {**ALICE, "Mesos-Stream-Id": stream_id},
        body={"type": "TEARDOWN", "framework_id": {"value": framework_id}})
    assert status == 202
    assert framework_id not in secured.master.frameworks
    resp.close()


async def test_agents_authenticate_with_their_credential(secured: Secured) -> None:
    status, _, headers = await secured.request(
        "POST", "/api/v1/agent", body={"type": "SUBSCRIBE", "subscribe": {"agent_info": {"hostname": "h"}}})
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-agent"'
    assert not secured.master.agents
    async with aiohttp.ClientSession(headers=AGENT) as session:
        agent = EmulatedAgent(secured.url, hostname="authed", session=session)
        await asyncio.wait_for(agent.start(), 10)
        try:
            assert [a.info.hostname for a in secured.master.agents.values()] == ["authed"]
        finally:
            await agent.stop()


async def test_default_is_open_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flags = MasterFlags.parse({})
    assert flags.security.authenticator is None
    with caplog.at_level("WARNING", logger="mezzo.security"):
        flags.security.log_posture()
    lines = [r.getMessage() for r in caplog.records if r.name == "mezzo.security"]
    assert len(lines) == 1 and "security is open" in lines[0] and "--authenticate_agents" in lines[0]


async def test_sdk_scheduler_takes_principal_and_secret(secured: Secured) -> None:
    from mezzo.api.common import FrameworkInfo
    from mezzo.scheduler.client import SchedulerClient, SchedulerOptions

    client = SchedulerClient(secured.url, FrameworkInfo(user="u", name="sdk"),
                             options=SchedulerOptions(principal="alice", secret="wonderland"))
    await client.start()
    try:
        framework_id = await client.wait_subscribed(timeout=10)
        assert secured.master.frameworks[framework_id.value].info.principal == "alice"
    finally:
        await client.stop()


async def test_unmodified_pymesos_principal_and_secret(secured: Secured) -> None:
    pymesos = pytest.importorskip("pymesos")
    from tests.test_master_pymesos import RecordingScheduler

    sched = RecordingScheduler(tasks_wanted=0)
    driver = pymesos.MesosSchedulerDriver(
        sched, {"user": "u", "name": "pymesos-auth", "principal": "bob"},
        secured.url.removeprefix("http://"), use_addict=True, principal="bob", secret="builder")
    await asyncio.to_thread(driver.start)  # it asks /version synchronously: off the loop
    try:
        kind, framework_id = await asyncio.to_thread(sched.events.get, True, 20)
        assert kind == "registered"
        assert secured.master.frameworks[framework_id].info.principal == "bob"
    finally:
        driver.stop()
        await asyncio.to_thread(driver.join)


def test_cli_flags_take_values() -> None:
    """`--authenticate_agents=true` / `--authenticate_agents true` (and other booleans such as
    `--root_submissions false`) reach the flags with their value."""
    from mezzo.cli.master import master_command

    ctx = master_command.make_context("master", [
        "--authenticate_agents=true", "--authenticate_http_readonly", "true",
        "--root_submissions", "false", "--credentials", "/c"])
    assert ctx.params["authenticate_agents"] == "true"
    assert ctx.params["authenticate_http_readonly"] == "true"
    assert ctx.params["root_submissions"] == "false"


@pytest.mark.slow
def test_secured_mezzo_local(tmp_path: Path) -> None:
    """docs/security.md's `mezzo local` set-up: agents register with their credential, the
    state needs credentials."""
    import urllib.error
    import urllib.request

    from mezzo.cli.local import _security_args
    from mezzo.testing.local_cluster import ClusterSpec, LocalCluster

    (tmp_path / "credentials").write_text(json.dumps(CREDENTIALS))
    (tmp_path / "agent").write_text("agent s3cret\n")
    master_args, agent_args, headers = _security_args(str(tmp_path / "credentials"), str(tmp_path / "agent"), None)
    assert headers == AGENT
    cluster = LocalCluster(ClusterSpec(agents=1, work_dir=str(tmp_path / "cluster"), master_args=master_args,
                                       agent_args=agent_args, master_headers=headers))
    try:
        cluster.start()  # waits for the agent: it authenticated
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(cluster.master_url + "/master/state", timeout=5)
        assert refused.value.code == 401
        assert len(cluster.state()["slaves"]) == 1
    finally:
        cluster.stop()
