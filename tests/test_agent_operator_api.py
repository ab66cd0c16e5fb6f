"""The agent's operator API answers every read call with its real content (checked against
the agent's state), logging levels with their duration, and sandbox files."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path

import aiohttp

from mezzo.agent.agent import VERSION
from mezzo.testing.processes import eventually
from tests import test_agent_api
from tests.test_agent_api import launch_custom, post, wait_executor_started

runtime = test_agent_api.runtime  # fixture


async def call(rt, body: dict, status: int = 200) -> dict:  # type: ignore[no-untyped-def]
    code, text = await post(rt, body, path="/api/v1")
    assert code == status, text
    return json.loads(text) if text else {}


async def test_agent_read_calls_answer_its_state(runtime) -> None:  # type: ignore[no-untyped-def]
    rt = runtime
    launch_custom(rt, "echo from-the-sandbox; sleep 60")
    await wait_executor_started(rt)
    agent = rt.agent
    executor = agent.frameworks["fw-1"].executors["ex-1"]
    sandbox: Path = executor.sandbox
    await eventually(lambda: (sandbox / "stdout").exists() and (sandbox / "stdout").read_text(),
                     10, "the task's output")

    assert await call(rt, {"type": "GET_HEALTH"}) == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
    flags = (await call(rt, {"type": "GET_FLAGS"}))["get_flags"]["flags"]
    assert {f["name"]: f["value"] for f in flags} == agent.flags.to_wire()
    metrics = {m["name"]: m["value"] for m in (await call(rt, {"type": "GET_METRICS", "get_metrics": {}}))[
        "get_metrics"]["metrics"]}
    assert metrics["slave/cpus_total"] == 2 and metrics["slave/executors_running"] + metrics[
        "slave/executors_registering"] == 1
    version = (await call(rt, {"type": "GET_VERSION"}))["get_version"]["version_info"]
    assert version["version"] == VERSION
    got = (await call(rt, {"type": "GET_AGENT"}))["get_agent"]["agent_info"]
    assert got["id"]["value"] == "agent-1" and got["hostname"] == agent.info.hostname
    frameworks = (await call(rt, {"type": "GET_FRAMEWORKS"}))["get_frameworks"]["frameworks"]
    assert [f["framework_info"]["id"]["value"] for f in frameworks] == ["fw-1"]
    executors = (await call(rt, {"type": "GET_EXECUTORS"}))["get_executors"]["executors"]
    assert [e["executor_info"]["executor_id"]["value"] for e in executors] == ["ex-1"]
    tasks = (await call(rt, {"type": "GET_TASKS"}))["get_tasks"]
    listed = [t["task_id"]["value"] for key in ("queued_tasks", "launched_tasks") for t in tasks.get(key, [])]
    assert listed == ["t1"]
    state = (await call(rt, {"type": "GET_STATE"}))["get_state"]
    assert state["get_tasks"] == tasks and state["get_executors"]["executors"] == executors
    containers = (await call(rt, {"type": "GET_CONTAINERS"}))["get_containers"]["containers"]
    assert [c["container_id"]["value"] for c in containers] == [executor.container_id]
    assert await call(rt, {"type": "GET_OPERATIONS"}) == {"type": "GET_OPERATIONS", "get_operations": {}}

    listing = (await call(rt, {"type": "LIST_FILES", "list_files": {"path": str(sandbox)}}))["list_files"]
    names = {Path(i["path"]).name: i for i in listing["file_infos"]}
    assert {"stdout", "stderr"} <= set(names)
    assert names["stdout"]["size"] == (sandbox / "stdout").stat().st_size
    read = (await call(rt, {"type": "READ_FILE", "read_file": {"path": str(sandbox / "stdout"), "offset": 5,
                                                                  "length": 3}}))["read_file"]
    assert base64.b64decode(read["data"]) == b"the" and read["size"] == len("from-the-sandbox\n")
    assert (await post(rt, {"type": "READ_FILE", "read_file": {"path": "/etc/passwd", "offset": 0}},
                       path="/api/v1"))[0] == 403
    assert (await post(rt, {"type": "LIST_FILES", "list_files": {"path": str(sandbox / "nope")}},
                       path="/api/v1"))[0] == 404
    assert (await post(rt, {"type": "READ_FILE", "read_file": {"path": str(sandbox), "offset": 0}},
                       path="/api/v1"))[0] == 400


async def test_agent_logging_level(runtime) -> None:  # type: ignore[no-untyped-def]
    rt = runtime
    assert (await call(rt, {"type": "GET_LOGGING_LEVEL"}))["get_logging_level"]["level"] == 0
    await call(rt, {"type": "SET_LOGGING_LEVEL",
                    "set_logging_level": {"level": 3, "duration": {"nanoseconds": 200_000_000}}})
    assert (await call(rt, {"type": "GET_LOGGING_LEVEL"}))["get_logging_level"]["level"] == 3
    assert logging.getLogger("aiohttp").level == logging.DEBUG  # level 3 reaches the libraries
    deadline = time.monotonic() + 10
    while (await call(rt, {"type": "GET_LOGGING_LEVEL"}))["get_logging_level"]["level"] != 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session:
        async with session.get(rt.url + "/logging/toggle", params={"level": "1", "duration": "1secs"}) as got:
            assert got.status == 200
        async with session.get(rt.url + "/logging/toggle") as got:
            assert await got.text() == "1\n"
        # Back to 0 before the loop ends (its revert timer dies with the test's loop).
        async with session.get(rt.url + "/logging/toggle", params={"level": "0", "duration": "1secs"}) as got:
            assert got.status == 200
    assert logging.getLogger("mezzo").level != logging.DEBUG
