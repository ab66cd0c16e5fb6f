"""`/master/state` is streamed in pieces (views.state_pieces) with the event loop free between
them: the document is the same as `views.state_json`, also when every piece goes out in its own
slice, and `jsonp` still wraps it."""

from __future__ import annotations

import json

import pytest
from test_master_http import Running, running  # noqa: F401  (the fixture)

from mezzo.master import http as master_http
from mezzo.master import views
from mezzo.testing.emulated_agent import EmulatedAgent


async def _agents(running: Running, count: int) -> list[EmulatedAgent]:  # noqa: F811
    agents = [EmulatedAgent(running.url, hostname=f"s{i}") for i in range(count)]
    for agent in agents:
        await agent.start()
    return agents


async def _text(running: Running, path: str) -> str:  # noqa: F811
    async with running.session.get(running.url + path) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
        return await resp.text()


def test_pieces_make_the_state_document() -> None:
    from mezzo.master.flags import MasterFlags
    from mezzo.master.main import build_master

    process = build_master(MasterFlags.parse({"registry": "in_memory", "port": "0"}))
    process.master.recover(process.registrar.recover())
    flags = {"port": "0"}
    joined = b"".join(views.state_pieces(process.master, flags))
    assert json.loads(joined) == json.loads(json.dumps(views.state_json(process.master, flags)))


@pytest.mark.parametrize("slice_seconds", [0.01, 0.0])
async def test_streamed_state_equals_the_document(
    running: Running, monkeypatch: pytest.MonkeyPatch, slice_seconds: float  # noqa: F811
) -> None:
    monkeypatch.setattr(master_http, "STATE_SLICE_SECONDS", slice_seconds)  # 0: one write a piece
    monkeypatch.setattr(master_http, "STATE_SLICE_MAX_SECONDS", slice_seconds)
    agents = await _agents(running, 5)
    try:
        served = json.loads(await _text(running, "/master/state"))
        expected = json.loads(json.dumps(views.state_json(running.master, running.process.server.flags)))
        assert len(served["slaves"]) == 5
        assert served == expected
        wrapped = await _text(running, "/master/state?jsonp=cb")
        assert wrapped.startswith("cb(") and wrapped.endswith(");")
        assert json.loads(wrapped[3:-2]) == expected
    finally:
        for agent in agents:
            await agent.stop()


# ---------------------------------------------------------------------------- operator API


def _busy_cluster() -> object:
    """A master core with running, finished and unreachable tasks, executors, two frameworks
    (one torn down) and an agent that left: every list of the GET_* answers has entries."""
    import msgspec

    from mezzo.api.common import CommandInfo, ExecutorID, ExecutorInfo
    from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info

    cluster = MasterCluster()
    agents = [cluster.add_agent("cpus:4;mem:4096;disk:1000") for _ in range(3)]
    scheds = [cluster.add_scheduler(framework_info(f"fw{i}", capabilities=["PARTITION_AWARE"]))
              for i in range(2)]
    n = 0
    for sched in scheds:
        cluster.allocate()
        for offer in sched.next_event("OFFERS").offers.offers:
            tasks = [task_info(f"t{n + i}", offer) for i in range(3)]
            # One task with a custom executor, so that GET_EXECUTORS has an entry.
            tasks[2] = msgspec.structs.replace(tasks[2], command=None, executor=ExecutorInfo(
                executor_id=ExecutorID(value=f"e{n}"), command=CommandInfo(value="run-executor")))
            sched.launch(offer, tasks)
            n += 3
    runs = {id(agent): agent.all_of("RUN_TASK") for agent in agents}
    for agent in agents:
        for run in runs[id(agent)]:
            fid = run.run_task.framework_info.id.value
            agent.update(run.run_task.task.task_id.value, "TASK_RUNNING", framework_id=fid)
    for run in runs[id(agents[0])][:2]:  # two tasks finish
        fid = run.run_task.framework_info.id.value
        agents[0].update(run.run_task.task.task_id.value, "TASK_FINISHED", framework_id=fid)
    for sched in scheds:
        for event in sched.all_of("UPDATE"):
            sched.acknowledge(event.update.status)  # a terminal task completes once acknowledged
    cluster.master.mark_unreachable(cluster.master.agents[agents[2].agent_id])
    cluster.scripted_agents = agents  # type: ignore[attr-defined]
    return cluster


