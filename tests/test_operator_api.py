"""Every read call of the master's operator API answers with the cluster's real content
(checked against the core's state), logging levels with their duration, the master's files,
and the clear 501 of write calls that belong to later work."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path
from urllib.parse import quote

from mezzo import __version__
from mezzo.testing.emulated_agent import EmulatedAgent
from tests import test_master_http
from tests.test_master_http import JSON, Running, open_subscription

running = test_master_http.running  # the master's HTTP shell on loopback (fixture)


async def call(r: Running, body: dict, status: int = 200) -> dict:
    code, text, _ = await r.post("/api/v1", body)
    assert code == status, text
    return json.loads(text) if text else {}


async def _next(resp, buf: bytearray, kind: str) -> dict:
    while True:
        while b"\n" in buf:
            head, _, rest = bytes(buf).partition(b"\n")
            if len(rest) < int(head):
                break
            del buf[: len(head) + 1 + int(head)]
            event = json.loads(rest[: int(head)])
            if event["type"] == kind:
                return event
        buf += await asyncio.wait_for(resp.content.readany(), 10)


async def launch_running_task(r: Running) -> tuple[EmulatedAgent, str, object]:
    """An emulated agent, a framework, and its task `t1` TASK_RUNNING (acknowledged)."""
    agent = EmulatedAgent(r.url, hostname="a1")
    await agent.start()
    resp = await open_subscription(r)
    stream_id = resp.headers["Mesos-Stream-Id"]
    buf = bytearray()
    fid = (await _next(resp, buf, "SUBSCRIBED"))["subscribed"]["framework_id"]
    offer = (await _next(resp, buf, "OFFERS"))["offers"]["offers"][0]
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]}
    accept = {"type": "ACCEPT", "framework_id": fid, "accept": {
        "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}
    hdr = {**JSON, "Mesos-Stream-Id": stream_id}
    assert (await r.post("/api/v1/scheduler", accept, hdr))[0] == 202
    status = (await _next(resp, buf, "UPDATE"))["update"]["status"]
    ack = {"type": "ACKNOWLEDGE", "framework_id": fid, "acknowledge": {
        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}}
    assert (await r.post("/api/v1/scheduler", ack, hdr))[0] == 202
    return agent, fid["value"], resp


async def test_read_calls_answer_the_cluster_state(running: Running) -> None:
    r = running
    agent, fid, resp = await launch_running_task(r)
    try:
        master = r.master
        assert await call(r, {"type": "GET_HEALTH"}) == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
        flags = (await call(r, {"type": "GET_FLAGS"}))["get_flags"]["flags"]
        assert {f["name"]: f["value"] for f in flags} == r.process.server.flags
        version = (await call(r, {"type": "GET_VERSION"}))["get_version"]["version_info"]
        assert version["version"] == __version__

        metrics = (await call(r, {"type": "GET_METRICS", "get_metrics": {}}))["get_metrics"]["metrics"]
        values = {m["name"]: m.get("value", 0.0) for m in metrics}
        snapshot = await r.get_json("/metrics/snapshot")
        assert set(values) == set(snapshot)
        assert values["master/tasks_running"] == 1 and values["master/slaves_active"] == 1
        assert values["master/cpus_used"] == 0.5

        agents = (await call(r, {"type": "GET_AGENTS"}))["get_agents"]["agents"]
        assert [a["agent_info"]["id"]["value"] for a in agents] == [agent.agent_id] == list(master.agents)
        [entry] = agents
        assert entry["active"] is True and entry["pid"] == master.agents[agent.agent_id].pid
        assert {x["name"]: x["scalar"]["value"] for x in entry["allocated_resources"]} == {"cpus": 0.5, "mem": 64}

        frameworks = (await call(r, {"type": "GET_FRAMEWORKS"}))["get_frameworks"]
        assert [f["framework_info"]["id"]["value"] for f in frameworks["frameworks"]] == [fid]
        assert frameworks["frameworks"][0]["connected"] is True

        tasks = (await call(r, {"type": "GET_TASKS"}))["get_tasks"]
        assert [(t["task_id"]["value"], t["state"], t["framework_id"]["value"]) for t in tasks["tasks"]] == [
            ("t1", "TASK_RUNNING", fid)]
        assert [s["state"] for s in tasks["tasks"][0]["statuses"]] == ["TASK_RUNNING"]

        executors = (await call(r, {"type": "GET_EXECUTORS"}))["get_executors"]
        expected = sorted(e for fw in master.frameworks.values() for per in fw.executors.values() for e in per)
        assert sorted(e["executor_info"]["executor_id"]["value"] for e in executors.get("executors", [])) == expected

        state = (await call(r, {"type": "GET_STATE"}))["get_state"]
        assert state["get_tasks"] == tasks and state["get_frameworks"] == frameworks
        assert state["get_agents"]["agents"] == agents

        roles = (await call(r, {"type": "GET_ROLES"}))["get_roles"]["roles"]
        assert [(x["name"], [f["value"] for f in x["frameworks"]]) for x in roles] == [("*", [fid])]
        assert {x["name"]: x["scalar"]["value"] for x in roles[0]["resources"]} == {"cpus": 0.5, "mem": 64}

        await call(r, {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 2.5}]}})
        weights = (await call(r, {"type": "GET_WEIGHTS"}))["get_weights"]["weight_infos"]
        assert weights == [{"role": "web", "weight": 2.5}]

        got = (await call(r, {"type": "GET_MASTER"}))["get_master"]
        assert got["master_info"]["id"] == master.info.id and got["master_info"]["pid"] == master.info.pid
        assert got["start_time"] == master.start_time

        # No reservation or volume exists on this master, so there is no operation to list.
        assert await call(r, {"type": "GET_OPERATIONS"}) == {"type": "GET_OPERATIONS", "get_operations": {}}  # none yet
    finally:
        resp.close()
        await agent.stop()


async def test_logging_level_is_set_for_a_duration(running: Running) -> None:
    r = running
    mezzo_logger = logging.getLogger("mezzo")
    before = mezzo_logger.level
    assert await call(r, {"type": "GET_LOGGING_LEVEL"}) == {
        "type": "GET_LOGGING_LEVEL", "get_logging_level": {"level": 0}}
    await call(r, {"type": "SET_LOGGING_LEVEL",
                   "set_logging_level": {"level": 1, "duration": {"nanoseconds": 300_000_000}}})
    assert (await call(r, {"type": "GET_LOGGING_LEVEL"}))["get_logging_level"]["level"] == 1
    assert mezzo_logger.level == logging.DEBUG
    deadline = time.monotonic() + 10
    while (await call(r, {"type": "GET_LOGGING_LEVEL"}))["get_logging_level"]["level"] != 0:
        assert time.monotonic() < deadline, "the level never went back"
        await asyncio.sleep(0.05)
    assert mezzo_logger.level == before

    async with r.session.get(r.url + "/logging/toggle") as got:
        assert (got.status, await got.text()) == (200, "0\n")
    async with r.session.get(r.url + "/logging/toggle?level=2&duration=1mins") as got:
        assert got.status == 200
    async with r.session.get(r.url + "/logging/toggle") as got:
        assert await got.text() == "2\n"
    for query, words in (("level=1", "duration"), ("duration=1secs", "level"),
                         ("level=x&duration=1secs", "number"), ("level=-1&duration=1secs", "Invalid level"),
                         ("level=1&duration=soon", "duration"),
                         # Mesos's bounds: a uint32 level, a duration of at most int64 nanoseconds
                         ("level=4294967296&duration=1secs", "Invalid level"),
                         ("level=1&duration=1e400secs", "Invalid duration"),
                         ("level=1&duration=20000weeks", "Invalid duration")):
        async with r.session.get(r.url + "/logging/toggle?" + query) as got:
            assert got.status == 400 and words in await got.text(), query
    r.process.server.operator_api.logging.set(0, 0)
    missing = await r.post("/api/v1", {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1}})
    assert missing[0] == 400 and "duration" in missing[1]


async def test_files_are_listed_read_and_downloaded(running: Running, tmp_path: Path) -> None:
    r = running
    files = r.process.server.operator_api.files
    log = tmp_path / "mezzo-master.INFO"
    log.write_bytes(b"line one\nline two\n")
    sandbox = tmp_path / "dir"
    (sandbox / "sub").mkdir(parents=True)
    (sandbox / "sub" / "stdout").write_text("hello")
    (sandbox / "escape").symlink_to("/etc")
    files.attach(log, "/master/log")
    files.attach(sandbox, "/sandbox")

    listed = (await call(r, {"type": "LIST_FILES", "list_files": {"path": "/master/log"}}))["list_files"]
    [info] = listed["file_infos"]
    assert (info["path"], info["size"], info["nlink"]) == ("/master/log", 18, 1)
    assert info["mtime"]["nanoseconds"] == log.stat().st_mtime_ns and info["mode"] == log.stat().st_mode
    listed = (await call(r, {"type": "LIST_FILES", "list_files": {"path": "/sandbox/"}}))["list_files"]
    assert [i["path"] for i in listed["file_infos"]] == ["/sandbox/escape", "/sandbox/sub"]

    read = (await call(r, {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 5, "length": 3}}))
    assert read["read_file"]["size"] == 18 and base64.b64decode(read["read_file"]["data"]) == b"one"
    read = (await call(r, {"type": "READ_FILE", "read_file": {"path": "/sandbox/sub/stdout", "offset": 0}}))
    assert base64.b64decode(read["read_file"]["data"]) == b"hello"
    assert (await r.post("/api/v1", {"type": "READ_FILE", "read_file": {"path": "/nope", "offset": 0}}))[0] == 404
    assert (await r.post("/api/v1", {"type": "LIST_FILES", "list_files": {"path": "/sandbox/escape/passwd"}}))[0] == 403
    assert (await r.post("/api/v1", {"type": "READ_FILE", "read_file": {"path": "/sandbox/sub", "offset": 0}}))[0] == 400

    assert await r.get_json("/files/read?path=/master/log&offset=0&length=4") == {"data": "line", "offset": 0}
    assert await r.get_json("/files/read.json?path=/master/log") == {"data": "", "offset": 18}
    browse = await r.get_json("/files/browse?path=/sandbox/sub")
    assert [(e["path"], e["size"], e["mode"][0]) for e in browse] == [("/sandbox/sub/stdout", 5, "-")]
    async with r.session.get(r.url + "/files/download?path=/sandbox/sub/stdout") as got:
        assert got.status == 200 and await got.read() == b"hello"
        assert got.headers["Content-Disposition"] == "attachment; filename=stdout"
    assert await r.get_json("/files/debug") == {"/master/log": str(log), "/sandbox": str(sandbox)}
    for path, status in (("/files/read?path=/sandbox/sub&offset=0", 400), ("/files/browse", 400),
                         ("/files/read?path=/master/log&offset=x", 400),
                         ("/files/download?path=/sandbox/escape/hostname", 403),
                         ("/files/download?path=/sandbox", 400), ("/files/browse?path=/gone", 404)):
        async with r.session.get(r.url + path) as got:
            assert got.status == status, path
            assert "\n" not in (await got.text()).strip()


async def test_an_over_long_or_nul_path_below_an_attached_file_is_400(running: Running, tmp_path: Path) -> None:
    """A name the OS refuses (ENAMETOOLONG) below `/master/log` was a 500: the path was
    resolved without asking the OS, and only the existence check asked it."""
    r = running
    log = tmp_path / "mezzo-master.INFO"
    log.write_bytes(b"line one\n")
    r.process.server.operator_api.files.attach(log, "/master/log")
    for path in ("/master/log/" + "n" * 5000, "/master/log/" + "n" * 256, "/master/log/" + "n/" * 2100,
                 "/master/log\0x"):
        for query in (f"/files/read?path={quote(path)}&offset=0", f"/files/browse?path={quote(path)}",
                      f"/files/download?path={quote(path)}"):
            async with r.session.get(r.url + query) as got:
                text = await got.text()
                assert got.status == 400 and "\n" not in text.strip(), (query[:40], got.status, text)
        for body in ({"type": "LIST_FILES", "list_files": {"path": path}},
                     {"type": "READ_FILE", "read_file": {"path": path, "offset": 0}}):
            status, text, _ = await r.post("/api/v1", body)
            assert status == 400 and "\n" not in text.strip(), (body["type"], status, text)
    # A name at NAME_MAX is asked of the OS: below a file, there is nothing.
    async with r.session.get(r.url + "/files/read?path=/master/log/" + "n" * 255 + "&offset=0") as got:
        assert got.status == 404


async def test_download_of_an_attached_file_with_a_newline_in_its_name(running: Running, tmp_path: Path) -> None:
    """The name went raw into Content-Disposition, which aiohttp refuses (dropped connection)."""
    r = running
    (tmp_path / "a\nb").write_text("data")
    r.process.server.operator_api.files.attach(tmp_path, "/odd")
    async with r.session.get(r.url + "/files/download?path=" + quote("/odd/a\nb")) as got:
        assert got.status == 200 and await got.text() == "data"
        assert got.headers["Content-Disposition"] == "attachment; filename=\"a_b\"; filename*=UTF-8''a%0Ab"


async def test_write_calls_of_later_work_answer_501_naming_the_feature(running: Running) -> None:
    for body, feature in (
        ({"type": "START_MAINTENANCE", "start_maintenance": {"machines": []}}, "maintenance"),
        ({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "a"}}}, "draining"),
    ):
        code, text, _ = await running.post("/api/v1", body)
        assert code == 501 and feature in text and "\n" not in text.strip(), body


async def test_web_ui_assets_and_agent_proxy_errors(running: Running) -> None:
    r = running
    async with r.session.get(r.url + "/") as got:
        page = await got.text()
        assert got.status == 200 and got.content_type == "text/html"
        assert '<script src="/static/app.js">' in page
    for asset, kind in (("app.js", "javascript"), ("chart.js", "javascript"), ("style.css", "text/css")):
        async with r.session.get(r.url + "/static/" + asset) as got:
            assert got.status == 200 and kind in got.content_type and await got.read()
    async with r.session.get(r.url + "/static/nope.js") as got:
        assert got.status == 404
    async with r.session.get(r.url + "/agent/no-such-agent/state") as got:
        assert got.status == 404 and "not registered" in await got.text()
    # A registered agent that does not serve HTTP (the emulated one has no server): 502.
    agent = EmulatedAgent(r.url, hostname="127.0.0.1")
    agent.info.port = 9  # discard: nothing listens there
    await agent.start()
    try:
        async with r.session.get(f"{r.url}/agent/{agent.agent_id}/files/read?path=/x") as got:
            assert got.status == 502 and "did not answer" in await got.text()
    finally:
        await agent.stop()
