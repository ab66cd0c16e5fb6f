"""Nested and standalone containers through the agent operator API, end to end: a real
`mezzo master` and `mezzo agent`, a real command task, real processes, pipes and ptys.

Sessions (LAUNCH_NESTED_CONTAINER_SESSION) stream ProcessIO records; ATTACH_CONTAINER_INPUT
streams a RecordIO request body; WAIT/KILL/REMOVE manage what was launched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mezzo.api.recordio import RecordIODecoder, encode_record
from mezzo.testing.agent_harness import MiniScheduler, Proc, ProcessCluster, command_task, pid_alive

pytestmark = pytest.mark.slow

STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "application/recordio",
                  "Message-Accept": "application/json"}
INPUT_HEADERS = {"Content-Type": "application/recordio", "Message-Content-Type": "application/json",
                 "Accept": "application/json"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096;ports:[31000-31100]") as c:
        yield c


async def call(agent: Proc, body: dict[str, Any], accept: str = "application/json") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(
        agent.url + "/api/v1", json=body, headers={"Accept": accept}
    ) as r:
        return r.status, await r.text()


async def running_task_container(cluster: ProcessCluster, task_id: str = "web",
                                 shell: str = "sleep 300") -> tuple[Proc, dict[str, Any], MiniScheduler]:
    agent = cluster.agent()
    s = MiniScheduler(cluster.master.url)
    await s.__aenter__()
    await s.launch([command_task(task_id, shell)])
    update = await s.wait_state(task_id, "TASK_RUNNING")
    return agent, update["container_status"]["container_id"], s


def nested_id(parent: dict[str, Any], value: str | None = None) -> dict[str, Any]:
    return {"parent": parent, "value": value or uuid.uuid4().hex}


async def read_records(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    decoder = RecordIODecoder()
    async for chunk in response.content.iter_any():
        for record in decoder.feed(chunk):
            yield json.loads(record)


def stdin_record(data: bytes) -> bytes:
    return encode_record(json.dumps({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "PROCESS_IO", "process_io": {
            "type": "DATA", "data": {"type": "STDIN", "data": base64.b64encode(data).decode()}}},
    }).encode())


def first_input_record(container_id: dict[str, Any]) -> bytes:
    return encode_record(json.dumps({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "CONTAINER_ID", "container_id": container_id},
    }).encode())


async def session(agent: Proc, container_id: dict[str, Any], command: dict[str, Any],
                  tty: bool = False, input_records: list[bytes] | None = None,
                  ) -> tuple[int, dict[str, bytes]]:
    """Launch a session, feed it `input_records` (after the CONTAINER_ID record), collect its
    output by stream; returns (status, {"STDOUT": ..., "STDERR": ...})."""
    body: dict[str, Any] = {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                            "launch_nested_container_session": {
                                "container_id": container_id, "command": command}}
    if tty:
        body["launch_nested_container_session"]["container"] = {
            "type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}
    out: dict[str, bytes] = {"STDOUT": b"", "STDERR": b""}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.post(
            agent.url + "/api/v1", json=body, headers=STREAM_HEADERS) as r:
        if r.status != 200:
            return r.status, {"error": (await r.read())}
        assert r.headers["Content-Type"] == "application/recordio"
        feeder = None
        if input_records is not None:
            async def feed() -> int:
                async def body_gen() -> AsyncIterator[bytes]:
                    yield first_input_record(container_id)
                    for rec in input_records:
                        yield rec
                async with s.post(agent.url + "/api/v1", data=body_gen(),
                                  headers=INPUT_HEADERS) as ri:
                    return ri.status
            feeder = asyncio.ensure_future(feed())
        async for record in read_records(r):
            if record["type"] == "DATA":
                data = record["data"]
                out[data["type"]] += base64.b64decode(data.get("data", ""))
        if feeder is not None:
            assert await feeder == 200
    return 200, out


async def wait_container(agent: Proc, container_id: dict[str, Any]) -> dict[str, Any]:
    status, text = await call(agent, {"type": "WAIT_CONTAINER",
                                      "wait_container": {"container_id": container_id}})
    assert status == 200, text
    return json.loads(text)["wait_container"]


async def test_session_runs_in_the_task_sandbox_with_piped_io(cluster: ProcessCluster) -> None:
    agent, parent, s = await running_task_container(cluster)
    try:
        cid = nested_id(parent)
        status, out = await session(
            agent, cid, {"shell": True, "value": "pwd; echo to-err >&2; cat; exit 7"},
            input_records=[stdin_record(b"hello "), stdin_record(b"world\n"), stdin_record(b"")])
        assert status == 200, out
        lines = out["STDOUT"].decode().splitlines()
        # The working directory is the task's sandbox (the executor's container's).
        assert lines[0].endswith(parent["value"])
        assert lines[1] == "hello world"
        assert out["STDERR"] == b"to-err\n"
        result = await wait_container(agent, cid)
        assert os.WIFEXITED(result["exit_status"]) and os.WEXITSTATUS(result["exit_status"]) == 7
        # The output was also written to the nested container's sandbox.
        sandbox = Path(lines[0]) / "containers" / cid["value"]
        assert (sandbox / "stderr").read_bytes() == b"to-err\n"
        # Removing it deletes its sandbox; a second wait is then 404.
        assert (await call(agent, {"type": "REMOVE_NESTED_CONTAINER",
                                   "remove_nested_container": {"container_id": cid}}))[0] == 200
        assert not sandbox.exists()
        assert (await call(agent, {"type": "WAIT_CONTAINER",
                                   "wait_container": {"container_id": cid}}))[0] == 404
    finally:
        await s.__aexit__(None, None, None)


async def test_session_with_a_tty(cluster: ProcessCluster) -> None:
    agent, parent, s = await running_task_container(cluster)
    try:
        cid = nested_id(parent)
        # stty reports the window size the TTY_INFO asked for; `tty` names the pty; input is
        # echoed by the terminal; EOT (^D) ends `cat`.
        status, out = await session(
            agent, cid,
            {"shell": True, "value": "stty size; tty; test -t 0 && echo interactive; cat; exit 3"},
            tty=True, input_records=[stdin_record(b"typed\n"), stdin_record(b"\x04")])
        assert status == 200, out
        text = out["STDOUT"].decode()
        assert "24 80" in text
        assert "go\r\n" not in text  # the launch barrier's line never reaches the terminal
        assert "/dev/pts/" in text
        assert "interactive" in text
        assert text.count("typed") == 2  # the echo and cat's copy
        assert out["STDERR"] == b""  # a TTY has one stream
        result = await wait_container(agent, cid)
        assert os.WEXITSTATUS(result["exit_status"]) == 3
    finally:
        await s.__aexit__(None, None, None)


async def test_nested_container_kill_wait_remove_and_dies_with_its_parent(
        cluster: ProcessCluster) -> None:
    agent, parent, s = await running_task_container(cluster)
    try:
        first, second = nested_id(parent), nested_id(parent)
        for cid in (first, second):
            status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER",
                                              "launch_nested_container": {
                                                  "container_id": cid,
                                                  "command": {"value": "echo $$ > pid; exec sleep 300"}}})
            assert status == 200, text
        # GET_CONTAINERS lists them only with show_nested, under their task's executor.
        status, text = await call(agent, {"type": "GET_CONTAINERS"})
        assert status == 200 and first["value"] not in text
        status, text = await call(agent, {"type": "GET_CONTAINERS",
                                          "get_containers": {"show_nested": True}})
        listed = [c for c in json.loads(text)["get_containers"]["containers"]
                  if c["container_id"].get("parent") == parent]
        assert {c["container_id"]["value"] for c in listed} == {first["value"], second["value"]}
        assert all(c["executor_id"]["value"] == "web" for c in listed)
        # The same id again: 202, nothing launched.
        status, _ = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER",
                                       "launch_nested_container": {"container_id": first,
                                                                   "command": {"value": "true"}}})
        assert status == 202
        # Removing a running container is refused.
        status, text = await call(agent, {"type": "REMOVE_NESTED_CONTAINER",
                                          "remove_nested_container": {"container_id": first}})
        assert status == 400 and "not terminated" in text
        # A container without a TTY cannot be attached to (Mesos's status and message).
        status, text = await call(agent, {"type": "ATTACH_CONTAINER_OUTPUT",
                                          "attach_container_output": {"container_id": first}},
                                  accept="application/recordio")
        assert (status, text) == (500, "I/O switchboard server was disabled for this container")
        # KILL with SIGTERM: WAIT reports the signal.
        status, text = await call(agent, {"type": "KILL_CONTAINER", "kill_container": {
            "container_id": first, "signal": int(signal.SIGTERM)}})
        assert status == 200, text
        result = await wait_container(agent, first)
        assert os.WIFSIGNALED(result["exit_status"])
        assert os.WTERMSIG(result["exit_status"]) == signal.SIGTERM
        # Killing it again: 404.
        assert (await call(agent, {"type": "KILL_CONTAINER",
                                   "kill_container": {"container_id": first}}))[0] == 404
        # The second dies with its parent: kill the task, its nested container goes too.
        sandbox = Path(await agent_sandbox(agent, parent)) / "containers" / second["value"]
        pid = await poll(lambda: _read_pid(sandbox / "pid"))
        assert pid_alive(pid)
        await s.call({"type": "KILL", "kill": {"task_id": {"value": "web"}}})
        await s.wait_state("web", "TASK_KILLED")
        result = await wait_container(agent, second)
        assert os.WIFSIGNALED(result["exit_status"])
        await poll(lambda: not pid_alive(pid) or None)
    finally:
        await s.__aexit__(None, None, None)


async def test_bad_calls_are_4xx(cluster: ProcessCluster) -> None:
    agent, parent, s = await running_task_container(cluster)
    try:
        unknown_parent = {"value": "x", "parent": {"value": "no-such-container"}}
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER",
                                          "launch_nested_container": {
                                              "container_id": unknown_parent,
                                              "command": {"value": "true"}}})
        assert status == 400 and "does not exist" in text
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER",
                                          "launch_nested_container": {
                                              "container_id": {"value": "a.b", "parent": parent},
                                              "command": {"value": "true"}}})
        assert status == 400 and "invalid characters" in text
        status, text = await call(agent, {"type": "WAIT_CONTAINER", "wait_container": {
            "container_id": nested_id(parent)}})
        assert status == 404
        # ATTACH_CONTAINER_INPUT must stream.
        status, text = await call(agent, {"type": "ATTACH_CONTAINER_INPUT",
                                          "attach_container_input": {"type": "CONTAINER_ID",
                                                                     "container_id": parent}})
        assert status == 415
        # A streaming body for another call.
        async with aiohttp.ClientSession() as sess, sess.post(
                agent.url + "/api/v1", headers=INPUT_HEADERS,
                data=encode_record(b'{"type":"GET_HEALTH"}')) as r:
            assert r.status == 415
        # A bad input record (stdout instead of stdin) on a live session's input: 400.
        cid = nested_id(parent)
        bad = encode_record(json.dumps({
            "type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
                "type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
                    "type": "STDOUT", "data": ""}}}}).encode())
        body = {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
            "container_id": cid, "command": {"value": "sleep 30"}}}
        async with aiohttp.ClientSession() as sess:
            async with sess.post(agent.url + "/api/v1", json=body, headers=STREAM_HEADERS) as r:
                assert r.status == 200
                async with sess.post(agent.url + "/api/v1", headers=INPUT_HEADERS,
                                     data=first_input_record(cid) + bad) as ri:
                    assert ri.status == 400
                    assert "'STDIN'" in await ri.text()
            # Closing the session's connection destroys its container.
            result = await wait_container(agent, cid)
            assert os.WIFSIGNALED(result["exit_status"])
    finally:
        await s.__aexit__(None, None, None)


async def test_standalone_container(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    cid = {"value": uuid.uuid4().hex}
    status, text = await call(agent, {"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": cid, "command": {"value": "echo standalone; exit 4"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}})
    assert status == 200, text
    result = await wait_container(agent, cid)
    assert os.WEXITSTATUS(result["exit_status"]) == 4
    sandbox = cluster.tmp / "agent" / "standalone" / cid["value"]
    assert (sandbox / "stdout").read_text() == "standalone\n"
    assert (await call(agent, {"type": "REMOVE_CONTAINER",
                               "remove_container": {"container_id": cid}}))[0] == 200
    assert not sandbox.exists()


# ---------------------------------------------------------------------- helpers


async def agent_sandbox(agent: Proc, container_id: dict[str, Any]) -> str:
    async with aiohttp.ClientSession() as s, s.get(agent.url + "/state") as r:
        state = await r.json()
    for fw in state["frameworks"]:
        for ex in fw["executors"]:
            if ex["container"] == container_id["value"]:
                return str(ex["directory"])
    raise AssertionError("no such executor")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


async def poll(fn: Any, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_attach_to_a_task_launched_with_a_tty(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    async with MiniScheduler(cluster.master.url) as s:
        task = command_task("tty-task", "read line; echo got:$line; tty; exit 0",
                            container={"type": "MESOS", "tty_info": {}})
        await s.launch([task, command_task("plain", "sleep 300")])
        update = await s.wait_state("tty-task", "TASK_RUNNING")
        cid = update["container_status"]["container_id"]
        plain = (await s.wait_state("plain", "TASK_RUNNING"))["container_status"]["container_id"]
        # A task without a TTY cannot be attached to: Mesos's 500 and message.
        status, text = await call(agent, {"type": "ATTACH_CONTAINER_OUTPUT",
                                          "attach_container_output": {"container_id": plain}},
                                  accept="application/recordio")
        assert (status, text) == (500, "I/O switchboard server was disabled for this container")
        output = b""
        attach = {"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {"container_id": cid}}
        async with aiohttp.ClientSession() as sess, sess.post(
                agent.url + "/api/v1", headers=STREAM_HEADERS, json=attach) as r:
            assert r.status == 200, await r.text()
            async with sess.post(agent.url + "/api/v1", headers=INPUT_HEADERS,
                                 data=first_input_record(cid) + stdin_record(b"hi there\r")) as ri:
                assert ri.status == 200, await ri.text()
            async for record in read_records(r):
                if record["type"] == "DATA":
                    output += base64.b64decode(record["data"]["data"])
        assert b"got:hi there" in output, output
        assert b"/dev/pts/" in output
        await s.wait_state("tty-task", "TASK_FINISHED")


async def test_a_restarted_agent_kills_the_nested_containers_it_forgot(cluster: ProcessCluster) -> None:
    agent = cluster.agent()
    async with MiniScheduler(cluster.master.url, checkpoint=True) as s:
        await s.launch([command_task("web", "sleep 300")])
        parent = (await s.wait_state("web", "TASK_RUNNING"))["container_status"]["container_id"]
        cid = nested_id(parent)
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": cid, "command": {"value": "echo $$ > pid; exec sleep 300"}}})
        assert status == 200, text
        sandbox = Path(await agent_sandbox(agent, parent)) / "containers" / cid["value"]
        pid = await poll(lambda: _read_pid(sandbox / "pid"))
        agent.kill()
        assert pid_alive(pid)  # it outlives the agent, like the executor
        agent = cluster.agent()
        await poll(lambda: not pid_alive(pid) or None)
        # The task's executor was recovered and goes on.
        status, text = await call(agent, {"type": "GET_CONTAINERS"})
        assert parent["value"] in text


async def test_a_nested_container_shares_its_parents_cgroups(tmp_path: Path) -> None:
    from mezzo.agent.containerizer import available_isolators

    reasons = {k: v for k, v in available_isolators().items()
               if k in ("cgroups/cpu", "cgroups/mem") and v}
    if reasons:
        pytest.skip(f"cgroups isolators unavailable here: {reasons}")
    from mezzo.testing.agent_harness import remove_cgroups

    root = f"mezzo-test-{uuid.uuid4().hex[:8]}"
    cluster = ProcessCluster(tmp_path, "--resources", "cpus:4;mem:4096",
                             "--isolation", "cgroups/cpu,cgroups/mem", cgroups_root=root)
    try:
        agent, parent, s = await running_task_container(cluster)
        try:
            status, text = await call(agent, {"type": "GET_CONTAINERS"})
            executor_pid = json.loads(text)["get_containers"]["containers"][0][
                "container_status"]["executor_pid"]
            expected = Path(f"/proc/{executor_pid}/cgroup").read_text()
            assert parent["value"] in expected
            status, out = await session(agent, nested_id(parent),
                                        {"shell": True, "value": "cat /proc/self/cgroup"})
            assert status == 200
            assert out["STDOUT"].decode() == expected
        finally:
            await s.__aexit__(None, None, None)
    finally:
        cluster.close()
        remove_cgroups(root)


async def test_fuzz_findings_are_4xx_and_launch_nothing(cluster: ProcessCluster) -> None:
    """What the fuzz test (tests/test_fuzz_http.py) found: a session or an output stream asked
    over HTTP/1.0 (no chunked encoding to stream with) was a 500 after the session had been
    launched; a terminal size beyond 65535 a 500 that left the container half-launched; an
    ATTACH to a container the agent never ran a 500; an input stream that ended right after a
    record's length prefix a 200."""
    from mezzo.testing.fuzz import FuzzRequest, send

    agent, parent, s = await running_task_container(cluster)
    host, port = agent.address.split(":")
    try:
        cid = nested_id(parent, "http10")
        body = json.dumps({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
            "container_id": cid, "command": {"value": "sleep 30"}}}).encode()
        outcome = await send((host, int(port)), FuzzRequest(
            "s", "http/1.0", "POST", "/api/v1", dict(STREAM_HEADERS), body, version="HTTP/1.0"))
        assert outcome.status == 400 and b"HTTP/1.1" in outcome.body, outcome
        status, text = await call(agent, {"type": "WAIT_NESTED_CONTAINER",
                                          "wait_nested_container": {"container_id": cid}})
        assert status == 404, text  # never launched

        wide = nested_id(parent, "wide")
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": wide, "command": {"value": "cat"},
            "container": {"type": "MESOS", "tty_info": {"window_size": {"rows": 70000, "columns": 80}}}}})
        assert status == 400 and "65535" in text, text
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": wide, "command": {"value": "true"}}})
        assert status == 200, text  # the id was left free

        status, text = await call(agent, {"type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {
            "container_id": nested_id(parent, "never")}})
        assert status == 404 and "cannot be found" in text, text

        tty = nested_id(parent, "tty")
        status, text = await call(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": tty, "command": {"value": "cat"},
            "container": {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}}})
        assert status == 200, text
        async with aiohttp.ClientSession() as sess, sess.post(
                agent.url + "/api/v1", headers=INPUT_HEADERS,
                data=first_input_record(tty) + stdin_record(b"x") + b"50\n") as r:
            assert r.status == 400 and "truncated" in await r.text()
    finally:
        await s.__aexit__(None, None, None)
