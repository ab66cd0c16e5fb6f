"""The agent's one connection to its master (issue 11): a WebSocket on `/api/v1/agent` whose
first message subscribes, events down it and calls up it. Real masters on loopback port 0:
the real agent's `MasterLink` and the emulated agents (raw client and aiohttp) register and
talk over it; a refused call gets an ERROR naming it and the socket stays open; a refused
handshake (503 recovering, 401, 403 `register_agents`) is the subscription refused; a bad
first message is refused and closed; the link follows a leader change and notices a master
that closed the socket; the master hears the agent go."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mezzo.agent.master_link import MasterLink
from mezzo.api.codec import encode
from mezzo.api.common import AgentID, AgentInfo
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentPong,
    AgentSubscribe,
)
from mezzo.election.standalone import StandaloneDetector
from mezzo.master.flags import MasterFlags
from mezzo.master.leadership import Phase
from mezzo.master.main import build_master
from mezzo.net.client import StreamRefused, open_socket, socket_url
from mezzo.net.message_socket import BaseMessageSocket, FrameSocket, MessageSocket
from mezzo.testing.emulated_agent import EmulatedAgent
from mezzo.testing.processes import eventually as _eventually
from tests.test_master_http import serve_on_loopback
from tests.test_security_authentication import AGENT, ALL_REALMS, start_master

PATH = "/api/v1/agent"


async def eventually(predicate: Any) -> Any:
    return await _eventually(predicate, 10.0)


class Master:
    def __init__(self, process: Any, runner: Any, url: str) -> None:
        self.process, self.runner, self.url = process, runner, url
        self.core = process.master
        self.address = url.removeprefix("http://")

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(flags: dict[str, str] | None = None) -> Master:
    parsed = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1",
                                "allocation_interval": "50ms", **(flags or {})})
    process = build_master(parsed)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, parsed)
    return Master(process, runner, url)


@pytest.fixture
async def master() -> AsyncIterator[Master]:
    m = await start()
    yield m
    await m.stop()


def subscribe_body(hostname: str = "h1", agent_id: str | None = None) -> bytes:
    info = AgentInfo(hostname=hostname, port=5051, id=AgentID(value=agent_id) if agent_id else None)
    return encode(AgentCall(type=AgentCallType.SUBSCRIBE, subscribe=AgentSubscribe(agent_info=info)))


def pong(agent_id: str) -> bytes:
    return encode(AgentCall(type=AgentCallType.PONG, agent_id=AgentID(value=agent_id), pong=AgentPong(ping_id=1)))


async def next_event(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(socket.receive(), 10)
    assert message.type == aiohttp.WSMsgType.BINARY, message
    return json.loads(message.data)


def ws_count(m: Master) -> float:
    """Messages the master handled on agent sockets (its HTTP histogram, method WS)."""
    histogram = m.process.server.http_metrics.http_seconds
    return sum(sample.value for metric in histogram.collect() for sample in metric.samples
               if sample.name.endswith("_count") and sample.labels.get("method") == "WS")


def http_count(m: Master, method: str, endpoint: str = PATH) -> float:
    histogram = m.process.server.http_metrics.http_seconds
    return sum(sample.value for metric in histogram.collect() for sample in metric.samples
               if sample.name.endswith("_count") and sample.labels.get("method") == method
               and sample.labels.get("endpoint") == endpoint)


class Link:
    """The real agent's MasterLink, recording what it hands the agent."""

    def __init__(self, detector: StandaloneDetector, hostname: str = "h1", **kwargs: Any) -> None:
        self.events: list[AgentEvent] = []
        self.disconnects = 0
        self.agent_id: str | None = None
        self.link = MasterLink(detector, subscribe_body=lambda: subscribe_body(hostname, self.agent_id),
                               on_event=self._event, on_disconnected=self._gone, backoff_factor=0.05,
                               **kwargs)

    def _event(self, event: AgentEvent) -> None:
        self.events.append(event)
        if event.type == AgentEventType.SUBSCRIBED and event.subscribed is not None:
            self.agent_id = event.subscribed.agent_id.value

    def _gone(self) -> None:
        self.disconnects += 1


