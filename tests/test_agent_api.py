"""The agent's HTTP surface in-process (no master needed): executor API status codes and
stream, the executor environment, read endpoints, operator calls, and the files API's refusal
of paths outside the sandboxes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.agent.flags import AgentFlags
from mezzo.agent.main import AgentRuntime, start_agent
from mezzo.agent.state import ExecutorPhase
from mezzo.api.common import (
    AgentID,
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    TaskID,
    TaskInfo,
)
from mezzo.api.recordio import RecordIODecoder
from mezzo.resources import Resources
from mezzo.testing.agent_harness import free_port
from mezzo.testing.processes import eventually

FW = {"value": "fw-1"}
EX = {"value": "ex-1"}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[AgentRuntime]:
    flags = AgentFlags(
        master=f"127.0.0.1:{free_port()}",  # nobody there: the agent keeps retrying
        work_dir=str(tmp_path / "work"), ip="127.0.0.1", port=0,
        resources="cpus:2;mem:512;disk:100;ports:[31000-31010]",
        attributes="rack:r1;level:3", executor_registration_timeout=30.0,
    )
    rt = await start_agent(flags)
    agent = rt.agent
    agent.info.id = AgentID(value="agent-1")
    agent.checkpointer.agent(agent.info)
    try:
        yield rt
    finally:
        await rt.stop(kill_executors=True)


def launch_custom(rt: AgentRuntime, shell: str, checkpoint: bool = False) -> None:
    framework = FrameworkInfo(user="root", name="t", id=FrameworkID(**FW), checkpoint=checkpoint)
    executor = ExecutorInfo(
        executor_id=ExecutorID(**EX), command=CommandInfo(value=shell),
        resources=Resources.parse("cpus:0.1;mem:32").to_wire(),
    )
    task = TaskInfo(
        name="t1", task_id=TaskID(value="t1"), agent_id=AgentID(value="agent-1"),
        resources=Resources.parse("cpus:0.5;mem:64").to_wire(),
    )
    rt.agent.run_task(framework, [task], executor, group=False)


async def post(rt: AgentRuntime, body: object, path: str = "/api/v1/executor",
               headers: dict | None = None) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as s, s.post(
        rt.url + path, data=data, headers=headers or {"Content-Type": "application/json"}
    ) as r:
        return r.status, await r.text()


async def get(rt: AgentRuntime, endpoint: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(rt.url + endpoint, params=params) as r:
        return r.status, await r.text()


async def wait_executor_started(rt: AgentRuntime) -> None:
    await eventually(lambda: rt.agent.frameworks["fw-1"].executors["ex-1"].pid is not None,
                     10, "the executor's container")


def update(state: str, uuid: bytes | None = bytes(range(16)), **extra: object) -> dict:
    status: dict = {"task_id": {"value": "t1"}, "state": state, **extra}
    if uuid is not None:
        status["uuid"] = base64.b64encode(uuid).decode()
    return {"type": "UPDATE", "framework_id": FW, "executor_id": EX, "update": {"status": status}}


async def test_malformed_and_unknown_calls(runtime: AgentRuntime) -> None:
    rt = runtime
    assert (await post(rt, b"{not json"))[0] == 400
    assert (await post(rt, {"type": "SUBSCRIBE"}))[0] == 400  # no ids
    assert (await post(rt, {"type": "HEARTBEAT", "framework_id": FW, "executor_id": EX}))[0] == 202
    assert (await post(rt, {"type": "UNKNOWN", "framework_id": FW, "executor_id": EX}))[0] == 501
    status, text = await post(rt, update("TASK_RUNNING"))
    assert (status, text) == (400, "Framework cannot be found")
    assert (await post(rt, b"{}", headers={"Content-Type": "text/plain"}))[0] == 415
    async with aiohttp.ClientSession() as s, s.get(rt.url + "/api/v1/executor") as r:
        assert r.status == 405
    launch_custom(rt, "sleep 60")
    await wait_executor_started(rt)
    other = {**update("TASK_RUNNING"), "executor_id": {"value": "nope"}}
    assert await post(rt, other) == (400, "Executor cannot be found")
    # Known executor, not subscribed yet.
    assert (await post(rt, update("TASK_RUNNING")))[0] == 403
    assert (await post(rt, update("TASK_RUNNING", uuid=b"short")))[0] == 400


async def read_events(resp: aiohttp.ClientResponse, n: int) -> list[dict]:
    decoder = RecordIODecoder()
    events: list[dict] = []
    while len(events) < n:
        chunk = await asyncio.wait_for(resp.content.readany(), 10)
        assert chunk, f"stream ended after {events}"
        events.extend(json.loads(r) for r in decoder.feed(chunk))
    return events


async def test_subscribe_launch_update_acknowledged(runtime: AgentRuntime) -> None:
    rt = runtime
    launch_custom(rt, "env > env.txt; sleep 60", checkpoint=True)
    await wait_executor_started(rt)
    body = {"type": "SUBSCRIBE", "framework_id": FW, "executor_id": EX,
            "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []}}
    async with aiohttp.ClientSession() as s:
        r1 = await s.post(rt.url + "/api/v1/executor", json=body,
                          headers={"Accept": "application/json"})
        assert r1.status == 200 and r1.headers["Content-Type"].startswith("application/json")
        subscribed, launch = await read_events(r1, 2)
        assert subscribed["type"] == "SUBSCRIBED"
        sub = subscribed["subscribed"]
        assert sub["framework_info"]["id"] == FW and sub["executor_info"]["executor_id"] == EX
        assert sub["agent_info"]["id"] == {"value": "agent-1"} and sub["container_id"]["value"]
        assert launch["type"] == "LAUNCH" and launch["launch"]["task"]["task_id"]["value"] == "t1"

        assert (await post(rt, update("TASK_STAGING")))[0] == 400
        assert (await post(rt, update("TASK_RUNNING", source="SOURCE_AGENT")))[0] == 400
        assert await post(rt, update("TASK_RUNNING")) == (202, "")
        [ack] = await read_events(r1, 1)
        assert ack["type"] == "ACKNOWLEDGED"
        assert ack["acknowledged"] == {"task_id": {"value": "t1"},
                                       "uuid": base64.b64encode(bytes(range(16))).decode()}
        ex = rt.agent.frameworks["fw-1"].executors["ex-1"]
        assert ex.launched[TaskID(value="t1")].state == "TASK_RUNNING"
        status = rt.agent.updates.head(TaskID(value="t1"))
        assert status is not None and status.agent_id.value == "agent-1"
        assert status.executor_id.value == "ex-1"
        # Checkpointed for a checkpointing framework.
        logs = list(Path(rt.agent.flags.work_dir).glob("meta/**/task.updates"))
        assert logs and "TASK_RUNNING" in logs[0].read_text()

        # The environment of spec §6.1.
        env_file = ex.sandbox / "env.txt"
        await eventually(lambda: env_file.exists() and env_file.stat().st_size, 10, "env.txt")
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        assert env["MESOS_FRAMEWORK_ID"] == "fw-1" and env["MESOS_EXECUTOR_ID"] == "ex-1"
        assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{rt.port}"
        assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"] == str(ex.sandbox)
        assert env["MESOS_CHECKPOINT"] == "1" and env["MESOS_SLAVE_ID"] == "agent-1"
        assert env["MESOS_SLAVE_PID"] == f"slave(1)@127.0.0.1:{rt.port}"
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "5secs"
        assert env["MESOS_RECOVERY_TIMEOUT"] == "15mins"
        assert env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] == "2secs"
        assert env["LIBPROCESS_PORT"] == "0" and env["MESOS_HTTP_COMMAND_EXECUTOR"] == "0"

        # A second SUBSCRIBE replaces (closes) the first stream.
        r2 = await s.post(rt.url + "/slave(1)/api/v1/executor", json=body)
        assert r2.status == 200
        [again] = await read_events(r2, 1)
        assert again["type"] == "SUBSCRIBED"
        rest = await asyncio.wait_for(r1.content.read(), 10)
        assert rest == b""
        r2.close()
        r1.close()


async def test_read_endpoints_and_operator_api(runtime: AgentRuntime) -> None:
    rt = runtime
    launch_custom(rt, "echo out; echo err >&2; sleep 60")
    await wait_executor_started(rt)
    status, text = await get(rt, "/state")
    assert status == 200
    state = json.loads(text)
    assert state["id"] == "agent-1" and state["resources"]["cpus"] == 2
    assert state["resources"]["ports"] == "[31000-31010]"
    assert state["attributes"] == {"rack": "r1", "level": 3.0}
    [fw] = state["frameworks"]
    [ex] = fw["executors"]
    assert ex["id"] == "ex-1" and ex["queued_tasks"][0]["id"] == "t1"
    assert (await get(rt, "/slave(1)/state"))[0] == 200
    assert (await get(rt, "/state.json"))[0] == 200
    assert (await get(rt, "/health"))[0] == 200
    version = json.loads((await get(rt, "/version"))[1])
    assert version["version"]
    metrics = json.loads((await get(rt, "/metrics/snapshot"))[1])
    assert metrics["slave/executors_registering"] == 1 and metrics["slave/cpus_total"] == 2
    assert metrics["slave/cpus_used"] == pytest.approx(0.6)
    for call in ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_STATE", "GET_FRAMEWORKS",
                 "GET_EXECUTORS", "GET_TASKS", "GET_AGENT", "GET_CONTAINERS"):
        status, text = await post(rt, {"type": call}, path="/api/v1")
        assert status == 200, (call, text)
        assert json.loads(text)["type"] == call
    containers = json.loads((await post(rt, {"type": "GET_CONTAINERS"}, path="/api/v1"))[1])
    [c] = containers["get_containers"]["containers"]
    assert c["container_status"]["executor_pid"] == rt.agent.frameworks["fw-1"].executors[
        "ex-1"].pid


async def test_files_api_serves_sandboxes_and_refuses_escapes(runtime: AgentRuntime) -> None:
    rt = runtime
    launch_custom(rt, "echo hello-sandbox; sleep 60")
    await wait_executor_started(rt)
    sandbox = rt.agent.frameworks["fw-1"].executors["ex-1"].sandbox
    await eventually(lambda: (sandbox / "stdout").read_text(), 10, "the task's output")
    status, text = await get(rt, "/files/browse", path=str(sandbox))
    assert status == 200
    assert {Path(e["path"]).name for e in json.loads(text)} >= {"stdout", "stderr"}
    status, text = await get(rt, "/files/read", path=str(sandbox / "stdout"), offset="0")
    assert status == 200 and json.loads(text) == {"data": "hello-sandbox\n", "offset": 0}
    status, text = await get(rt, "/files/read", path=str(sandbox / "stdout"))
    assert json.loads(text)["offset"] == len("hello-sandbox\n")  # size only
    status, text = await get(rt, "/files/read", path=str(sandbox / "stdout"), offset="6",
                             length="3")
    assert json.loads(text)["data"] == "san"
    assert (await get(rt, "/files/read", path=str(sandbox / ".." / ".." / ".." / ".." / ".." /
                                                  ".." / ".." / ".." / "etc" / "passwd"),
                      offset="0"))[0] == 403
    assert (await get(rt, "/files/read", path="/etc/passwd", offset="0"))[0] == 403
    assert (await get(rt, "/files/browse", path=rt.agent.flags.work_dir + "/meta"))[0] == 403
    os.symlink("/etc", sandbox / "escape")
    assert (await get(rt, "/files/read", path=str(sandbox / "escape" / "passwd"),
                      offset="0"))[0] == 403
    assert (await get(rt, "/files/read", path=str(sandbox / "missing"), offset="0"))[0] == 404
    assert (await get(rt, "/files/read"))[0] == 400
    assert (await get(rt, "/files/read", path=str(sandbox / "stdout"), offset="x"))[0] == 400


async def test_files_api_serves_an_executors_latest_run_at_its_virtual_path(
        runtime: AgentRuntime) -> None:
    """Mesos's agent also attaches each sandbox at
    `/frameworks/<framework>/executors/<executor>/runs/latest`: `/files/*` and LIST_FILES /
    READ_FILE take it, browse shows it, `/files/debug` lists it, nothing outside the
    sandbox is reachable through it, and an unknown executor is 404."""
    rt = runtime
    launch_custom(rt, "echo hello-virtual; sleep 60")
    await wait_executor_started(rt)
    sandbox = rt.agent.frameworks["fw-1"].executors["ex-1"].sandbox
    await eventually(lambda: (sandbox / "stdout").read_text(), 10, "the task's output")
    virtual = "/frameworks/fw-1/executors/ex-1/runs/latest"
    status, text = await get(rt, "/files/read", path=virtual + "/stdout", offset="0")
    assert status == 200 and json.loads(text) == {"data": "hello-virtual\n", "offset": 0}
    status, text = await get(rt, "/files/browse", path=virtual)
    assert status == 200
    assert {e["path"] for e in json.loads(text)} >= {virtual + "/stdout", virtual + "/stderr"}
    status, text = await get(rt, "/files/browse", path=virtual + "/stdout")
    assert [e["path"] for e in json.loads(text)] == [virtual + "/stdout"]
    status, text = await get(rt, "/files/download", path=virtual + "/stdout")
    assert status == 200 and text == "hello-virtual\n"
    debug = json.loads((await get(rt, "/files/debug"))[1])
    assert debug[virtual] == str(sandbox)
    status, text = await post(rt, {"type": "READ_FILE", "read_file": {
        "path": virtual + "/stdout", "offset": 0}}, path="/api/v1")
    assert status == 200, text
    assert base64.b64decode(json.loads(text)["read_file"]["data"]) == b"hello-virtual\n"
    status, text = await post(rt, {"type": "LIST_FILES", "list_files": {"path": virtual}},
                              path="/api/v1")
    assert status == 200, text
    listed = {f["path"] for f in json.loads(text)["list_files"]["file_infos"]}
    assert virtual + "/stdout" in listed
    # Nothing outside the sandbox through its virtual name, even elsewhere in the work dir.
    assert (await get(rt, "/files/read", path=virtual + "/../../../../../../../etc/passwd",
                      offset="0"))[0] == 403
    assert (await get(rt, "/files/browse", path=virtual + "/.."))[0] == 403
    assert (await get(rt, "/files/read", path=virtual + "/missing", offset="0"))[0] == 404
    for unknown in ("/frameworks/fw-1/executors/nope/runs/latest/stdout",
                    "/frameworks/nope/executors/ex-1/runs/latest"):
        assert (await get(rt, "/files/read", path=unknown, offset="0"))[0] == 404


async def test_download_of_a_file_with_any_name_answers(runtime: AgentRuntime) -> None:
    """A task may name its files anything: a newline in the name broke the Content-Disposition
    header (aiohttp refused it and dropped the connection, logging an unhandled exception).
    A plain name is sent bare, as Mesos does; any other percent-encoded as RFC 6266's
    `filename*`, beside an ASCII-safe `filename`."""
    rt = runtime
    launch_custom(rt, "sleep 60")
    await wait_executor_started(rt)
    sandbox = rt.agent.frameworks["fw-1"].executors["ex-1"].sandbox
    virtual = "/frameworks/fw-1/executors/ex-1/runs/latest"
    names = {"plain.txt": "attachment; filename=plain.txt",
             "a\nb": "attachment; filename=\"a_b\"; filename*=UTF-8''a%0Ab",
             'q"x y': "attachment; filename=\"q_x_y\"; filename*=UTF-8''q%22x%20y",
             "é": "attachment; filename=\"_\"; filename*=UTF-8''%C3%A9"}
    for name in names:
        (sandbox / name).write_text("data")
    async with aiohttp.ClientSession() as s:
        for name, disposition in names.items():
            for path in (str(sandbox / name), f"{virtual}/{name}"):
                async with s.get(rt.url + "/files/download", params={"path": path}) as r:
                    assert r.status == 200 and await r.text() == "data", (name, r.status)
                    assert r.headers["Content-Disposition"] == disposition


async def test_launch_beyond_the_agents_resources_is_refused(runtime: AgentRuntime) -> None:
    rt = runtime
    framework = FrameworkInfo(user="root", name="t", id=FrameworkID(**FW))
    task = TaskInfo(
        name="big", task_id=TaskID(value="big"), agent_id=AgentID(value="agent-1"),
        resources=Resources.parse("cpus:16;mem:64").to_wire(), command=CommandInfo(value="true"),
    )
    rt.agent.run_task(framework, [task], None, group=False)
    status = rt.agent.updates.head(TaskID(value="big"))
    assert status is not None and status.state == "TASK_LOST"
    assert status.reason == "REASON_RESOURCES_UNKNOWN" and status.source == "SOURCE_AGENT"
    assert not rt.agent.frameworks["fw-1"].executors  # nothing launched
    assert (await get(rt, "/health"))[0] == 200  # still serving


async def test_kill_of_a_queued_task(runtime: AgentRuntime) -> None:
    rt = runtime
    launch_custom(rt, "sleep 60")
    await wait_executor_started(rt)
    rt.agent.kill_task(FrameworkID(**FW), TaskID(value="t1"), None)
    status = rt.agent.updates.head(TaskID(value="t1"))
    assert status is not None and status.state == "TASK_KILLED"
    assert status.reason == "REASON_TASK_KILLED_DURING_LAUNCH"
    ex = rt.agent.frameworks["fw-1"].executors["ex-1"]
    # Nothing left to run: the executor is shut down.
    await eventually(lambda: ex.phase == ExecutorPhase.TERMINATED, 10, "the executor's end")


async def test_error_messages_stay_one_line_whatever_they_quote(runtime: AgentRuntime) -> None:
    """An error that quotes the request back (here /logging/toggle's level) is still one line
    of bounded length: line breaks escaped, the text cut."""
    from mezzo.net.http import MAX_MESSAGE, one_line

    status, text = await get(runtime, "/logging/toggle", level="1\r\nX-Injected: yes", duration="1secs")
    assert status == 400 and "\n" not in text and "\r" not in text
    assert "\\r\\nX-Injected" in text
    status, text = await get(runtime, "/logging/toggle", level="9" * 5000 + "x", duration="1secs")
    assert status == 400 and len(text) <= MAX_MESSAGE and "\n" not in text
    assert one_line("a\nb") == "a\\nb" and one_line("ok") == "ok"