@pytest.mark.parametrize("call_type", sorted(views.STREAMED_CALLS))
def test_operator_pieces_are_the_encoded_answer(call_type: object) -> None:
    from mezzo.api import operator as op
    from mezzo.api.codec import encode

    cluster = _busy_cluster()
    master = cluster.master  # type: ignore[attr-defined]
    build = {
        op.CallType.GET_STATE: views.get_state, op.CallType.GET_TASKS: views.get_tasks,
        op.CallType.GET_AGENTS: views.get_agents, op.CallType.GET_FRAMEWORKS: views.get_frameworks,
        op.CallType.GET_EXECUTORS: views.get_executors,
    }[call_type]  # type: ignore[index]
    answer = op.Response(type=call_type, **{call_type.value.lower(): build(master)})  # type: ignore[attr-defined]
    joined = b"".join(views.operator_pieces(master, call_type))  # type: ignore[arg-type]
    assert joined == encode(answer)
    if call_type == op.CallType.GET_STATE:
        state = json.loads(joined)["get_state"]
        assert state["get_tasks"]["tasks"] and state["get_tasks"]["completed_tasks"]
        assert state["get_tasks"].get("unreachable_tasks")
        assert state["get_executors"]["executors"] and state["get_agents"]["agents"]


def test_executor_entries_are_made_as_their_pieces_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET_EXECUTORS' entries are made one per piece, not all before the first, and from the
    executors' kept JSON without decoding it: after a failover every command executor is in
    the master (72,000 at 9,000 agents), and building their entries in one turn held the loop
    for a fifth of a second."""
    from mezzo.api import operator as op
    from mezzo.master import records

    cluster = _busy_cluster()
    master = cluster.master  # type: ignore[attr-defined]
    made = []
    real = views._executor_entry_bytes

    def counted(item: tuple[str, records.ExecutorRecord]) -> bytes:
        made.append(item)
        return real(item)

    def no_decoding(_record: object) -> object:
        raise AssertionError("an executor's info was decoded")

    monkeypatch.setattr(views, "_executor_entry_bytes", counted)
    monkeypatch.setattr(records.ExecutorRecord, "info", property(no_decoding))
    total = sum(len(per_agent) for fw in master.frameworks.values() for per_agent in fw.executors.values())
    assert total >= 2
    pieces = views.operator_pieces(master, op.CallType.GET_EXECUTORS)
    for piece in pieces:
        if b'"executors":[' in piece:
            break
    assert made == []
    next(pieces)  # the first entry's piece
    assert len(made) == 1
    next(pieces)  # the second's
    assert len(made) == 2


def test_executors_keep_their_info_as_json_outside_the_collector() -> None:
    """A kept executor is one object the garbage collector does not track, its info the JSON
    it encodes to, decoded equal on demand."""
    import gc

    from mezzo.api.codec import encode

    master = _busy_cluster().master  # type: ignore[attr-defined]
    kept = [e for fw in master.frameworks.values() for per in fw.executors.values() for e in per.values()]
    assert kept
    for e in kept:
        assert not gc.is_tracked(e)
        assert encode(e.info) == e.info_json


@pytest.mark.parametrize("command, user", [
    ({"value": "run", "user": "bob"}, "bob"), ({"value": "run"}, None), (None, None),
])
def test_an_executors_command_user_is_read_alone(command: dict[str, str] | None, user: str | None) -> None:
    """What authorization's views ask of each executor, without decoding its whole info."""
    from mezzo.api.codec import decode
    from mezzo.api.common import ExecutorInfo
    from mezzo.master.records import ExecutorRecord
    from mezzo.resources import Resources

    body = {"executor_id": {"value": "e"}, "resources": [], **({"command": command} if command else {})}
    info = decode(json.dumps(body), ExecutorInfo)
    record = ExecutorRecord.of(info, Resources())
    assert record.command_user() == user == (info.command.user if info.command else None)