@pytest.mark.parametrize("fast", [True, False])
async def test_the_real_link_registers_and_calls_go_up_the_socket(master: Master, fast: bool,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Whether the master reads the socket itself (its fast path: mezzo.net.fastpath) or
    aiohttp's handler does (fast path off), the agent sees the same."""
    master.process.server.fast_path = fast
    link = Link(StandaloneDetector(master.address))
    link.link.start()
    try:
        await eventually(lambda: link.link.connected)
        assert link.agent_id is not None
        agent = master.core.agents[link.agent_id]
        assert isinstance(agent.stream, BaseMessageSocket)  # one socket, not a stream + POSTs
        assert isinstance(agent.stream, FrameSocket if fast else MessageSocket)
        # The fast handshake is timed as a request (aiohttp's path leaves a socket's out).
        assert http_count(master, "GET") == (1 if fast else 0)
        before = ws_count(master)
        link.link.send(AgentCall(type=AgentCallType.PONG, agent_id=AgentID(value=link.agent_id),
                                 pong=AgentPong(ping_id=0)))
        await eventually(lambda: ws_count(master) == before + 1)
        # A refused call: logged as a POST's 4xx was, not handed to the agent; the socket lives.
        with caplog.at_level(logging.WARNING, logger="mezzo.agent.master_link"):
            link.link.send(AgentCall(type=AgentCallType.STATUS_UPDATE, agent_id=AgentID(value=link.agent_id)))
            await eventually(lambda: any("master answered 400 to STATUS_UPDATE" in r.getMessage()
                                         for r in caplog.records))
        assert [e.type for e in link.events] == [AgentEventType.SUBSCRIBED]
        assert link.link.connected and link.disconnects == 0 and agent.connected
    finally:
        await link.link.stop()
    # The agent went: the master hears it at once.
    await eventually(lambda: not master.core.agents[link.agent_id].connected)


async def test_emulated_agents_launch_over_the_socket(master: Master) -> None:
    """The raw client (benchmarks) and the aiohttp one (tests with credentials) both carry the
    calls: a PING is answered, so the master counts PONGs on the socket."""
    async with aiohttp.ClientSession() as session:
        agents = [EmulatedAgent(master.url, hostname="raw"),
                  EmulatedAgent(master.url, hostname="aio", session=session)]
        for agent in agents:
            await asyncio.wait_for(agent.start(), 10)
        try:
            for agent in agents:
                record = master.core.agents[agent.agent_id]
                assert isinstance(record.stream, BaseMessageSocket) and record.connected
                before = ws_count(master)
                master.core.outbox.send_agent(record.stream, AgentEvent(type=AgentEventType.PING))
                await eventually(lambda before=before: ws_count(master) > before)
        finally:
            for agent in agents:
                await agent.stop()


async def test_refusals_on_the_socket(master: Master) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, socket_url(master.url, PATH), subscribe_body())
        subscribed = await next_event(socket)
        assert subscribed["type"] == "SUBSCRIBED"
        agent_id = subscribed["subscribed"]["agent_id"]["value"]
        await socket.send_bytes(b"{not json")
        error = await next_event(socket)
        assert error["type"] == "ERROR" and error["error"]["status"] == 400
        assert error["error"]["refused_call"] == "UNKNOWN" and "JSON" in error["error"]["message"]
        await socket.send_bytes(pong("someone-else"))  # another agent's call: not on our socket
        error = await next_event(socket)
        assert (error["error"]["status"], error["error"]["refused_call"]) == (403, "PONG")
        await socket.send_bytes(subscribe_body())
        error = await next_event(socket)
        assert (error["error"]["status"], error["error"]["refused_call"]) == (400, "SUBSCRIBE")
        # Still open and served.
        before = ws_count(master)
        await socket.send_bytes(pong(agent_id))
        await eventually(lambda: ws_count(master) == before + 1)
        assert not socket.closed and master.core.agents[agent_id].connected
        await socket.close()
        await eventually(lambda: not master.core.agents[agent_id].connected)


@pytest.mark.parametrize(("first", "words"), [
    (b"[1, 2", "Failed to parse body into JSON"),
    (pong("x"), "Expecting the first message to be a SUBSCRIBE"),
])
async def test_a_bad_first_message_is_refused_and_closed(master: Master, first: bytes, words: str) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, socket_url(master.url, PATH), first)
        error = await next_event(socket)
        assert error["type"] == "ERROR" and error["error"]["refused_call"] == "SUBSCRIBE"
        assert error["error"]["status"] == 400 and words in error["error"]["message"]
        closing = await asyncio.wait_for(socket.receive(), 10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert not master.core.agents


async def test_a_subscription_the_core_refuses_gets_its_error_then_closes(master: Master) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, socket_url(master.url, PATH), subscribe_body(hostname=""))
        error = await next_event(socket)
        assert error["type"] == "ERROR" and "hostname" in error["error"]["message"]
        assert error["error"].get("refused_call") is None  # the core's own refusal, as on a stream
        closing = await asyncio.wait_for(socket.receive(), 10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_recovering_master_refuses_the_handshake_with_503(master: Master) -> None:
    master.core.phase = Phase.RECOVERING
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StreamRefused) as refused:
            await open_socket(session, socket_url(master.url, PATH), subscribe_body())
    assert refused.value.status == 503


