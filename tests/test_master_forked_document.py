"""Big documents made by a forked copy of the master (`mezzo.master.forked_document`): the
same bytes as on the loop, keep-alive and framing kept, the master's loop free meanwhile, and
a client that goes away or stops reading costs nothing but its own connection."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator

import psutil
import pytest
from test_master_http import Running, running  # noqa: F401  (the fixture)

from mezzo.api import operator as op
from mezzo.api.codec import encode
from mezzo.master import forked_document, views
from mezzo.testing.emulated_agent import EmulatedAgent

pytestmark = pytest.mark.skipif(not forked_document.available(), reason="needs Linux's fork and pidfd")

FORKED = "made and written by a forked copy"


@pytest.fixture
def always_fork(running: Running, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setattr(forked_document, "MIN_ENTRIES", 0)
    monkeypatch.setitem(running.process.server.flags, "forked_documents", "always")
    caplog.set_level(logging.DEBUG, logger="mezzo.master.http")
    return caplog


def _forks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if FORKED in r.getMessage()]


async def _agents(running: Running, count: int) -> list[EmulatedAgent]:  # noqa: F811
    agents = [EmulatedAgent(running.url, hostname=f"f{i}") for i in range(count)]
    for agent in agents:
        await agent.start()
    return agents


async def test_the_forked_state_is_the_document_and_the_connection_stays_usable(
    running: Running, always_fork: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    agents = await _agents(running, 5)
    try:
        expected = json.loads(json.dumps(views.state_json(running.master, running.process.server.flags)))
        for _ in range(3):  # one kept-alive connection: each answer's framing must be whole
            async with running.session.get(running.url + "/master/state") as resp:
                assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
                assert json.loads(await resp.text()) == expected
        async with running.session.get(running.url + "/master/state?jsonp=cb") as resp:
            wrapped = await resp.text()
        assert wrapped.startswith("cb(") and wrapped.endswith(");")
        assert json.loads(wrapped[3:-2]) == expected
        assert len(_forks(always_fork)) == 4
    finally:
        for agent in agents:
            await agent.stop()


async def test_forked_operator_answers_are_the_encoded_answers(
    running: Running, always_fork: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    agents = await _agents(running, 3)
    try:
        for call_type in ("GET_STATE", "GET_AGENTS", "GET_TASKS", "GET_EXECUTORS", "GET_FRAMEWORKS"):
            async with running.session.post(running.url + "/api/v1", json={"type": call_type},
                                            headers={"Accept": "application/json"}) as resp:
                assert resp.status == 200
                body = await resp.read()
            key = call_type.lower()
            t = op.CallType(call_type)
            assert body == encode(op.Response(type=t, **{key: getattr(views, key)(running.master)}))
        assert len(_forks(always_fork)) == 5
    finally:
        for agent in agents:
            await agent.stop()


async def test_the_masters_loop_runs_while_the_copy_makes_the_document(
    running: Running, always_fork: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The making runs in the child: while a document's pieces sleep (in the child), the
    master answers other requests, all before the document is done."""
    made = views.state_pieces

    def slow(master: object, flags: dict[str, str]) -> Iterator[bytes]:
        for piece in made(master, flags):  # type: ignore[arg-type]
            time.sleep(0.2)
            yield piece

    monkeypatch.setattr(views, "state_pieces", slow)

    async def read_document() -> str:
        async with running.session.get(running.url + "/master/state") as resp:
            return await resp.text()

    others = {p.pid for p in psutil.Process().children()}
    document = asyncio.ensure_future(read_document())
    await asyncio.sleep(0.2)  # the fork has happened
    for _ in range(5):
        async with running.session.get(running.url + "/health") as resp:
            assert resp.status == 200
    assert not document.done()
    # The copy holds its connection and its report pipe, nothing else of the master's (the
    # listening socket, the agents' connections).
    copies = [p for p in psutil.Process().children() if p.pid not in others]
    assert len(copies) == 1
    held = os.listdir(f"/proc/{copies[0].pid}/fd")
    assert len(held) <= 5, held
    # ... runs below the master, and is the one the kernel kills if memory runs out.
    assert copies[0].nice() == psutil.Process().nice() + forked_document.CHILD_NICENESS
    with open(f"/proc/{copies[0].pid}/oom_score_adj") as adj:
        assert adj.read().strip() == "1000"
    assert json.loads(await document)["slaves"] == []
    assert len(_forks(always_fork)) == 1


