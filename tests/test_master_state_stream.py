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
