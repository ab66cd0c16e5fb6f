"""Offer constraints over real HTTP on loopback: a framework constrained to `rack == r2` is
offered only the agent on r2; UPDATE_FRAMEWORK with a bad regex answers 400 and changes
nothing; UPDATE_FRAMEWORK with new constraints moves the next offers."""

from __future__ import annotations

import asyncio
import json

from mezzo.api.codec import convert
from mezzo.api.common import Attribute
from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import JSON, Running, running  # noqa: F401  (fixture)


def rack(value: str) -> dict:
    return {"role_constraints": {"*": {"groups": [{"attribute_constraints": [{
        "selector": {"attribute_name": "rack"},
        "predicate": {"text_matches": {"regex": value}},
    }]}]}}}


async def test_offer_constraints_over_http(running: Running) -> None:  # noqa: F811
    agents = []
    for host, value in (("a1", "r1"), ("a2", "r2")):
        agent = EmulatedAgent(running.url, hostname=host)
        agent.info.attributes = [convert(
            {"name": "rack", "type": "TEXT", "text": {"value": value}}, Attribute)]
        agents.append(agent)
        await agent.start()
    try:
        for agent in agents:
            await asyncio.wait_for(agent.subscribed.wait(), 10)
        info = {"user": "u", "name": "f"}
        body = {"type": "SUBSCRIBE",
                "subscribe": {"framework_info": info, "offer_constraints": rack("r[2]")}}
        resp = await running.session.post(running.url + "/api/v1/scheduler",
                                          data=json.dumps(body), headers=JSON)
        assert resp.status == 200
        stream_id = resp.headers["Mesos-Stream-Id"]
        buf = b""
        events: list[dict] = []

        async def next_of(kind: str) -> dict:
            nonlocal buf
            while True:
                for i, e in enumerate(events):
                    if e["type"] == kind:
                        return events.pop(i)
                buf += await asyncio.wait_for(resp.content.readany(), 10)
                while b"\n" in buf:
                    length, rest = buf.split(b"\n", 1)
                    if len(rest) < int(length):
                        break
                    events.append(json.loads(rest[: int(length)]))
                    buf = rest[int(length):]

        fid = (await next_of("SUBSCRIBED"))["subscribed"]["framework_id"]
        offers = (await next_of("OFFERS"))["offers"]["offers"]
        assert [o["hostname"] for o in offers] == ["a2"]
        hdr = {**JSON, "Mesos-Stream-Id": stream_id}
        info["id"] = fid

        def update(constraints: dict) -> dict:
            return {"type": "UPDATE_FRAMEWORK", "framework_id": fid, "update_framework": {
                "framework_info": info, "offer_constraints": constraints}}

        status, text, _ = await running.post("/api/v1/scheduler", update(rack("(r1")), hdr)
        assert status == 400
        assert text.startswith("Offer constraints are not valid:") and "'(r1'" in text
        status, _, _ = await running.post("/api/v1/scheduler", update(rack("r1")), hdr)
        assert status == 200
        # a2 is still held in the first offer; the next allocation offers a1 only.
        offers = (await next_of("OFFERS"))["offers"]["offers"]
        assert [o["hostname"] for o in offers] == ["a1"]
        resp.close()
    finally:
        for agent in agents:
            await agent.stop()
