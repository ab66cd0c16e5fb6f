"""RecordStream on a real aiohttp server on loopback: bursts, closing, merging agent calls."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from mezzo.api.common import AgentID, FrameworkID, TaskID, TaskState, TaskStatus
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentPong,
    AgentStatusUpdate,
    merge_status_updates,
)
from mezzo.net.client import open_stream
from mezzo.net.stream import RecordStream


async def serve_stream(produce) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        stream = RecordStream(request)
        await stream.open()
        produce(stream)
        return await stream.serve()

    app = web.Application()
    app.router.add_post("/stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/stream"


async def test_a_burst_arrives_whole_and_in_order_then_the_stream_ends() -> None:
    def produce(stream: RecordStream) -> None:
        async def burst() -> None:
            for i in range(2000):
                assert stream.send(b'{"n":%d}' % i)
                if i % 500 == 0:
                    await asyncio.sleep(0)  # some records alone, most queued together
            stream.close()

        asyncio.get_running_loop().create_task(burst())

    runner, url = await serve_stream(produce)
    try:
        async with aiohttp.ClientSession() as session:
            stream = await open_stream(session, url, b"{}")
            got = [record async for record in stream.records()]
            stream.close()
        assert got == [b'{"n":%d}' % i for i in range(2000)]
    finally:
        await runner.cleanup()


async def test_send_after_close_is_refused() -> None:
    closed: list[RecordStream] = []

    def produce(stream: RecordStream) -> None:
        stream.send(b'{"a":1}')
        stream.close()
        closed.append(stream)

    runner, url = await serve_stream(produce)
    try:
        async with aiohttp.ClientSession() as session:
            stream = await open_stream(session, url, b"{}")
            assert [r async for r in stream.records()] == [b'{"a":1}']
            stream.close()
        await asyncio.wait_for(closed[0].closed, 5)
        assert closed[0].send(b'{"b":2}') is False
    finally:
        await runner.cleanup()


def _update(task: str, n: int) -> AgentCall:
    status = TaskStatus(task_id=TaskID(value=task), state=TaskState.TASK_RUNNING, uuid=bytes([n]) * 16)
    return AgentCall(type=AgentCallType.STATUS_UPDATE, agent_id=AgentID(value="a1"),
                     status_update=AgentStatusUpdate(framework_id=FrameworkID(value="f"), status=status))


def test_merge_status_updates_keeps_order_around_other_calls() -> None:
    pong = AgentCall(type=AgentCallType.PONG, agent_id=AgentID(value="a1"), pong=AgentPong(ping_id=1))
    merged = merge_status_updates([_update("t1", 1), _update("t2", 2), pong, _update("t3", 3)])
    assert [c.type for c in merged] == ["STATUS_UPDATE", "PONG", "STATUS_UPDATE"]
    first, _, last = merged
    assert first.status_update is None
    assert [u.status.task_id.value for u in first.status_updates] == ["t1", "t2"]
    # A lone update travels in the single-update field, as before batching existed.
    assert last.status_update is not None and last.status_update.status.task_id.value == "t3"
    assert last.status_updates == []
    assert merged[1] is pong


async def test_idle_streams_share_one_timer_and_notice_clients_leaving(monkeypatch) -> None:
    """Many idle streams: one liveness timer for all of them (not one each), and a client that
    goes away while its stream is idle ends that stream, and only that one."""
    from mezzo.net import stream as stream_module

    monkeypatch.setattr(stream_module, "IDLE_CHECK_SECONDS", 0.05)
    opened: list[RecordStream] = []
    runner, url = await serve_stream(opened.append)
    try:
        async with aiohttp.ClientSession() as session:
            clients = [await open_stream(session, url, b"{}") for _ in range(20)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while len(opened) < 20 or any(s._wakeup is None for s in opened):
                assert loop.time() < deadline, "streams never went idle"
                await asyncio.sleep(0.01)
            idle = stream_module._idle_streams()
            assert idle.streams == set(opened) and idle.timer is not None
            scheduled = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
            assert len([h for h in scheduled if getattr(h._callback, "__self__", None) is idle]) == 1
            clients[0].close()
            first = opened[0]
            reason = await asyncio.wait_for(first.closed, 5)
            assert reason == "client disconnected"
            assert not any(s.is_closed for s in opened[1:])
            for client in clients[1:]:
                client.close()
    finally:
        await runner.cleanup()


async def test_idle_checks_go_round_in_batches(monkeypatch) -> None:
    """With more idle streams than a batch, each tick checks one batch: every stream is still
    checked within ceil(streams / batch) ticks."""
    from mezzo.net import stream as stream_module

    monkeypatch.setattr(stream_module, "IDLE_CHECK_SECONDS", 0.02)
    monkeypatch.setattr(stream_module, "IDLE_CHECK_BATCH", 3)
    opened: list[RecordStream] = []
    runner, url = await serve_stream(opened.append)
    try:
        async with aiohttp.ClientSession() as session:
            clients = [await open_stream(session, url, b"{}") for _ in range(8)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while len(opened) < 8 or any(s._wakeup is None for s in opened):
                assert loop.time() < deadline, "streams never went idle"
                await asyncio.sleep(0.01)
            for client in clients:
                client.close()
            reasons = await asyncio.wait_for(asyncio.gather(*(s.closed for s in opened)), 5)
            assert set(reasons) == {"client disconnected"}
    finally:
        await runner.cleanup()