def test_operator_pieces_of_an_empty_master() -> None:
    from mezzo.api import operator as op
    from mezzo.api.codec import encode
    from mezzo.testing.master_cluster import MasterCluster

    master = MasterCluster().master
    for call_type in views.STREAMED_CALLS:
        key = call_type.value.lower()
        expected = encode(op.Response(type=call_type, **{key: getattr(views, key)(master)}))
        assert b"".join(views.operator_pieces(master, call_type)) == expected


@pytest.mark.parametrize("slice_seconds", [0.01, 0.0])
async def test_streamed_get_state_over_http(
    running: Running, monkeypatch: pytest.MonkeyPatch, slice_seconds: float  # noqa: F811
) -> None:
    from mezzo.api import operator as op
    from mezzo.api.codec import encode

    monkeypatch.setattr(master_http, "STATE_SLICE_SECONDS", slice_seconds)
    monkeypatch.setattr(master_http, "STATE_SLICE_MAX_SECONDS", slice_seconds)
    agents = await _agents(running, 4)
    try:
        for call_type in ("GET_STATE", "GET_AGENTS", "GET_TASKS"):
            async with running.session.post(
                running.url + "/api/v1", json={"type": call_type},
                headers={"Accept": "application/json"},
            ) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
                body = await resp.read()
            t = op.CallType(call_type)
            key = call_type.lower()
            expected = encode(op.Response(type=t, **{key: getattr(views, key)(running.master)}))
            assert body == expected
    finally:
        for agent in agents:
            await agent.stop()


def test_state_pieces_with_tasks_make_the_state_document() -> None:
    master = _busy_cluster().master  # type: ignore[attr-defined]
    flags = {"port": "0"}
    pieces = list(views.state_pieces(master, flags))
    document = json.loads(b"".join(pieces))
    assert document == json.loads(json.dumps(views.state_json(master, flags)))
    tasks = sum(len(fw["tasks"]) + len(fw["completed_tasks"]) + len(fw["unreachable_tasks"])
                for fw in document["frameworks"])
    assert tasks >= 6 and len(pieces) > 10  # in pieces


@pytest.mark.parametrize("per_piece", [1, 3])
def test_entries_split_over_pieces_make_the_same_bytes(monkeypatch: pytest.MonkeyPatch, per_piece: int) -> None:
    """Agents and tasks are rendered `AGENTS_PER_PIECE` / `TASKS_PER_PIECE` at a time, spliced
    into one array: whatever the split, the bytes of the whole document."""
    import msgspec

    monkeypatch.setattr(views, "AGENTS_PER_PIECE", per_piece)
    monkeypatch.setattr(views, "TASKS_PER_PIECE", per_piece)
    master = _busy_cluster().master  # type: ignore[attr-defined]
    pieces = list(views.state_pieces(master, {}))
    assert b"".join(pieces) == msgspec.json.encode(views.state_json(master, {}))
    fw = max(master.frameworks.values(), key=lambda f: len(f.tasks))
    assert len(fw.tasks) > 3 and len(master.agents) > 1  # split at 1 and at 3


# ------------------------------------------------------- task entries encoded from the record


