"""Quota over real HTTP on loopback: UPDATE_QUOTA, GET_QUOTA, GET /quota, SET_QUOTA and
REMOVE_QUOTA; a bad config answers 400 with one line; per-role quota metrics."""

from __future__ import annotations

import asyncio

import pytest

from mezzo.testing.emulated_agent import EmulatedAgent
from tests.test_master_http import JSON, Running, running  # noqa: F401  (fixture)


async def test_quota_calls_and_endpoint(running: Running) -> None:  # noqa: F811
    r = running
    agent = EmulatedAgent(r.url, hostname="a1", resources="cpus:8;mem:8192")
    await agent.start()
    try:
        await asyncio.wait_for(agent.subscribed.wait(), 10)
        update = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{
            "role": "dev", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 4}},
        }]}}
        code, text, _ = await r.post("/api/v1", update, JSON)
        assert code == 200, text
        code, text, _ = await r.post("/api/v1", {"type": "GET_QUOTA"}, {**JSON, "Accept": "application/json"})
        assert code == 200
        status = (await r.get_json("/quota"))
        assert status["configs"] == [{"role": "dev", "guarantees": {"cpus": {"value": 1.0}},
                                      "limits": {"cpus": {"value": 4.0}}}]
        assert status["infos"][0]["guarantee"][0]["name"] == "cpus"
        assert await r.get_json("/master/quota") == status
        bad = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{
            "role": "dev", "limits": {"cpus": {"value": -1}}}]}}
        code, text, _ = await r.post("/api/v1", bad, JSON)
        assert code == 400 and "Negative values not supported" in text and "\n" not in text.strip()
        metrics = await r.get_json("/metrics/snapshot")
        assert metrics["allocator/mesos/quota/roles/dev/resources/cpus/guarantee"] == 1.0
        assert metrics["allocator/mesos/quota/roles/dev/resources/cpus/limit"] == 4.0
        assert metrics["allocator/mesos/quota/roles/dev/resources/cpus/consumed"] == 0.0
        set_quota = {"type": "SET_QUOTA", "set_quota": {"quota_request": {"role": "ops", "guarantee": [
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}}]}}}
        assert (await r.post("/api/v1", set_quota, JSON))[0] == 200
        remove = {"type": "REMOVE_QUOTA", "remove_quota": {"role": "dev"}}
        assert (await r.post("/api/v1", remove, JSON))[0] == 200
        assert [c["role"] for c in (await r.get_json("/quota"))["configs"]] == ["ops"]
        code, text, _ = await r.post("/api/v1", remove, JSON)
        assert code == 400 and "has no quota set" in text
    finally:
        await agent.stop()


@pytest.mark.parametrize("call", [
    {"type": "SET_QUOTA", "set_quota": ["not", "an", "object"]},
    {"type": "SET_QUOTA", "set_quota": "x"},
    {"type": "UPDATE_QUOTA", "update_quota": 7},
    {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": "cpus"}},
    {"type": "REMOVE_QUOTA", "remove_quota": [1]},
    {"type": "SET_QUOTA", "set_quota": {"quota_request": {"role": "r", "guarantee": 7}}},
])
async def test_malformed_quota_payloads_are_400(running: Running, call: dict) -> None:  # noqa: F811
    """Found by the fuzzer (authenticated variant): a payload of the wrong type was a 500."""
    code, text, _ = await running.post("/api/v1", call, JSON)
    assert code == 400, text
    assert "\n" not in text.strip()
    assert running.master.quota_config == {}
