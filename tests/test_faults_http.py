"""Subscriptions that fail, over real loopback HTTP: a SUBSCRIBE whose response cannot start
leaves nothing behind, and a framework whose connection drops gives its resources back.

The master's HTTP shell runs in-process on port 0 with an emulated agent (the real agent
protocol, no executors); schedulers are raw v1 clients (`MiniScheduler`) or raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.testing.agent_harness import MiniScheduler
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import serve_on_loopback

SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
    "user": "u", "name": "reset", "failover_timeout": 3600}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class Running:
    def __init__(self, process, url: str) -> None:
        self.master = process.master
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1",
                               "allocation_interval": "100ms"})
    process = build_master(flags)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    yield Running(process, url)
    await runner.cleanup()


async def until(check, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/scheduler", SUBSCRIBE),
    ("/api/v1/agent", {"type": "SUBSCRIBE", "subscribe": {"agent_info": {"hostname": "h"}}}),
    ("/api/v1", {"type": "SUBSCRIBE"}),
])
async def test_subscribe_over_http_1_0_is_400_and_registers_nothing(running: Running, path, body) -> None:
    async with aiohttp.ClientSession(version=aiohttp.HttpVersion10) as session, session.post(
        running.url + path, data=json.dumps(body), headers=HEADERS
    ) as resp:
        text = await resp.text()
    assert resp.status == 400
    assert "HTTP/1.1" in text and "\n" not in text.strip()
    m = running.master
    assert not m.frameworks and not m.agents and not m.events.subscribers


def subscribe_then_reset(port: int) -> None:
    """Send a complete SUBSCRIBE and reset the connection (RST) without reading a byte."""
    body = json.dumps(SUBSCRIBE).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/scheduler HTTP/1.1\r\nHost: master\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_client_that_resets_during_the_handshake_leaves_no_ghost(running: Running) -> None:
    agent = EmulatedAgent(running.url, resources="cpus:2;mem:1024")
    await agent.start()
    try:
        for _ in range(5):
            await asyncio.to_thread(subscribe_then_reset, running.port)
        m = running.master
        # Whether the master saw the SUBSCRIBE (a disconnected framework, failing over for an
        # hour) or not (nothing registered), none of them is connected or holds an offer.
        await until(lambda: all(not f.connected and not f.offers for f in m.frameworks.values()))
        assert all(not f.active for f in m.frameworks.values())
        # A well-behaved framework is not starved: it gets the whole agent.
        async with MiniScheduler(running.url) as s:
            await s.wait_for(lambda: any(
                r["name"] == "cpus" and r["scalar"]["value"] == 2 for o in s.offers for r in o["resources"]))
        assert not any(f.connected for f in m.frameworks.values())
    finally:
        await agent.stop()


async def test_a_dropped_framework_without_failover_timeout_gives_its_offers_to_others(running: Running) -> None:
    agent = EmulatedAgent(running.url, resources="cpus:2;mem:1024")
    await agent.start()
    try:
        async with MiniScheduler(running.url, name="first") as first:
            await first.wait_for(lambda: first.offers)  # holds the whole agent
            async with MiniScheduler(running.url, name="second") as second:
                m = running.master
                assert [o.framework_id for o in m.offers.values()] == [first.framework_id]
                first.drop_connection()  # failover_timeout 0: removed as soon as noticed
                await second.wait_for(lambda: second.offers)
                assert first.framework_id in m.completed_frameworks
                assert [o.framework_id for o in m.offers.values()] == [second.framework_id]
    finally:
        await agent.stop()