def _rich_tasks() -> list[object]:
    """Task records with every field a task entry copies: labels, discovery, container,
    health and other checks, a kill policy, limits, data, non-ASCII and escaped text, an
    executor, statuses with health, container status, data, labels and timestamps of every
    form, a reliable update pending, a user, no resources."""
    from mezzo.api.codec import decode
    from mezzo.api.common import TaskInfo, TaskState, TaskStatus
    from mezzo.master.records import TaskRecord
    from mezzo.resources import Resources

    def info(task_id: str, **extra: object) -> TaskInfo:
        return decode(json.dumps({"name": "näme \"q\" \\ \u2603", "task_id": {"value": task_id},
                                  "agent_id": {"value": "a1"}, **extra}), TaskInfo)

    def status(task_id: str, state: str, **extra: object) -> TaskStatus:
        return decode(json.dumps({"task_id": {"value": task_id}, "state": state, **extra}), TaskStatus)

    rich = {
        "command": {"shell": True, "value": "echo \u00e9 </script>"},
        "labels": {"labels": [{"key": "k", "value": "v\u2028"}]},
        "discovery": {"visibility": "FRAMEWORK", "name": "svc", "ports": {"ports": [{"number": 80}]}},
        "container": {"type": "MESOS", "hostname": "h", "network_infos": [{"name": "n"}]},
        "health_check": {"type": "TCP", "tcp": {"port": 8080}},
        "check": {"type": "HTTP", "http": {"port": 80, "path": "/ok"}},
        "kill_policy": {"grace_period": {"nanoseconds": 5000000000}},
        "limits": {"cpus": {"value": 2.5}},
        "data": "ZGF0YQ==",
    }
    cpus = Resources.parse("cpus:0.5;mem:64;ports:[31000-31001]").allocate("web")
    tasks = [
        TaskRecord.create(info("plain", command={"value": "sleep 1"}), "fw", "a1", None, "*",
                   Resources.parse("cpus:1;mem:32").allocate("*"),
                   statuses=[status("plain", "TASK_RUNNING", timestamp=1733456789.123456,
                                    uuid="AAECAw==", source="SOURCE_EXECUTOR")]),
        TaskRecord.create(info("rich", **rich), "fw", "a1", "exec-1", "web", cpus,
                   state=TaskState.TASK_RUNNING,
                   statuses=[
                       status("rich", "TASK_STARTING", timestamp=5.0, data="eA==", message="ü\n"),
                       status("rich", "TASK_RUNNING", timestamp=1e-7, healthy=True,
                              container_status={"executor_pid": 42,
                                                "network_infos": [{"name": "n"}]},
                              labels={"labels": [{"key": "a"}]}, check_status={"type": "HTTP"}),
                       status("rich", "TASK_RUNNING", healthy=False, uuid="/w=="),
                   ],
                   status_update_state=TaskState.TASK_RUNNING, status_update_uuid=b"\xff\x00",
                   user="ünix"),
        TaskRecord.create(info("bare"), "fw", "a1", "", "*", Resources(), user=""),
    ]
    tasks[2].state = TaskState.TASK_LOST
    return tasks


def test_task_entries_are_the_bytes_of_the_reference_shapes() -> None:
    import msgspec

    from mezzo.api.codec import encode
    from mezzo.api.common import FrameworkID

    fid = FrameworkID(value="fw")
    for task in _rich_tasks():
        assert views._task_json_bytes(task) == msgspec.json.encode(views._task_json(task))  # type: ignore[arg-type]
        item = (fid, task)
        assert views._task_wire_bytes(item) == encode(views._task_wire(item))  # type: ignore[arg-type]


def test_completed_task_entries_are_the_bytes_of_the_reference_shapes() -> None:
    """A completed task is kept as what the documents show of it (`views.completed_task`):
    its entries are the bytes its record's would be, its statuses and ids those of the
    record, and tasks of one resource shape hold the same JSON of it."""
    import msgspec

    from mezzo.api.codec import encode
    from mezzo.api.common import FrameworkID
    from mezzo.master.completed import CompletedTask

    fid = FrameworkID(value="fw")
    records = _rich_tasks()
    for record in records:
        task = views.completed_task(record)  # type: ignore[arg-type]
        assert isinstance(task, CompletedTask)
        reference = views._task_json(record)  # type: ignore[arg-type]
        assert views._completed_json_bytes(task) == msgspec.json.encode(reference)
        assert views._task_json(task) == reference
        wire = record.to_wire(fid)  # type: ignore[attr-defined]
        assert task.wire_entry() == encode(wire) == views._completed_wire_bytes((fid, task))
        assert views._completed_wire((fid, task)) == wire
        assert task.statuses == record.statuses  # type: ignore[attr-defined]
        assert task.first_status() == record.first_status()  # type: ignore[attr-defined]
        assert task.latest_status() == record.latest_status()  # type: ignore[attr-defined]
        for name in ("task_id", "framework_id", "agent_id", "state", "user"):
            assert getattr(task, name) == getattr(record, name)
    assert views.completed_task(records[2]).wire_resources == b""  # type: ignore[arg-type]  # none
    twin = _rich_tasks()[1]
    assert (views.completed_task(twin).wire_resources  # type: ignore[arg-type]
            is views.completed_task(records[1]).wire_resources)  # type: ignore[arg-type]


