"""Mesos's HTTP conventions that existing tools depend on: a trailing `/` reaches the same
endpoint (master and agent), `/tasks` paging and order, the agent's pid by IP, the agent's
`/files/download` and `/files/debug`, and `/master/state-summary`, `/master/roles`,
`/master/weights`, `/master/slaves`, `/master/frameworks` in Mesos's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from mezzo.api.common import FrameworkID, Source, TaskID, TaskInfo, TaskState, TaskStatus
from mezzo.api.internal import AgentSubscribe
from mezzo.master.records import FrameworkRecord, TaskRecord
from mezzo.resources import Resources
from mezzo.testing.emulated_agent import EmulatedAgent
from mezzo.testing.master_cluster import FakeStream, MasterCluster
from mezzo.testing.processes import eventually
from tests import test_agent_api, test_master_http
from tests.test_master_http import JSON, Running
from tests.test_operator_api import launch_running_task

running = test_master_http.running  # fixtures
runtime = test_agent_api.runtime


async def status_of(r: Running, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    async with r.session.request(method, r.url + path, data=body, headers=JSON if body else None) as got:
        return got.status, await got.text()


async def test_a_trailing_slash_reaches_the_same_master_endpoint(running: Running) -> None:
    r = running
    for path in ("/master/frameworks", "/frameworks", "/master/state", "/state", "/master/slaves",
                 "/master/tasks", "/metrics/snapshot", "/version", "/master/flags", "/master/roles",
                 "/master/state-summary", "/master/weights", "/files/debug"):
        plain, slashed = await status_of(r, "GET", path), await status_of(r, "GET", path + "/")
        assert plain[0] == slashed[0] == 200, path
        if path not in ("/metrics/snapshot", "/master/state", "/state"):  # these carry the time
            assert plain[1] == slashed[1], path
    code, text = await status_of(r, "POST", "/api/v1/", b'{"type":"GET_HEALTH"}')
    assert code == 200 and json.loads(text)["get_health"]["healthy"] is True
    code, text = await status_of(r, "POST", "/master/api/v1/scheduler/", b'{"type":"SUBSCRIBE"}')
    assert code == 400 and "subscribe" in text  # the scheduler API answered, not a 404
    assert (await status_of(r, "GET", "/no/such/path/"))[0] == 404
    assert (await status_of(r, "POST", "/master/state/", b"{}"))[0] == 405


async def test_a_trailing_slash_reaches_the_same_agent_endpoint(runtime) -> None:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        for path in ("/state", "/slave(1)/state", "/metrics/snapshot", "/flags", "/files/debug", "/version"):
            async with session.get(runtime.url + path + "/") as got:
                assert got.status == 200, path
        async with session.post(runtime.url + "/api/v1/", data=b'{"type":"GET_HEALTH"}', headers=JSON) as got:
            assert got.status == 200


def _add_tasks(r: Running, count: int) -> list[str]:
    """Tasks whose *first* status times run opposite to their last ones, and one without."""
    master = r.master
    fw = FrameworkRecord(id="F1", info=master_framework_info(), roles=["*"], registered_time=0.0)
    master.frameworks["F1"] = fw
    ids = []
    for i in range(count):
        tid = f"t{i:03d}"
        task = TaskRecord.create(info=TaskInfo(name=tid, task_id=TaskID(value=tid), agent_id={"value": "A"}),  # type: ignore[arg-type]
                          framework_id="F1", agent_id="A", executor_id=None, role="*", resources=Resources())
        task.statuses = [
            TaskStatus(task_id=TaskID(value=tid), state=TaskState.TASK_RUNNING, source=Source.SOURCE_EXECUTOR,
                       timestamp=1000.0 + i),
            TaskStatus(task_id=TaskID(value=tid), state=TaskState.TASK_RUNNING, source=Source.SOURCE_EXECUTOR,
                       timestamp=5000.0 - i),
        ]
        fw.tasks[tid] = task
        ids.append(tid)
    staging = TaskRecord.create(info=TaskInfo(name="new", task_id=TaskID(value="new"), agent_id={"value": "A"}),  # type: ignore[arg-type]
                         framework_id="F1", agent_id="A", executor_id=None, role="*", resources=Resources())
    fw.tasks["new"] = staging
    return ids


def master_framework_info():  # type: ignore[no-untyped-def]
    from mezzo.api.common import FrameworkInfo

    return FrameworkInfo(user="u", name="f", id=FrameworkID(value="F1"))


async def test_tasks_order_by_first_status_and_limit_minus_one_means_all(running: Running) -> None:
    r = running
    ids = _add_tasks(r, 120)
    newest_first = [*reversed(ids), "new"]
    got = await r.get_json("/master/tasks")
    assert [t["id"] for t in got["tasks"]] == newest_first[:100]  # default limit 100, descending
    got = await r.get_json("/master/tasks?limit=-1")
    assert [t["id"] for t in got["tasks"]] == newest_first  # nothing dropped
    got = await r.get_json("/tasks?limit=-1&order=asc")
    assert [t["id"] for t in got["tasks"]] == ["new", *ids]  # no status first, then oldest
    got = await r.get_json("/tasks?limit=3&offset=2&order=asc")
    assert [t["id"] for t in got["tasks"]] == ids[1:4]
    got = await r.get_json("/tasks?task_id=t005")
    assert [t["id"] for t in got["tasks"]] == ["t005"]
    for query in ("limit=x", "offset=-1"):
        code, text = await status_of(r, "GET", "/master/tasks?" + query)
        assert code == 400 and "\n" not in text.strip()


async def test_agent_pid_uses_the_ip() -> None:
    c = MasterCluster()
    info = c.add_agent(hostname="does-not-resolve.invalid").info
    info.id = None
    # An agent that says its pid (mezzo's agents do) is shown with it.
    result = c.master.agent_subscribe(AgentSubscribe(agent_info=info, pid="slave(1)@10.1.2.3:5051"),
                                      FakeStream())
    assert c.master.agents[result.agent_id].pid == "slave(1)@10.1.2.3:5051"


async def test_an_agent_without_a_pid_is_shown_at_the_ip_it_connected_from(running: Running) -> None:
    agent = EmulatedAgent(running.url, hostname="does-not-resolve.invalid")
    await agent.start()
    try:
        state = await running.get_json("/master/state")
        assert [s["pid"] for s in state["slaves"]] == ["slave(1)@127.0.0.1:5051"]
        assert state["slaves"][0]["hostname"] == "does-not-resolve.invalid"
    finally:
        await agent.stop()


async def test_agent_files_download_and_debug(runtime) -> None:  # type: ignore[no-untyped-def]
    rt = runtime
    test_agent_api.launch_custom(rt, "echo hello-download; sleep 60")
    await test_agent_api.wait_executor_started(rt)
    sandbox: Path = rt.agent.frameworks["fw-1"].executors["ex-1"].sandbox
    await eventually(lambda: (sandbox / "stdout").exists() and (sandbox / "stdout").read_text(),
                     10, "the task's output")
    async with aiohttp.ClientSession() as session:
        async with session.get(rt.url + "/files/download", params={"path": str(sandbox / "stdout")}) as got:
            assert got.status == 200 and await got.read() == b"hello-download\n"
            assert got.headers["Content-Disposition"] == "attachment; filename=stdout"
        async with session.get(rt.url + "/files/download", params={"path": str(sandbox)}) as got:
            assert got.status == 400 and "directory" in await got.text()
        async with session.get(rt.url + "/files/download", params={"path": "/etc/passwd"}) as got:
            assert got.status == 403
        async with session.get(rt.url + "/files/debug") as got:
            # Each sandbox at its own path and at Mesos's virtual path of its executor.
            assert await got.json() == {
                str(sandbox): str(sandbox),
                "/frameworks/fw-1/executors/ex-1/runs/latest": str(sandbox),
            }


async def test_legacy_views_in_mesos_shapes(running: Running) -> None:
    r = running
    agent, fid, resp = await launch_running_task(r)
    try:
        summary = await r.get_json("/master/state-summary")
        assert summary["hostname"] == r.master.info.hostname
        [slave] = summary["slaves"]
        assert slave["id"] == agent.agent_id and slave["TASK_RUNNING"] == 1 and slave["TASK_FINISHED"] == 0
        assert slave["framework_ids"] == [fid]
        [fw] = summary["frameworks"]
        assert (fw["id"], fw["TASK_RUNNING"], fw["slave_ids"]) == (fid, 1, [agent.agent_id])
        assert fw["used_resources"]["cpus"] == 0.5 and "tasks" not in fw

        await r.post("/api/v1", {"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "batch", "weight": 3.0}]}})
        assert await r.get_json("/master/weights") == [{"weight": 3.0, "role": "batch"}]
        roles = {x["name"]: x for x in (await r.get_json("/master/roles"))["roles"]}
        assert set(roles) == {"*", "batch"}
        star = roles["*"]
        assert star["weight"] == 1.0 and star["frameworks"] == [fid]
        assert star["allocated"] == {"cpus": 0.5, "mem": 64.0}
        assert star["resources"]["cpus"] >= 0.5 and set(star["quota"]) == {"role", "guarantee", "limit", "consumed"}
        assert roles["batch"]["weight"] == 3.0 and roles["batch"]["frameworks"] == []

        slaves = await r.get_json("/master/slaves")
        [s] = slaves["slaves"]
        assert s["pid"] == "slave(1)@127.0.0.1:5051"
        assert {x["name"] for x in s["resources_full"]} >= {"cpus", "mem", "ports"}
        assert {x["name"]: x["scalar"]["value"] for x in s["used_resources_full"]} == {"cpus": 0.5, "mem": 64}
        assert (await r.get_json(f"/master/slaves?slave_id={agent.agent_id}"))["slaves"] == [s]
        assert (await r.get_json("/master/slaves?slave_id=nope"))["slaves"] == []
        frameworks = await r.get_json("/master/frameworks")
        assert set(frameworks) == {"frameworks", "completed_frameworks", "unregistered_frameworks"}
        assert [f["id"] for f in frameworks["frameworks"]] == [fid]
        assert (await r.get_json("/master/frameworks?framework_id=nope"))["frameworks"] == []
    finally:
        resp.close()
        await agent.stop()
