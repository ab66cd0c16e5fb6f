"""SchedulerClient / SchedulerDriver protocol behaviour against a scripted HTTP master.

The scripted master below speaks the wire protocol of spec §2/§4 (RecordIO stream,
Mesos-Stream-Id, 202s, 307) and lets a test push events, drop streams and stall — faults that
are impractical to provoke in the real master on demand. End-to-end behaviour against the real
master lives in test_sdk_scheduler_master.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from mezzo.api.codec import encode
from mezzo.api.common import (
    AgentID,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    Offer,
    OfferID,
    TaskID,
    TaskState,
    TaskStatus,
)
from mezzo.api.recordio import encode_record
from mezzo.api.scheduler import (
    Call,
    CallType,
    Error,
    Event,
    EventType,
    Offers,
    Subscribed,
    Update,
    decode_call,
)
from mezzo.scheduler import (
    NotSubscribedError,
    Scheduler,
    SchedulerClient,
    SchedulerDriver,
    SchedulerOptions,
)
from mezzo.testing.processes import eventually

FAST = SchedulerOptions(backoff_initial=0.05, backoff_max=0.2, connect_timeout=2.0)


async def until(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    return await eventually(pred, timeout)


class ScriptedMaster:
    """A scripted `/api/v1/scheduler` endpoint."""

    def __init__(self, heartbeat: float = 15.0) -> None:
        self.heartbeat = heartbeat
        self.subscribes: list[Call] = []
        self.calls: list[Call] = []
        self.stream_id: str | None = None
        self.queue: asyncio.Queue[Event | None] | None = None
        self.first_event: Event | None = None  # replaces SUBSCRIBED when set
        self.refuse_with: int | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self.queue is not None:
            self.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    def push(self, event: Event) -> None:
        assert self.queue is not None
        self.queue.put_nowait(event)

    def drop_stream(self) -> None:
        assert self.queue is not None
        self.queue.put_nowait(None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = decode_call(await request.read())
        if call.type != CallType.SUBSCRIBE:
            if request.headers.get("Mesos-Stream-Id") != self.stream_id:
                return web.Response(status=400, text="wrong Mesos-Stream-Id")
            self.calls.append(call)
            return web.Response(status=202)
        assert "Mesos-Stream-Id" not in request.headers
        self.subscribes.append(call)
        if self.refuse_with is not None:
            return web.Response(status=self.refuse_with, text="Framework refused")
        fid = call.framework_id or FrameworkID(value=f"F-{len(self.subscribes)}")
        if self.queue is not None:
            self.queue.put_nowait(None)  # one subscription at a time
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.queue = queue
        self.stream_id = str(uuid.uuid4())
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id}
        )
        await response.prepare(request)
        first = self.first_event or Event(
            type=EventType.SUBSCRIBED,
            subscribed=Subscribed(
                framework_id=fid,
                heartbeat_interval_seconds=self.heartbeat,
                master_info=MasterInfo(id="m1", hostname="127.0.0.1"),
            ),
        )
        await response.write(encode_record(encode(first)))
        while (event := await queue.get()) is not None:
            await response.write(encode_record(encode(event)))
        return response


class Redirector:
    """A non-leading master: 307 to the leader (protocol-relative, as Mesos does)."""

    def __init__(self, leader: str) -> None:
        self.leader = leader
        self.hits = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(
                status=307, headers={"Location": f"//{self.leader}/master/api/v1/scheduler"}
            )

        app = web.Application()
        app.router.add_post("/api/v1/scheduler", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Recorder(Scheduler):
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
        self.log.append(("registered", framework_id.value))

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.log.append(("reregistered", None))

    def disconnected(self, driver: Any) -> None:
        self.log.append(("disconnected", None))

    async def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        self.log.append(("offers", [o.id.value for o in offers]))
        await driver.decline(offers, refuse_seconds=30)

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.log.append(("update", status.state))

    def error(self, driver: Any, message: str) -> None:
        self.log.append(("error", message))


def info() -> FrameworkInfo:
    return FrameworkInfo(user="tester", name="sdk-test", failover_timeout=60)


def offer_event(offer_id: str) -> Event:
    return Event(
        type=EventType.OFFERS,
        offers=Offers(
            offers=[
                Offer(
                    id=OfferID(value=offer_id),
                    framework_id=FrameworkID(value="F-1"),
                    agent_id=AgentID(value="S1"),
                    hostname="h",
                )
            ]
        ),
    )


def update_event(state: TaskState, reliable: bool) -> Event:
    return Event(
        type=EventType.UPDATE,
        update=Update(
            status=TaskStatus(
                task_id=TaskID(value="t1"),
                state=state,
                agent_id=AgentID(value="S1"),
                uuid=uuid.uuid4().bytes if reliable else None,
            )
        ),
    )


@pytest.fixture
async def master() -> AsyncIterator[ScriptedMaster]:
    m = ScriptedMaster()
    await m.start()
    yield m
    await m.close()


async def test_subscribe_calls_and_implicit_acks(master: ScriptedMaster) -> None:
    rec = Recorder()
    client = SchedulerClient(master.url, info(), rec, FAST)
    await client.start()
    try:
        fid = await client.wait_subscribed(5)
        assert fid.value == "F-1" and client.connected
        assert master.subscribes[0].subscribe is not None
        assert master.subscribes[0].framework_id is None
        master.push(offer_event("O1"))
        await until(lambda: master.calls)
        decline = master.calls[0]
        assert decline.type == CallType.DECLINE and decline.framework_id == fid
        assert decline.decline is not None and decline.decline.offer_ids[0].value == "O1"
        assert decline.decline.filters is not None
        assert decline.decline.filters.refuse_seconds == 30
        master.push(update_event(TaskState.TASK_RUNNING, reliable=False))
        master.push(update_event(TaskState.TASK_FINISHED, reliable=True))
        await until(lambda: len(master.calls) == 2)
        ack = master.calls[1]
        assert ack.type == CallType.ACKNOWLEDGE and ack.acknowledge is not None
        assert ack.acknowledge.task_id.value == "t1" and len(ack.acknowledge.uuid) == 16
        await client.kill("t1", grace_period=1.5)
        await client.revive()
        await client.reconcile(["t1"])
        types = [c.type for c in master.calls[2:]]
        assert types == [CallType.KILL, CallType.REVIVE, CallType.RECONCILE]
        assert rec.names()[:2] == ["registered", "offers"]
    finally:
        await client.stop()
    assert master.calls[-1].type == CallType.TEARDOWN
    assert client.stopped


async def test_explicit_acknowledgements(master: ScriptedMaster) -> None:
    opts = SchedulerOptions(implicit_acknowledgements=False, backoff_initial=0.05)
    seen: list[TaskStatus] = []

    class Sched(Scheduler):
        def status_update(self, driver: Any, status: TaskStatus) -> None:
            seen.append(status)

    client = SchedulerClient(master.url, info(), Sched(), opts)
    await client.start()
    try:
        await client.wait_subscribed(5)
        master.push(update_event(TaskState.TASK_RUNNING, reliable=True))
        await until(lambda: seen)
        # A window for an implicit ACKNOWLEDGE to arrive (there must be none to wait for).
        await asyncio.sleep(0.1)
        assert master.calls == []
        await client.acknowledge(seen[0])
        assert master.calls[0].type == CallType.ACKNOWLEDGE
    finally:
        await client.stop(failover=True)
    assert all(c.type != CallType.TEARDOWN for c in master.calls)


async def test_resubscribes_with_framework_id_after_stream_loss(master: ScriptedMaster) -> None:
    rec = Recorder()
    client = SchedulerClient(master.url, info(), rec, FAST)
    await client.start()
    try:
        fid = await client.wait_subscribed(5)
        master.drop_stream()
        await until(lambda: len(master.subscribes) == 2)
        again = master.subscribes[1]
        assert again.framework_id == fid
        assert again.subscribe is not None and again.subscribe.framework_info.id == fid
        await until(lambda: "reregistered" in rec.names())
        assert rec.names() == ["registered", "disconnected", "reregistered"]
        assert client.framework_id == fid
    finally:
        await client.stop(failover=True)


async def test_heartbeat_watchdog_reconnects() -> None:
    stalled = ScriptedMaster(heartbeat=0.1)
    await stalled.start()
    opts = SchedulerOptions(heartbeat_misses=3, backoff_initial=0.05, backoff_max=0.1)
    client = SchedulerClient(stalled.url, info(), Recorder(), opts)
    await client.start()
    try:
        await client.wait_subscribed(5)
        # No heartbeats follow: after 3 × 0.1 s the client gives up on the stream.
        await until(lambda: len(stalled.subscribes) >= 2, timeout=5)
    finally:
        await client.stop(failover=True)
        await stalled.close()


async def test_follows_a_redirect_to_the_leader(master: ScriptedMaster) -> None:
    follower = Redirector(master.url)
    address = await follower.start()
    client = SchedulerClient(address, info(), Recorder(), FAST)
    await client.start()
    try:
        await client.wait_subscribed(5)
        assert follower.hits == 1
        assert client.master_url == f"http://{master.url}"
        await client.suppress()
        assert master.calls[0].type == CallType.SUPPRESS
    finally:
        await client.stop()
        await follower.close()


async def test_a_new_leader_cuts_the_backoff_short(
    master: ScriptedMaster, caplog: pytest.LogCaptureFixture
) -> None:
    from mezzo.election.standalone import StandaloneDetector

    detector = StandaloneDetector("127.0.0.1:1")  # a leader that is gone
    slow = SchedulerOptions(backoff_initial=60.0, backoff_max=60.0, connect_timeout=2.0)
    client = SchedulerClient("zk://unused:2181/x", info(), Recorder(), slow, detector=detector)
    caplog.set_level("INFO", logger="mezzo.scheduler.client")
    await client.start()
    try:
        # The first attempt failed; the client sleeps out 60 s...
        await until(lambda: any("cannot subscribe at" in r.getMessage() for r in caplog.records))
        assert client.framework_id is None
        detector.appoint(master.url)  # ...unless a new leader is elected meanwhile
        await client.wait_subscribed(5)
        assert client.master_url == f"http://{master.url}"
    finally:
        await client.stop()


async def test_candidates_skip_an_unreachable_master(master: ScriptedMaster) -> None:
    client = SchedulerClient(f"127.0.0.1:1,{master.url}", info(), Recorder(), FAST)
    await client.start()
    try:
        await client.wait_subscribed(5)
    finally:
        await client.stop()


def test_a_host_list_backs_off_per_round_not_per_candidate() -> None:
    """After a failover the next candidate is tried after the first, short delay; the backoff
    grows only once every candidate has failed in a row (a round), and a subscription starts
    the rounds anew. ZooKeeper and a single master back off on every failure."""
    from mezzo.core.backoff import Backoff
    from mezzo.scheduler.leader import MasterLocator

    locator = MasterLocator("m1:5050,m2:5050,m3:5050")
    assert [locator.failed() for _ in range(7)] == [False, False, True, False, False, True, False]
    locator.subscribed()
    assert [locator.failed() for _ in range(3)] == [False, False, True]
    assert all(MasterLocator("m1:5050").failed() for _ in range(3))
    backoff = Backoff(0.5, 15.0, jitter=lambda: 1.0)
    assert [backoff.first(), backoff.first()] == [0.5, 0.5]  # the progression stays
    assert [backoff.next(), backoff.next(), backoff.first()] == [0.5, 1.0, 0.5]


async def test_error_event_is_fatal(master: ScriptedMaster) -> None:
    master.first_event = Event(
        type=EventType.ERROR, error=Error(message="Framework has been removed")
    )
    rec = Recorder()
    client = SchedulerClient(master.url, info(), rec, FAST)
    await client.start()
    await asyncio.wait_for(client.join(), 5)
    assert rec.log == [("error", "Framework has been removed")]
    assert len(master.subscribes) == 1
    await client.stop()


async def test_refused_subscribe_is_fatal(master: ScriptedMaster) -> None:
    master.refuse_with = 400
    rec = Recorder()
    client = SchedulerClient(master.url, info(), rec, FAST)
    await client.start()
    with pytest.raises(Exception, match="refused SUBSCRIBE"):
        await client.wait_subscribed(5)
    await asyncio.wait_for(client.join(), 5)
    assert rec.names() == ["error"] and "HTTP 400" in rec.log[0][1]
    await client.stop()


async def test_calls_need_a_subscription() -> None:
    client = SchedulerClient("127.0.0.1:1", info(), Recorder(), FAST)
    with pytest.raises(NotSubscribedError):
        await client.revive()


async def test_thread_driver(master: ScriptedMaster) -> None:
    registered = threading.Event()
    threads: list[str] = []

    class Sched(Scheduler):
        def registered(self, driver: Any, framework_id: FrameworkID, master_info: Any) -> None:
            registered.set()

        def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
            threads.append(threading.current_thread().name)
            driver.decline(offers)  # blocking call from the callback thread

    driver = SchedulerDriver(Sched(), info(), master.url, FAST)
    # The driver blocks its caller, so drive it from a worker thread.
    await asyncio.to_thread(driver.start)
    try:
        assert await asyncio.to_thread(registered.wait, 5)
        assert (await asyncio.to_thread(driver.wait_subscribed, 5)).value == "F-1"
        master.push(offer_event("O7"))
        await until(lambda: master.calls)
        assert master.calls[0].type == CallType.DECLINE
        assert threads[0].startswith("mezzo-scheduler-callbacks")
        await asyncio.to_thread(driver.revive, ["*"])
        assert master.calls[1].type == CallType.REVIVE
    finally:
        await asyncio.to_thread(driver.stop)
        assert await asyncio.to_thread(driver.join, 5)
    assert master.calls[-1].type == CallType.TEARDOWN
