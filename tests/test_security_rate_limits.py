"""Framework rate limiting (issue 15 §4, Mesos's `--rate_limits`): the limiter's arithmetic on
injected time, Mesos's configuration checks, and a real master on loopback where a flooding
principal gets 429 with Mesos's message while the others' calls all go through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.flags import MasterFlags
from mezzo.security.authentication import basic_header
from mezzo.security.rate_limits import Limiter, RateLimited, RateLimits, load_rate_limits
from tests.test_master_http import JSON
from tests.test_security_authentication import ALL_REALMS, Secured, start_master

ALICE = {"Authorization": basic_header("alice", "wonderland")}
BOB = {"Authorization": basic_header("bob", "builder")}


# ---------------------------------------------------------------- the limiter (no I/O)


def test_permits_are_spaced_and_capacity_bounds_the_waiting() -> None:
    limiter = Limiter(qps=2.0, capacity=2)
    assert limiter.admit(10.0) == 0.0          # the first goes at once...
    limiter.done()                             # ...and is through
    assert limiter.admit(10.0) == 0.5          # then one every 1/qps: these two wait
    assert limiter.admit(10.0) == 1.0
    with pytest.raises(RateLimited, match=r"capacity\(2\) exceeded"):
        limiter.admit(10.0)                    # two waiting: full
    limiter.done()
    assert limiter.admit(10.5) == 1.0          # room again; its permit comes after theirs
    limiter.done()
    limiter.done()
    assert limiter.admit(20.0) == 0.0          # idle long enough: at once again


def test_who_is_throttled_by_what() -> None:
    limits = RateLimits.parse({"limits": [{"principal": "a", "qps": 1},
                                          {"principal": "free"}],
                               "aggregate_default_qps": 5, "aggregate_default_capacity": 3})
    assert limits.limiter_for("a", True) is limits.limiters["a"]
    assert limits.limiter_for("free", True) is None              # listed without qps
    assert limits.limiter_for("other", True) is limits.default   # the aggregate one
    assert limits.limiter_for(None, True) is limits.default
    assert limits.limiter_for("other", False) is None            # not a registered framework
    assert RateLimits.parse({"limits": []}).limiter_for("x", True) is None


@pytest.mark.parametrize(("doc", "message"), [
    ({"limits": [{"principal": "a", "qps": 1}, {"principal": "a"}]}, "Duplicate principal a"),
    ({"limits": [{"principal": "a", "qps": 0}]}, "Invalid qps: 0. It must be a positive number"),
    ({"aggregate_default_qps": -1}, "Invalid aggregate_default_qps: -1"),
    ({"limits": [{"qps": 1}]}, "principal"),
    ({"limits": [{"principal": "a", "qps": 1, "capacity": -2}]}, "capacity"),
    ({"limit": []}, "unknown field"),
    ([], "JSON object"),
])
def test_bad_rate_limits_are_one_line_errors(doc: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RateLimits.parse(doc)


def test_flag_inline_or_file(tmp_path: Path) -> None:
    (tmp_path / "limits.json").write_text('{"limits": [{"principal": "a", "qps": 3}]}')
    assert load_rate_limits(f"file://{tmp_path / 'limits.json'}").limiters["a"] is not None
    assert load_rate_limits('{"aggregate_default_qps": 1}').default is not None
    with pytest.raises(ConfigError, match="invalid JSON"):
        MasterFlags.parse({"rate_limits": "{nope"})
    with pytest.raises(ConfigError, match="cannot read"):
        MasterFlags.parse({"rate_limits": "/nonexistent/limits.json"})


# ---------------------------------------------------------------- a master on loopback


async def limited_master(tmp_path: Path, limits: dict[str, Any]) -> tuple[Any, Any, str]:
    return await start_master(tmp_path, {**ALL_REALMS, "rate_limits": json.dumps(limits)})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def subscribe(m: Secured, headers: dict[str, str], name: str) -> tuple[Any, str, str]:
    info = {"user": "u", "name": name}
    resp = await m.session.post(
        m.url + "/api/v1/scheduler",
        data=json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}),
        headers={**JSON, **headers, "Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    buf = b""
    while b"\n" not in buf or len(buf.split(b"\n", 1)[1]) < int(buf.split(b"\n", 1)[0]):
        buf += await asyncio.wait_for(resp.content.readany(), 10)
    length, rest = buf.split(b"\n", 1)
    event = json.loads(rest[: int(length)])
    return resp, event["subscribed"]["framework_id"]["value"], resp.headers["Mesos-Stream-Id"]


async def flood(m: Secured, headers: dict[str, str], framework_id: str, stream_id: str,
                count: int) -> list[tuple[int, str]]:
    async def revive() -> tuple[int, str]:
        async with m.session.post(
                m.url + "/api/v1/scheduler",
                data=json.dumps({"type": "REVIVE", "framework_id": {"value": framework_id}}),
                headers={**JSON, **headers, "Mesos-Stream-Id": stream_id}) as r:
            return r.status, await r.text()
    return list(await asyncio.gather(*(revive() for _ in range(count))))


async def test_the_flooding_principal_gets_429_and_others_are_unaffected(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    process, runner, url = await limited_master(tmp_path, {
        "limits": [{"principal": "bob", "qps": 2, "capacity": 2}, {"principal": "alice"}]})
    m = Secured(process, url, session)
    try:
        bob_stream, bob_id, bob_sid = await subscribe(m, BOB, "flood")
        alice_stream, alice_id, alice_sid = await subscribe(m, ALICE, "calm")
        bob_results, alice_results = await asyncio.gather(
            flood(m, BOB, bob_id, bob_sid, 10), flood(m, ALICE, alice_id, alice_sid, 10))
        assert all(status == 202 for status, _ in alice_results), alice_results
        refused = [text for status, text in bob_results if status == 429]
        accepted = [status for status, _ in bob_results if status == 202]
        assert len(refused) + len(accepted) == 10 and 1 <= len(accepted) <= 3, bob_results
        assert refused and set(refused) == {"Message REVIVE dropped: capacity(2) exceeded"}
        # Mesos's per-principal counters: every call received, only the admitted processed.
        status, text, _ = await m.request("GET", "/metrics/snapshot", ALICE)
        assert status == 200, text
        metrics = json.loads(text)
        assert metrics["frameworks/bob/messages_received"] == 10
        assert metrics["frameworks/bob/messages_processed"] == len(accepted)
        assert metrics["frameworks/alice/messages_processed"] == 10
        bob_stream.close()
        alice_stream.close()
    finally:
        await runner.cleanup()


async def test_aggregate_default_limits_everyone_not_listed(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    process, runner, url = await limited_master(tmp_path, {
        "limits": [{"principal": "bob"}],
        "aggregate_default_qps": 1, "aggregate_default_capacity": 1})
    m = Secured(process, url, session)
    try:
        alice_stream, alice_id, alice_sid = await subscribe(m, ALICE, "aggregated")
        bob_stream, bob_id, bob_sid = await subscribe(m, BOB, "unlimited")
        alice_results, bob_results = await asyncio.gather(
            flood(m, ALICE, alice_id, alice_sid, 6), flood(m, BOB, bob_id, bob_sid, 6))
        assert all(status == 202 for status, _ in bob_results), bob_results
        assert [t for s, t in alice_results if s == 429] and all(
            t == "Message REVIVE dropped: capacity(1) exceeded" for s, t in alice_results if s == 429)
        alice_stream.close()
        bob_stream.close()
    finally:
        await runner.cleanup()
