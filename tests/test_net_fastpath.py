"""The fast path of the scheduler API (mezzo.net.fastpath) answers exactly as aiohttp's handler
chain does: every request below is sent twice on loopback, once with the master's fast path on
and once off, and the two answers must be the same bytes (but the Date), change the master's
counters the same way and reach the per-endpoint histogram once each."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from mezzo.master.flags import MasterFlags
from mezzo.master.main import build_master
from mezzo.net.fastpath import FastPathRunner, render
from mezzo.net.http import Reply
from tests.test_master_http import SUBSCRIBE, serve_on_loopback


class Master:
    def __init__(self, process, runner: FastPathRunner, url: str) -> None:
        self.process = process
        self.server = process.server
        self.runner = runner
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.url = url

    @property
    def answered(self) -> int:
        return self.runner.server.answered  # type: ignore[union-attr]


@pytest.fixture
async def master() -> AsyncIterator[Master]:
    flags = MasterFlags.parse({"registry": "in_memory", "port": "0", "ip": "127.0.0.1",
                               "allocation_interval": "50ms"})
    process = build_master(flags)
    process.server.max_body_bytes = 64 * 1024
    process.master.recover(process.registrar.recover())
    runner, url = await serve_on_loopback(process, flags)
    assert isinstance(runner, FastPathRunner)
    yield Master(process, runner, url)
    await runner.cleanup()


async def exchange(m: Master, raw: bytes, *, split: bool = False) -> bytes:
    """Send `raw` on a new connection and return the whole answer (head and body); `split`:
    the head, then the body a moment later, as Python's http.client (pymesos) writes them."""
    reader, writer = await asyncio.open_connection(m.host, m.port)
    try:
        if split:
            head, _, body = raw.partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            raw = body
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        found = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        body = await reader.readexactly(int(found.group(1))) if found else b""
        return head + body
    finally:
        writer.close()


