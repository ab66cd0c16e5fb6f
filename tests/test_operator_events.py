"""The operator event stream: the core's events on a FakeClock (order, shapes, heartbeats,
the subscriber limit), then over HTTP on loopback (RecordIO, incremental delivery to several
subscribers, a stuck subscriber disconnected without stalling the others)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp

from mezzo.api import operator as op
from mezzo.api.codec import decode, encode
from mezzo.api.common import FrameworkInfo, Label, Labels
from mezzo.master.base import MasterOptions
from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.testing.emulated_agent import EmulatedAgent
from mezzo.testing.master_cluster import FakeStream, MasterCluster, task_info
from tests.test_master_http import serve_on_loopback


def operator_stream(cluster: MasterCluster) -> FakeStream:
    stream = FakeStream()
    cluster.master.operator_subscribe(stream)
    return stream


def types(stream: FakeStream, start: int = 0) -> list[str]:
    return [str(e.type) for e in stream.events[start:]]


# ---------------------------------------------------------------------------- core


def test_subscribed_carries_the_whole_state() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:2;mem:1024")
    sched = c.add_scheduler()
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info("t1", offer)])
    stream = operator_stream(c)
    [subscribed] = stream.events
    assert subscribed.type == op.EventType.SUBSCRIBED
    state = subscribed.subscribed.get_state
    assert subscribed.subscribed.heartbeat_interval_seconds == 15.0
    assert [a.agent_info.id.value for a in state.get_agents.agents] == [agent.agent_id]
    assert [f.framework_info.id.value for f in state.get_frameworks.frameworks] == [sched.framework_id]
    assert [(t.task_id.value, t.state) for t in state.get_tasks.tasks] == [("t1", "TASK_STAGING")]


def test_events_follow_the_cluster_in_order_and_shape() -> None:
    c = MasterCluster()
    stream = operator_stream(c)
    agent = c.add_agent("cpus:2;mem:1024")
    sched = c.add_scheduler()
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info("t1", offer, "cpus:0.5;mem:64")])
    agent.update("t1", "TASK_RUNNING", framework_id=sched.framework_id)
    agent.update("t1", "TASK_RUNNING", framework_id=sched.framework_id)  # same state: no event
    agent.update("t1", "TASK_FINISHED", framework_id=sched.framework_id)
    sched.call("TEARDOWN")
    c.master.mark_gone(agent.agent_id)
    assert types(stream) == [
        "SUBSCRIBED", "AGENT_ADDED", "FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED",
        "TASK_UPDATED", "FRAMEWORK_REMOVED", "AGENT_REMOVED",
    ]
    _, added_agent, added_fw, added_task, running, finished, removed_fw, removed_agent = stream.events
    entry = added_agent.agent_added.agent
    assert entry.agent_info.id.value == agent.agent_id and entry.active
    assert entry.pid.startswith("slave(1)@")
    assert {r.name: r.scalar.value for r in entry.total_resources if r.scalar} == {"cpus": 2, "mem": 1024}
    assert entry.allocated_resources == [] and entry.offered_resources == []  # never in events
    framework = added_fw.framework_added.framework
    assert framework.framework_info.id.value == sched.framework_id and framework.connected
    assert framework.offers == [] and framework.allocated_resources == []
    task = added_task.task_added.task
    assert (task.task_id.value, task.state, task.framework_id.value) == ("t1", "TASK_STAGING", sched.framework_id)
    assert {r.name: r.scalar.value for r in task.resources} == {"cpus": 0.5, "mem": 64}
    assert running.task_updated.state == "TASK_RUNNING"
    assert running.task_updated.status.state == "TASK_RUNNING"
    assert running.task_updated.framework_id.value == sched.framework_id
    assert finished.task_updated.state == "TASK_FINISHED"
    assert removed_fw.framework_removed.framework_info.id.value == sched.framework_id
    assert removed_agent.agent_removed.agent_id.value == agent.agent_id
    # Every event round-trips through the wire codec in its v1 shape.
    for event in stream.events:
        assert op.check_event(decode(encode(event), op.Event)) == event


def test_disconnection_failover_and_lost_tasks_are_published() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:2;mem:1024")
    from mezzo.testing.master_cluster import framework_info

    sched = c.add_scheduler(framework_info(failover_timeout=60.0))
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info("t1", offer)])
    agent.update("t1", "TASK_RUNNING", framework_id=sched.framework_id)
    stream = operator_stream(c)
    sched.disconnect()
    event = stream.events[-1]
    assert event.type == "FRAMEWORK_UPDATED"
    assert event.framework_updated.framework.connected is False
    sched.subscribe()
    assert stream.events[-1].type == "FRAMEWORK_UPDATED"
    assert stream.events[-1].framework_updated.framework.connected is True
    agent.disconnect()  # a non-checkpointing framework's tasks are lost at once
    assert stream.events[-1].type == "TASK_UPDATED"
    assert stream.events[-1].task_updated.state == "TASK_LOST"


def test_heartbeats_come_every_interval_after_subscribing() -> None:
    c = MasterCluster()
    stream = operator_stream(c)
    c.advance(14.9)
    assert types(stream) == ["SUBSCRIBED"]
    c.advance(0.2)
    assert types(stream) == ["SUBSCRIBED", "HEARTBEAT"]
    c.advance(15)
    assert types(stream) == ["SUBSCRIBED", "HEARTBEAT", "HEARTBEAT"]
    c.master.operator_unsubscribed(stream)
    c.advance(30)
    assert types(stream).count("HEARTBEAT") == 2


def test_the_oldest_subscriber_is_closed_past_the_limit() -> None:
    c = MasterCluster(MasterOptions(max_operator_event_stream_subscribers=2))
    first, second, third = operator_stream(c), operator_stream(c), operator_stream(c)
    assert first.closed and not second.closed and not third.closed
    c.add_agent()
    assert types(first) == ["SUBSCRIBED"]
    assert types(second) == types(third) == ["SUBSCRIBED", "AGENT_ADDED"]


# ---------------------------------------------------------------------------- HTTP


async def _records(resp: aiohttp.ClientResponse, buf: bytearray, count: int) -> list[dict]:
    """Read exactly `count` more records from an open RecordIO response."""
    out: list[dict] = []
    while len(out) < count:
        while b"\n" in buf:
            head, _, rest = bytes(buf).partition(b"\n")
            if len(rest) < int(head):
                break
            out.append(json.loads(rest[: int(head)]))
            del buf[: len(head) + 1 + int(head)]
            if len(out) == count:
                return out
        buf += await asyncio.wait_for(resp.content.readany(), 10)
    return out


async def _subscribe(session: aiohttp.ClientSession, url: str, path: str = "/api/v1"):
    resp = await session.post(url + path, data=b'{"type":"SUBSCRIBE"}',
                              headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Transfer-Encoding"] == "chunked"
    return resp, bytearray()


async def _serve(**flags: str):
    parsed = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1",
                                "allocation_interval": "50ms", **flags})
    process = build_master(parsed)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, parsed)
    return process, runner, url


async def test_subscribers_see_each_event_as_it_happens() -> None:
    process, runner, url = await _serve()
    agent = EmulatedAgent(url, hostname="a1")
    try:
        async with aiohttp.ClientSession() as session:
            one, buf1 = await _subscribe(session, url)
            two, buf2 = await _subscribe(session, url, "/api/v1/operator")  # pymesos's path
            for resp, buf in ((one, buf1), (two, buf2)):
                [subscribed] = await _records(resp, buf, 1)
                assert subscribed["type"] == "SUBSCRIBED"
                assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 15.0
                assert set(subscribed["subscribed"]["get_state"]) >= {"get_agents", "get_frameworks", "get_tasks"}
            await agent.start()
            # The stream stays open: each event arrives on its own, while it happens.
            for resp, buf in ((one, buf1), (two, buf2)):
                [added] = await _records(resp, buf, 1)
                assert added["type"] == "AGENT_ADDED"
                assert added["agent_added"]["agent"]["agent_info"]["hostname"] == "a1"
                assert added["agent_added"]["agent"]["agent_info"]["id"]["value"] == agent.agent_id
            metrics = await (await session.get(url + "/metrics/snapshot")).json()
            assert metrics["master/operator_event_stream_subscribers"] == 2
            one.close()
            deadline = time.monotonic() + 10
            while len(process.master.events.subscribers) != 1:
                assert time.monotonic() < deadline, "closed subscriber not removed"
                await asyncio.sleep(0.02)
            two.close()
    finally:
        await agent.stop()
        await runner.cleanup()


async def test_a_stuck_subscriber_is_disconnected_and_the_others_keep_up(caplog) -> None:
    process, runner, url = await _serve()
    process.server.operator_api.max_queued = 20
    master = process.master
    # A client that subscribes and then never reads, with a tiny receive buffer.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("http://").split(":")
    stuck.connect((host, int(port)))
    body = b'{"type":"SUBSCRIBE"}'
    stuck.sendall(b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Accept: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 10
            while len(master.events.subscribers) < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            reader, buf = await _subscribe(session, url)
            await _records(reader, buf, 1)
            big = Labels(labels=[Label(key="pad", value="x" * 65536)])
            sent = 0
            deadline = time.monotonic() + 30
            # Publish big events until the stuck subscriber overflows; the reader reads along.
            while len(master.events.subscribers) == 2:
                assert time.monotonic() < deadline, "the stuck subscriber was never dropped"
                master.events.publish(op.Event(
                    type=op.EventType.FRAMEWORK_REMOVED,
                    framework_removed=op.FrameworkRemoved(
                        framework_info=FrameworkInfo(user="u", name="big", labels=big))))
                sent += 1
                got = await _records(reader, buf, 1)
                assert got[0]["framework_removed"]["framework_info"]["name"] == "big"
            assert sent > 20
            assert any("fell 20 events behind" in r.getMessage() for r in caplog.records)
            # The remaining subscriber still gets everything.
            master.events.publish(op.Event(type=op.EventType.HEARTBEAT))
            assert (await _records(reader, buf, 1))[0]["type"] == "HEARTBEAT"
            reader.close()
    finally:
        stuck.close()
        await runner.cleanup()


# ---------------------------------------------------------------------------- SUBSCRIBED in slices


def test_subscribed_pieces_are_the_encoded_event() -> None:
    from mezzo.master import views
    from tests.test_master_state_stream import _busy_cluster

    master = _busy_cluster().master  # type: ignore[attr-defined]
    expected = encode(op.Event(type=op.EventType.SUBSCRIBED, subscribed=op.Subscribed(
        get_state=views.get_state(master), heartbeat_interval_seconds=master.events.heartbeat_interval)))
    assert b"".join(views.subscribed_pieces(master, master.events.heartbeat_interval)) == expected
    empty = MasterCluster().master
    assert b"".join(views.subscribed_pieces(empty, 2.5)) == encode(op.Event(
        type=op.EventType.SUBSCRIBED,
        subscribed=op.Subscribed(get_state=views.get_state(empty), heartbeat_interval_seconds=2.5)))


def test_events_sent_while_subscribed_is_made_follow_it() -> None:
    from mezzo.master.operator_api import _SubscribedFirst

    class Stream:
        def __init__(self) -> None:
            self.records: list[bytes | str] = []

        def send(self, payload: bytes) -> bool:
            self.records.append(payload)
            return True

        def close(self, reason: str) -> None:
            self.records.append(reason)

    stream = Stream()
    handle = _SubscribedFirst(stream)  # type: ignore[arg-type]
    handle.send(b"heartbeat")
    handle.close("closed by the master")
    assert stream.records == []
    handle.release(b"subscribed")
    assert stream.records == [b"subscribed", b"heartbeat", "closed by the master"]
    handle.send(b"after")
    assert stream.records[-1] == b"after"


async def test_subscribed_is_made_in_slices_and_equals_the_state() -> None:
    from mezzo.master import views

    process, runner, url = await _serve()
    process.server.operator_api.slice_seconds = 0.0  # every piece in its own slice
    process.server.operator_api.max_slice_seconds = 0.0
    agents = [EmulatedAgent(url, hostname=f"a{i}") for i in range(4)]
    try:
        for agent in agents:
            await agent.start()
        async with aiohttp.ClientSession() as session:
            resp, buf = await _subscribe(session, url)
            while b"\n" not in buf:
                buf += await asyncio.wait_for(resp.content.readany(), 10)
            head, _, rest = bytes(buf).partition(b"\n")
            while len(rest) < int(head):
                rest += await asyncio.wait_for(resp.content.readany(), 10)
            expected = encode(op.Event(type=op.EventType.SUBSCRIBED, subscribed=op.Subscribed(
                get_state=views.get_state(process.master), heartbeat_interval_seconds=15.0)))
            assert rest[: int(head)] == expected
            assert len(json.loads(expected)["subscribed"]["get_state"]["get_agents"]["agents"]) == 4
            # The live events come after it.
            more = EmulatedAgent(url, hostname="a4")
            agents.append(more)
            await more.start()
            buf = bytearray(rest[int(head):])
            [added] = await _records(resp, buf, 1)
            assert added["type"] == "AGENT_ADDED"
            resp.close()
    finally:
        for agent in agents:
            await agent.stop()
        await runner.cleanup()