async def test_the_old_stream_and_posts_still_work_beside_sockets(master: Master) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(master.url + PATH, data=subscribe_body("old"),
                                  headers={"Content-Type": "application/json"})
        assert resp.status == 200
        line = await asyncio.wait_for(resp.content.readline(), 10)
        record = json.loads(await resp.content.readexactly(int(line)))
        assert record["type"] == "SUBSCRIBED"
        agent_id = record["subscribed"]["agent_id"]["value"]
        async with session.post(master.url + PATH, data=pong(agent_id),
                                headers={"Content-Type": "application/json"}) as answer:
            assert answer.status == 202
        socket = await open_socket(session, socket_url(master.url, PATH), subscribe_body("new"))
        assert (await next_event(socket))["type"] == "SUBSCRIBED"
        assert {a.info.hostname for a in master.core.agents.values() if a.connected} == {"old", "new"}
        await socket.close()
        resp.close()


async def test_agent_authentication_and_register_agents_acl_on_the_handshake(tmp_path: Path) -> None:
    acls = {"permissive": False, "register_agents": [{"principals": {"values": ["agent"]},
                                                      "agents": {"type": "ANY"}}]}
    process, runner, url = await start_master(tmp_path, {**ALL_REALMS, "acls": json.dumps(acls)})
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(StreamRefused) as refused:
                await open_socket(session, socket_url(url, PATH), subscribe_body())
            assert refused.value.status == 401
            from mezzo.security.authentication import basic_header
            guest = {"Authorization": basic_header("bob", "builder")}
            with pytest.raises(StreamRefused) as refused:
                await open_socket(session, socket_url(url, PATH), subscribe_body(), headers=guest)
            assert refused.value.status == 403
        assert not process.master.agents
        async with aiohttp.ClientSession(headers=AGENT) as session:
            agent = EmulatedAgent(url, hostname="authed", session=session)
            await asyncio.wait_for(agent.start(), 10)
            try:
                assert [a.info.hostname for a in process.master.agents.values()] == ["authed"]
            finally:
                await agent.stop()
        # The real agent's link sends its credential on the handshake.
        link = Link(StandaloneDetector(url.removeprefix("http://")), headers=AGENT)
        link.link.start()
        try:
            await eventually(lambda: link.link.connected)
        finally:
            await link.link.stop()
    finally:
        await runner.cleanup()


async def test_the_link_follows_a_leader_change_and_a_closing_master() -> None:
    first, second = await start(), await start()
    detector = StandaloneDetector(first.address)
    link = Link(detector)
    link.link.start()
    try:
        await eventually(lambda: link.link.connected)
        agent_id = link.agent_id
        assert agent_id in first.core.agents
        # The leader changes: the link leaves the old master's socket at once and re-registers.
        second.core.agents.clear()
        detector.appoint(second.address)
        await eventually(lambda: link.disconnects == 1 and link.link.connected
                         and link.link.master_url == second.url)
        await eventually(lambda: not first.core.agents[agent_id].connected)
        assert second.core.agents[agent_id].connected  # re-registered with its id
        # The master closes the socket (it shuts down): the agent hears it and retries.
        await second.stop()
        await eventually(lambda: link.disconnects == 2 and not link.link.connected)
        detector.appoint(first.address)
        await eventually(lambda: link.link.connected and link.link.master_url == first.url)
        assert first.core.agents[agent_id].connected
    finally:
        await link.link.stop()
        await first.stop()


async def test_the_link_leaves_a_silent_master() -> None:
    """No message for SILENT_PING_INTERVALS ping intervals: the link drops the socket itself
    (the master may be gone without a word) and subscribes again."""
    m = await start()
    link = Link(StandaloneDetector(m.address))
    link.link.start()
    try:
        await eventually(lambda: link.link.connected)
        link.link.ping_interval = 0.05  # the master pings every 15 s: it is "silent" at once
        await eventually(lambda: link.disconnects >= 1)
        await eventually(lambda: link.link.connected)
    finally:
        await link.link.stop()
        await m.stop()