def request(m: Master, body: bytes, *, path: str = "/api/v1/scheduler", stream_id: str | None = None,
            headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {m.host}:{m.port}", "Accept-Encoding: identity",
             f"Content-Length: {len(body)}"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if stream_id is not None:
        all_headers["Mesos-Stream-Id"] = stream_id
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", answer)


def counters(m: Master) -> dict[str, float]:
    """The counters a call moves as it is handled (`master/messages_*`, `master/valid_*`...,
    each framework's `calls/*`, each principal's `messages_*`); not gauges, which a call sets
    once (a SUPPRESS twice is suppressed once), nor the allocator's (a REVIVE's allocation run
    comes at its own time)."""
    values = m.server.metrics_snapshot()
    return {k: v for k, v in values.items()
            if re.search(r"^master/(messages|valid|invalid|dropped)|/calls|/messages_", k)}


async def subscribe(m: Master, name: str = "f", principal: str | None = None) -> tuple[dict, str, aiohttp.ClientResponse, aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    body = json.loads(json.dumps(SUBSCRIBE))
    body["subscribe"]["framework_info"]["name"] = name
    if principal:
        body["subscribe"]["framework_info"]["principal"] = principal
    resp = await session.post(m.url + "/api/v1/scheduler", data=json.dumps(body),
                              headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert resp.status == 200
    stream_id = resp.headers["Mesos-Stream-Id"]
    while not m.process.master.frameworks:
        await asyncio.sleep(0.01)
    framework_id = {"value": next(f.id for f in m.process.master.frameworks.values() if f.info.name == name)}
    return framework_id, stream_id, resp, session


def histogram_count(m: Master, endpoint: str) -> float:
    histogram = m.server.http_metrics.http_seconds
    assert histogram is not None
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {"endpoint": endpoint, "method": "POST"}:
                return sample.value
    return 0.0


async def test_fast_and_slow_answers_are_the_same_bytes(master: Master) -> None:
    m = master
    fid, sid, resp, session = await subscribe(m, principal="p1")
    other_fid, _, other_resp, other_session = await subscribe(m, name="g")

    def call(kind: str, **payload: object) -> bytes:
        return json.dumps({"type": kind, "framework_id": fid, **payload}).encode()

    cases: list[tuple[str, bytes, bool]] = [
        # (what, request, taken by the fast path when it is on)
        ("revive", request(m, call("REVIVE"), stream_id=sid), True),
        ("suppress", request(m, call("SUPPRESS"), stream_id=sid), True),
        ("reconcile", request(m, call("RECONCILE", reconcile={"tasks": []}), stream_id=sid), True),
        ("reconcile an unknown task", request(m, call("RECONCILE", reconcile={"tasks": [
            {"task_id": {"value": "nope"}}]}), stream_id=sid), True),
        ("decline nothing", request(m, call("DECLINE", decline={"offer_ids": []}), stream_id=sid), True),
        ("update_framework", request(m, call("UPDATE_FRAMEWORK", update_framework={"framework_info": {
            "user": "u", "name": "f", "id": fid, "principal": "p1"}}), stream_id=sid), True),
        ("charset in Content-Type", request(m, call("REVIVE"), stream_id=sid,
                                            headers={"Content-Type": "application/json; charset=utf-8"}), True),
        ("under /master", request(m, call("REVIVE"), stream_id=sid, path="/master/api/v1/scheduler"), True),
        ("not JSON", request(m, b"{not json", stream_id=sid), True),
        ("JSON but no type", request(m, b'{"framework_id": {"value": "x"}}', stream_id=sid), True),
        ("wrong field type", request(m, b'{"type": ["REVIVE"]}', stream_id=sid), True),
        ("UNKNOWN", request(m, call("UNKNOWN"), stream_id=sid), True),
        ("unknown framework", request(m, json.dumps({"type": "REVIVE", "framework_id": {"value": "zz"}}).encode(),
                                      stream_id=sid), True),
        ("wrong stream id", request(m, call("REVIVE"), stream_id="0" * 36), True),
        ("another framework's stream", request(m, json.dumps({"type": "REVIVE", "framework_id": other_fid})
                                               .encode(), stream_id=sid), True),
        ("kill of an unknown task", request(m, call("KILL", kill={"task_id": {"value": "t"}}), stream_id=sid), True),
        ("acknowledge with a bad uuid", request(m, call("ACKNOWLEDGE", acknowledge={
            "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "!!"}), stream_id=sid), True),
        ("accept of an unknown offer", request(m, call("ACCEPT", accept={"offer_ids": [{"value": "o"}],
                                                                          "operations": []}), stream_id=sid), True),
        ("SUBSCRIBE with a stream id", request(m, json.dumps(SUBSCRIBE).encode(), stream_id=sid), True),
        ("SUBSCRIBE with a stream id, Accept text", request(m, json.dumps(SUBSCRIBE).encode(), stream_id=sid,
                                                            headers={"Accept": "text/html"}), True),
        ("RECONCILE_OPERATIONS, Accept text", request(m, call("RECONCILE_OPERATIONS", reconcile_operations={}),
                                                      stream_id=sid, headers={"Accept": "text/plain"}), True),
        # Not plain: aiohttp's chain answers, fast path on or off.
        ("no stream id", request(m, call("REVIVE")), False),
        ("trailing slash", request(m, call("REVIVE"), stream_id=sid, path="/api/v1/scheduler/"), False),
        ("query", request(m, call("REVIVE"), stream_id=sid, path="/api/v1/scheduler?x=1"), False),
        ("text/plain body", request(m, call("REVIVE"), stream_id=sid, headers={"Content-Type": "text/plain"}), False),
        ("gzip", request(m, call("REVIVE"), stream_id=sid, headers={"Content-Encoding": "gzip"}), False),
        ("over the size limit", request(m, b" " * (64 * 1024 + 1), stream_id=sid), False),
        ("empty body", request(m, b"", stream_id=sid), False),
        ("Connection: close", request(m, call("REVIVE"), stream_id=sid, headers={"Connection": "close"}), False),
    ]
    for (what, raw, fast), split in itertools.product(cases, (False, True)):
        what += ", head and body apart" if split else ""
        before = counters(m)
        answered = m.answered
        m.server.fast_path = True
        on = await exchange(m, raw, split=split)
        assert m.answered == answered + (1 if fast else 0), what
        middle = counters(m)
        m.server.fast_path = False
        off = await exchange(m, raw, split=split)
        assert m.answered == answered + (1 if fast else 0), what
        after = counters(m)
        assert without_date(on) == without_date(off), what
        assert {k: middle[k] - before.get(k, 0) for k in middle} == \
               {k: after[k] - middle.get(k, 0) for k in after}, what
    assert m.server.principal_messages["p1"][0] > 0
    assert {"frameworks/p1/messages_received", "master/messages_reconcile_tasks"} <= set(counters(m))
    for r, s in ((resp, session), (other_resp, other_session)):
        r.close()
        await s.close()


async def test_each_request_is_timed_once_under_its_route(master: Master) -> None:
    m = master
    fid, sid, resp, session = await subscribe(m)
    body = json.dumps({"type": "REVIVE", "framework_id": fid}).encode()
    for path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
        for fast in (True, False):
            m.server.fast_path = fast
            before = histogram_count(m, path)
            assert (await exchange(m, request(m, body, stream_id=sid, path=path))).startswith(b"HTTP/1.1 202 ")
            assert histogram_count(m, path) == before + 1
    resp.close()
    await session.close()


async def test_keep_alive_connection_pipelined_calls_are_answered_in_order(master: Master) -> None:
    """Several calls in one segment, a slow one (no stream id: aiohttp's chain) in the middle:
    the answers come back in the order of the requests."""
    m = master
    fid, sid, resp, session = await subscribe(m)
    ok = request(m, json.dumps({"type": "REVIVE", "framework_id": fid}).encode(), stream_id=sid)
    bad = request(m, b"{", stream_id=sid)
    slow = request(m, json.dumps({"type": "REVIVE", "framework_id": fid}).encode())  # 400 from the core
    reader, writer = await asyncio.open_connection(m.host, m.port)
    statuses = []
    flood = [ok] * 60 + [slow] + [bad, ok] * 30  # past aiohttp's queue of 32 parsed requests
    for batch in ([ok, bad, ok], [ok, slow, bad, ok, ok], [ok], flood, [ok]):
        writer.write(b"".join(batch))
        for _ in batch:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            found = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
            if found and int(found.group(1)):
                await reader.readexactly(int(found.group(1)))
            statuses.append(int(head[9:12]))
    assert statuses == [202, 400, 202, 202, 400, 400, 202, 202, 202] + [202] * 60 + [400] + [400, 202] * 30 + [202]
    writer.close()
    resp.close()
    await session.close()


async def test_a_head_whose_body_never_comes_is_dropped_with_its_connection(master: Master) -> None:
    """The fast path waits for the body of a head that came alone; if the client goes away
    instead, nothing is answered or counted, and the next connection is served."""
    m = master
    fid, sid, resp, session = await subscribe(m)
    raw = request(m, json.dumps({"type": "REVIVE", "framework_id": fid}).encode(), stream_id=sid)
    _, writer = await asyncio.open_connection(m.host, m.port)
    writer.write(raw[: raw.index(b"\r\n\r\n") + 4] + b'{"type"')
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    answered = m.answered
    assert (await exchange(m, raw)).startswith(b"HTTP/1.1 202 ")
    assert m.answered == answered + 1
    resp.close()
    await session.close()


@pytest.mark.parametrize("reply", [
    Reply(202), Reply(200), Reply(400, "Failed to validate scheduler::Call: no"),
    Reply(429, "Message dropped", {"Retry-After": "1"}), Reply(405, "Expecting 'POST'", {"Allow": "POST"}),
    Reply(307, None, {"Location": "//elsewhere:5050/api/v1/scheduler"}), Reply(503, ""),
])
async def test_render_is_what_aiohttp_writes(reply: Reply) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.StreamResponse:
        return reply.response()

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        found = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        body = await reader.readexactly(int(found.group(1))) if found else b""
        writer.close()
    finally:
        await runner.cleanup()
    assert without_date(render(reply)) == without_date(head + body)


async def test_pymesos_calls_take_the_fast_path(master: Master) -> None:
    """An unmodified pymesos driver's calls (its http.client on one keep-alive connection)
    are plain: answered by the fast path (but the first on its connection), and accepted."""
    pymesos = pytest.importorskip("pymesos")

    class Quiet(pymesos.Scheduler):  # type: ignore[misc]
        def __init__(self) -> None:
            self.registered_as: str | None = None

        def registered(self, driver, framework_id, master_info):  # type: ignore[no-untyped-def]
            self.registered_as = framework_id["value"]

    sched = Quiet()
    driver = pymesos.MesosSchedulerDriver(sched, {"user": "u", "name": "pymesos-fast"},
                                          f"{m_host(master)}", use_addict=True)
    await asyncio.to_thread(driver.start)  # it asks this loop's master for /version
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while sched.registered_as is None:
            assert asyncio.get_running_loop().time() < deadline, "pymesos did not register"
            await asyncio.sleep(0.02)
        # The first request of a connection is aiohttp's (its request loop has not started).
        await asyncio.to_thread(driver.suppressOffers)
        before = master.answered
        for _ in range(3):
            await asyncio.to_thread(driver.suppressOffers)
            await asyncio.to_thread(driver.reviveOffers)
        await asyncio.to_thread(driver.reconcileTasks, [])
        assert master.answered == before + 7
        framework = master.process.master.frameworks[sched.registered_as]
        assert framework.counters["calls/revive"] == 3 and framework.counters["calls/reconcile"] == 1
    finally:
        await asyncio.to_thread(driver.stop)  # sends TEARDOWN to this loop's master: not on it
        await asyncio.to_thread(driver.join)


def m_host(m: Master) -> str:
    return f"{m.host}:{m.port}"


async def test_authenticated_frameworks_fast_and_slow_answer_the_same(tmp_path) -> None:
    """With `--authenticate_http_frameworks`: right Basic credentials take the fast path
    (the principal bound as aiohttp's chain binds it), anything else is the authentication
    middleware's 401; the same bytes either way."""
    from tests.test_security_authentication import ALICE, BOB, WRONG, start_master

    process, runner, url = await start_master(tmp_path, {"authenticate_http_frameworks": "true"})
    m = Master(process, runner, url)
    try:
        async with aiohttp.ClientSession() as session:
            body = json.loads(json.dumps(SUBSCRIBE))
            body["subscribe"]["framework_info"]["principal"] = "alice"
            resp = await session.post(url + "/api/v1/scheduler", data=json.dumps(body),
                                      headers={"Content-Type": "application/json", **ALICE})
            assert resp.status == 200
            sid = resp.headers["Mesos-Stream-Id"]
            while not process.master.frameworks:
                await asyncio.sleep(0.01)
            fid = {"value": next(iter(process.master.frameworks))}
            revive = json.dumps({"type": "REVIVE", "framework_id": fid}).encode()
            cases = [
                ("alice", request(m, revive, stream_id=sid, headers=ALICE), True),
                ("bob for alice's framework", request(m, revive, stream_id=sid, headers=BOB), True),
                ("wrong secret", request(m, revive, stream_id=sid, headers=WRONG), False),
                ("no credentials", request(m, revive, stream_id=sid), False),
                ("a Bearer token", request(m, revive, stream_id=sid, headers={"Authorization": "Bearer x"}), False),
            ]
            for what, raw, fast in cases:
                answered = m.answered
                process.server.fast_path = True
                on = await exchange(m, raw)
                assert m.answered == answered + (1 if fast else 0), what
                process.server.fast_path = False
                off = await exchange(m, raw)
                assert without_date(on) == without_date(off), what
            assert process.server.principal_messages["alice"] == [2, 2]  # only alice's REVIVEs count
            resp.close()
    finally:
        await runner.cleanup()
