"""Subscriptions that fail, over real loopback HTTP: a SUBSCRIBE whose response cannot start
leaves nothing behind, and a framework whose connection drops gives its resources back.

The master's HTTP shell runs in-process on port 0 with an emulated agent (the real agent
protocol, no executors); schedulers are raw v1 clients (`MiniScheduler`) or raw sockets.
Every test runs twice: on an open master, and with every authentication realm on (all the
clients then send credentials).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.security.authentication import basic_header
from mezzo.testing.agent_harness import MiniScheduler
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import serve_on_loopback

SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
    "user": "u", "name": "reset", "failover_timeout": 3600}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


AUTH = {"Authorization": basic_header("faults", "f4ults")}
REALMS = ("authenticate_http_frameworks", "authenticate_agents", "authenticate_http_readonly",
          "authenticate_http_readwrite")


class Running:
    def __init__(self, process, url: str, headers: dict[str, str]) -> None:
        self.master = process.master
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.headers = headers  # what every client sends ({} when open)

    def agent(self) -> EmulatedAgent:
        return EmulatedAgent(self.url, resources="cpus:2;mem:1024", headers=self.headers)


@pytest.fixture(params=["open", "authenticated"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    values = {"registry": "in_memory", "port": "0", "ip": "127.0.0.1", "allocation_interval": "100ms"}
    headers: dict[str, str] = {}
    if request.param == "authenticated":
        (tmp_path / "credentials").write_text("faults f4ults\n")
        values.update({"credentials": str(tmp_path / "credentials"), **dict.fromkeys(REALMS, "true")})
        headers = AUTH
    flags = MasterFlags.parse(values)
    process = build_master(flags)
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    yield Running(process, url, headers)
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
        running.url + path, data=json.dumps(body), headers={**HEADERS, **running.headers}
    ) as resp:
        text = await resp.text()
    assert resp.status == 400
    assert "HTTP/1.1" in text and "\n" not in text.strip()
    m = running.master
    assert not m.frameworks and not m.agents and not m.events.subscribers


def subscribe_then_reset(port: int, headers: dict[str, str]) -> None:
    """Send a complete SUBSCRIBE and reset the connection (RST) without reading a byte."""
    body = json.dumps(SUBSCRIBE).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/scheduler HTTP/1.1\r\nHost: master\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_a_client_that_resets_during_the_handshake_leaves_no_ghost(running: Running) -> None:
    agent = running.agent()
    await agent.start()
    try:
        for _ in range(5):
            await asyncio.to_thread(subscribe_then_reset, running.port, running.headers)
        m = running.master
        # Whether the master saw the SUBSCRIBE (a disconnected framework, failing over for an
        # hour) or not (nothing registered), none of them is connected or holds an offer.
        await until(lambda: all(not f.connected and not f.offers for f in m.frameworks.values()))
        assert all(not f.active for f in m.frameworks.values())
        # A well-behaved framework is not starved: it gets the whole agent.
        async with MiniScheduler(running.url, headers=running.headers) as s:
            await s.wait_for(lambda: any(
                r["name"] == "cpus" and r["scalar"]["value"] == 2 for o in s.offers for r in o["resources"]))
        assert not any(f.connected for f in m.frameworks.values())
    finally:
        await agent.stop()


async def test_a_dropped_framework_without_failover_timeout_gives_its_offers_to_others(running: Running) -> None:
    agent = running.agent()
    await agent.start()
    try:
        async with MiniScheduler(running.url, name="first", headers=running.headers) as first:
            await first.wait_for(lambda: first.offers)  # holds the whole agent
            async with MiniScheduler(running.url, name="second", headers=running.headers) as second:
                m = running.master
                assert [o.framework_id for o in m.offers.values()] == [first.framework_id]
                first.drop_connection()  # failover_timeout 0: removed as soon as noticed
                await second.wait_for(lambda: second.offers)
                assert first.framework_id in m.completed_frameworks
                assert [o.framework_id for o in m.offers.values()] == [second.framework_id]
    finally:
        await agent.stop()