async def test_a_client_that_goes_away_costs_only_its_connection(
    running: Running, always_fork: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """A client that reads the head and closes, and one that stops reading: the child gives up
    (at once, or after CHILD_TIMEOUT), the master drops that connection, reaps the child and
    serves the next document whole."""
    monkeypatch.setattr(forked_document, "CHILD_TIMEOUT", 0.5)
    made = views.state_pieces

    def huge(master: object, flags: dict[str, str]) -> Iterator[bytes]:
        yield b'{"junk":"'
        for _ in range(64):
            yield b"x" * (1 << 20)
        yield b'"}'

    monkeypatch.setattr(views, "state_pieces", huge)
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    for read_head_then_close in (True, False):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /master/state HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        if read_head_then_close:
            writer.close()
        deadline = time.monotonic() + 10
        while not any("did not write the whole document" in r.getMessage() for r in always_fork.records):
            assert time.monotonic() < deadline, "the master did not give the document up"
            await asyncio.sleep(0.05)
        if not read_head_then_close:
            assert await asyncio.wait_for(_drained(reader), 5) is True  # the master closed it
            writer.close()
        pids = [int(r.getMessage().split("pid ")[1].split(")")[0]) for r in always_fork.records
                if "did not write the whole document" in r.getMessage()]
        with pytest.raises(ChildProcessError):
            os.waitpid(pids[-1], os.WNOHANG)  # reaped
        assert [r for r in always_fork.records if r.levelno >= logging.ERROR] == []
        always_fork.clear()
    monkeypatch.setattr(views, "state_pieces", made)
    state = await running.get_json("/master/state")
    assert state["slaves"] == []


async def _drained(reader: asyncio.StreamReader) -> bool:
    while await reader.read(1 << 20):
        pass
    return True


async def test_a_small_master_makes_its_documents_on_the_loop(
    running: Running, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.DEBUG, logger="mezzo.master.http")
    assert forked_document.MIN_ENTRIES > 1000
    await running.get_json("/master/state")
    assert _forks(caplog) == []


async def test_a_failed_fork_makes_the_document_on_the_loop(
    running: Running, always_fork: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forked_document.os, "fork", no_fork)
    state = await running.get_json("/master/state")
    assert state == json.loads(json.dumps(views.state_json(running.master, running.process.server.flags)))
    assert any("cannot fork a copy" in r.getMessage() for r in always_fork.records)
    assert _forks(always_fork) == []


async def test_the_copy_reports_its_time_and_full_collections_wait_for_it(
    running: Running, always_fork: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """While a copy lives the parent makes no full collection (it would copy every page the
    two share); the thresholds are back once the copy is gone."""
    import gc

    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    made = views.state_pieces

    def watched(master: object, flags: dict[str, str]) -> Iterator[bytes]:
        time.sleep(0.3)  # in the child: the parent is checked meanwhile
        yield from made(master, flags)  # type: ignore[arg-type]

    monkeypatch.setattr(views, "state_pieces", watched)

    async def read_document() -> dict[str, object]:
        return await running.get_json("/master/state")

    document = asyncio.ensure_future(read_document())
    await asyncio.sleep(0.15)
    seen.append(gc.get_threshold())
    await document
    assert seen[0][2] == forked_document.NO_FULL_COLLECTION and seen[0][:2] == before[:2]
    assert gc.get_threshold() == before
    line = _forks(always_fork)[0]
    assert "its CPU" in line and "waiting for the client" in line


@pytest.mark.parametrize("mode, spare, forks", [
    ("auto", True, True), ("auto", False, False), ("always", False, True), ("never", True, False),
])
async def test_forked_documents_flag(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,  # noqa: F811
    mode: str, spare: bool, forks: bool,
) -> None:
    """`--forked_documents`: auto forks only when a CPU is free for the copy."""
    caplog.set_level(logging.DEBUG, logger="mezzo.master.http")
    monkeypatch.setattr(forked_document, "MIN_ENTRIES", 0)
    monkeypatch.setattr(forked_document, "spare_cpu", lambda: spare)
    monkeypatch.setitem(running.process.server.flags, "forked_documents", mode)
    await running.get_json("/master/state")
    assert bool(_forks(caplog)) is forks


def test_the_flag_takes_three_values() -> None:
    from mezzo.core.errors import ConfigError
    from mezzo.master.flags import MasterFlags

    assert MasterFlags.parse({"forked_documents": "never"}).raw["forked_documents"] == "never"
    with pytest.raises(ConfigError, match="--forked_documents: must be auto, always or never"):
        MasterFlags.parse({"forked_documents": "sometimes"})


async def test_a_copy_that_fails_drops_the_connection_and_says_so(
    running: Running, always_fork: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """A bug in the making (here: a piece that raises in the child) ends the answer short
    (the client sees the connection close mid-body, never a false end) and is a warning."""
    import aiohttp

    made = views.state_pieces

    def broken(master: object, flags: dict[str, str]) -> Iterator[bytes]:
        yield b'{"partial":'
        raise ValueError("a bug")

    monkeypatch.setattr(views, "state_pieces", broken)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with running.session.get(running.url + "/master/state") as resp:
            await resp.read()
    warnings = [r for r in always_fork.records if r.levelno == logging.WARNING]
    assert any("failed making the document" in r.getMessage() for r in warnings)
    monkeypatch.setattr(views, "state_pieces", made)
    assert (await running.get_json("/master/state"))["slaves"] == []