def test_joined_pieces_are_the_bytes_of_the_whole_documents() -> None:
    import msgspec

    from mezzo.api import operator as op
    from mezzo.api.codec import encode

    master = _busy_cluster().master  # type: ignore[attr-defined]
    flags = {"port": "0"}
    assert b"".join(views.state_pieces(master, flags)) == msgspec.json.encode(views.state_json(master, flags))
    answer = op.Response(type=op.CallType.GET_STATE, get_state=views.get_state(master))
    assert b"".join(views.operator_pieces(master, op.CallType.GET_STATE)) == encode(answer)


def test_state_walks_the_executors_a_framework_per_piece() -> None:
    """/master/state's agents need the executors' resources: they are gathered a framework
    at a time, an empty piece after each (where the shell may end a slice), before the
    document's first byte; what they add to the agents' used resources is the same."""
    import msgspec

    master = _busy_cluster().master  # type: ignore[attr-defined]
    pieces = list(views.state_pieces(master, {}))
    frameworks = len(master.frameworks)
    assert frameworks >= 1
    assert pieces[:frameworks] == [b""] * frameworks and pieces[frameworks].startswith(b"{")
    document = json.loads(b"".join(pieces))
    assert document == json.loads(msgspec.json.encode(views.state_json(master, {})))
    assert any(fw.executors for fw in master.frameworks.values())  # there was something to walk


def test_a_task_changing_state_shows_in_the_next_documents() -> None:
    """Nothing of a task's entry is kept between documents: a new state and status show in
    the next `/master/state` and GET_STATE."""
    from mezzo.api import operator as op

    cluster = _busy_cluster()
    master = cluster.master  # type: ignore[attr-defined]
    fw = next(f for f in master.frameworks.values() if f.tasks)
    task = next(t for t in fw.tasks.values() if t.state == "TASK_RUNNING")

    def entries() -> tuple[dict[str, object], dict[str, object]]:
        state = json.loads(b"".join(views.state_pieces(master, {})))
        legacy = next(t for f in state["frameworks"] for t in f["tasks"] if t["id"] == task.task_id)
        answer = json.loads(b"".join(views.operator_pieces(master, op.CallType.GET_STATE)))
        wire = next(t for t in answer["get_state"]["get_tasks"]["tasks"]
                    if t["task_id"]["value"] == task.task_id)
        return legacy, wire

    legacy, wire = entries()
    assert legacy["state"] == wire["state"] == "TASK_RUNNING"
    agent = next(a for a in cluster.scripted_agents if a.agent_id == task.agent_id)  # type: ignore[attr-defined]
    agent.update(task.task_id, "TASK_KILLING", framework_id=fw.id)
    legacy, wire = entries()
    assert legacy["state"] == wire["state"] == "TASK_KILLING"
    assert [s["state"] for s in legacy["statuses"]][-1] == "TASK_KILLING"  # type: ignore[index]
    assert [s["state"] for s in wire["statuses"]][-1] == "TASK_KILLING"  # type: ignore[index]


def test_agent_entries_follow_their_agent() -> None:
    """What the streamed documents keep of an agent (its total's JSON, the JSON of each mix of
    task shapes in use) follows the agent: a new total (a reservation), a task that ends and an
    agent that goes show in the next documents, byte for byte as the whole documents."""
    import msgspec

    from mezzo.api import operator as op
    from mezzo.api.codec import encode
    from mezzo.resources import Resources

    cluster = _busy_cluster()
    master = cluster.master  # type: ignore[attr-defined]

    def same() -> dict[str, object]:
        joined = b"".join(views.state_pieces(master, {}))
        assert joined == msgspec.json.encode(views.state_json(master, {}))
        answer = op.Response(type=op.CallType.GET_STATE, get_state=views.get_state(master))
        assert b"".join(views.operator_pieces(master, op.CallType.GET_STATE)) == encode(answer)
        return {a["id"]: a for a in json.loads(joined)["slaves"]}

    before = same()
    agent = next(a for a in master.agents.values() if a.tasks)
    agent.total = Resources.parse("cpus:2;mem:512;cpus(web):1;disk(web):10")
    used = before[agent.id]["used_resources"]
    task = next(iter(agent.tasks.values()))
    scripted = next(a for a in cluster.scripted_agents if a.agent_id == agent.id)  # type: ignore[attr-defined]
    scripted.update(task.task_id, "TASK_FINISHED", framework_id=task.framework_id)
    after = same()
    assert after[agent.id]["resources"]["cpus"] == 3.0  # type: ignore[index]
    assert after[agent.id]["reserved_resources"] == {"web": {"cpus": 1.0, "gpus": 0.0, "mem": 0.0, "disk": 10.0}}
    assert after[agent.id]["used_resources"]["cpus"] < used["cpus"]  # type: ignore[index]
    # What else an agent's entry shows, kept between documents until it changes.
    agent.active = False
    assert same()[agent.id]["active"] is False
    agent.reregistered_time = 1234.5
    agent.version = "1.2.3"
    agent.pid = "slave(1)@10.0.0.1:5051"
    agent.capabilities = ("MULTI_ROLE",)
    entry = same()[agent.id]
    assert (entry["reregistered_time"], entry["version"], entry["pid"], entry["capabilities"]) == (
        1234.5, "1.2.3", "slave(1)@10.0.0.1:5051", ["MULTI_ROLE"])
    agent.info = msgspec.structs.replace(agent.info, hostname="renamed", port=5052)
    entry = same()[agent.id]
    assert (entry["hostname"], entry["port"]) == ("renamed", 5052)
    cluster.allocate()  # type: ignore[attr-defined]
    offered = [a for a in same().values() if a["offered_resources"]["cpus"]]  # type: ignore[index]
    assert offered and all(master.agents[a["id"]].offers for a in offered)  # type: ignore[index]
    master.agents.pop(agent.id)
    assert agent.id not in same()


# ---------------------------------------------------------------------------- the loop's share


async def test_a_slice_lasts_as_long_as_the_other_work_before_it() -> None:
    """`Slices`: at least the minimum, as long as the work the pause let run, at most the
    maximum; and where the time went is counted."""
    import asyncio

    from mezzo.master.slices import Slices

    now = [0.0]
    slices = Slices(lambda: now[0], minimum=0.01, maximum=0.025)
    now[0] = 0.0099
    assert not slices.due()
    now[0] = 0.01
    assert slices.due()
    for other, expected in ((0.0, 0.01), (0.015, 0.015), (0.2, 0.025)):
        def work(other: float = other) -> None:  # what the loop runs during the pause
            now[0] += other
        asyncio.get_running_loop().call_soon(work)
        await slices.pause()
        start = now[0]
        now[0] = start + expected - 1e-6
        assert not slices.due()
        now[0] = start + expected
        assert slices.due()

    async def write(data: bytes) -> None:  # a write that waits 0.5 s for the client
        now[0] += 0.5

    await slices.write(write, b"x" * 10)
    slices.finish()
    assert slices.slices == 4 and slices.bytes == 10
    assert abs(slices.other - 0.215) < 1e-9 and abs(slices.writing - 0.5) < 1e-9
    assert abs(slices.making - (now[0] - 0.215 - 0.5)) < 1e-9


def test_agents_of_one_shape_share_their_rendered_totals() -> None:
    """The JSON of an agent's total resources is kept per `Resources` object, which agents of
    one shape share: a first document renders each shape once (issue 12), and an agent whose
    total is replaced (a reservation) gets its own."""
    from types import SimpleNamespace

    from mezzo.master import views
    from mezzo.resources import Resources

    shape = Resources.parse("cpus:8;mem:16384;ports:[31000-32000]")
    a, b = SimpleNamespace(total=shape), SimpleNamespace(total=shape)
    assert views._agent_total(a) is views._agent_total(b)  # type: ignore[arg-type]
    b.total = Resources.parse("cpus:8;mem:16384;ports:[31000-32000]")
    other = views._agent_total(b)  # type: ignore[arg-type]
    assert other is not views._agent_total(a) and other.resources == views._agent_total(a).resources  # type: ignore[arg-type]
