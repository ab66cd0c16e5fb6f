"""Dynamic reservations end to end: a real `mezzo master` (sqlite registry) and a real
`mezzo agent` on loopback, a v1 scheduler over HTTP and operator calls. A framework reserves
with operation feedback, an operator reserves for another role, bad input is refused with
Mesos's status codes, and the reservations survive an agent restart and a master failover
(the new master rebuilds them from the re-registering agent). An operation left
unacknowledged across both is reported by the agent, reconciled by the re-subscribed
framework, resent by the agent and acknowledged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mezzo.resources import Resources
from mezzo.testing.agent_harness import MiniScheduler, Proc, start, start_agent
from mezzo.testing.processes import eventually, free_port

pytestmark = pytest.mark.slow

ENG = {"roles": ["eng"], "principal": "alice",
       "capabilities": [{"type": "MULTI_ROLE"}, {"type": "RESERVATION_REFINEMENT"}]}


def start_master(tmp: Path, port: int) -> Proc:
    return start(["master", "--ip", "127.0.0.1", "--port", str(port), "--registry", "sqlite",
                  "--work_dir", str(tmp / "master"), "--allocation_interval", "100ms"],
                 tmp / "master.log")


def reserved(role: str, principal: str, **amounts: float) -> list[dict[str, Any]]:
    return [{"name": name, "type": "SCALAR", "scalar": {"value": value},
             "reservations": [{"type": "DYNAMIC", "role": role, "principal": principal}]}
            for name, value in amounts.items()]


async def operator(session: aiohttp.ClientSession, url: str, body: dict[str, Any]
                   ) -> tuple[int, str]:
    async with session.post(url + "/api/v1", json=body,
                            headers={"Accept": "application/json"}) as resp:
        return resp.status, await resp.text()


async def agent_entry(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    async with session.get(url + "/master/state") as resp:
        state = await resp.json()
    return state["slaves"][0] if state.get("slaves") else None


def _reserved(offer: dict[str, Any]) -> Resources:
    from mezzo.api.codec import convert
    from mezzo.api.common import Resource

    return Resources.from_wire([convert(r, Resource) for r in offer["resources"]]).unallocate().reserved()


async def test_reservations_survive_agent_restart_and_master_failover(tmp_path: Path) -> None:
    port = free_port()
    master = start_master(tmp_path, port)
    agent: Proc | None = None
    try:
        agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:512")
        async with aiohttp.ClientSession() as session, \
                MiniScheduler(master.url, name="eng", framework_info=ENG) as eng:
            # 1. A framework reserves 2 cpus with an operation id: OPERATION_FINISHED, acked.
            offer = await eng.wait_for(lambda: eng.offers and eng.offers.pop(0))
            status, body = await eng.call({"type": "ACCEPT", "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                "operations": [{"type": "RESERVE", "id": {"value": "r1"}, "reserve": {
                    "resources": [dict(r, allocation_info={"role": "eng"})
                                  for r in reserved("eng", "alice", cpus=2)]}}]}})
            assert status == 202, body
            update = await eng.wait_for(lambda: next(
                (u for u in eng.operation_updates if u["state"] == "OPERATION_FINISHED"), None))
            assert update["operation_id"] == {"value": "r1"} and "uuid" in update
            code, text = await operator(session, master.url, {"type": "GET_OPERATIONS"})
            assert code == 200 and json.loads(text)["get_operations"]["operations"][0][
                "info"]["id"] == {"value": "r1"}
            # The agent checkpointed it and lists it until the acknowledgement reaches it.
            code, text = await operator(session, agent.url, {"type": "GET_OPERATIONS"})
            [on_agent] = json.loads(text)["get_operations"]["operations"]
            assert on_agent["latest_status"]["state"] == "OPERATION_FINISHED"
            status, _ = await eng.call({"type": "ACKNOWLEDGE_OPERATION_STATUS",
                                        "acknowledge_operation_status": {
                                            "agent_id": update["agent_id"],
                                            "operation_id": {"value": "r1"},
                                            "uuid": update["uuid"]["value"]}})
            assert status == 202

            async def no_operations() -> bool:
                _, text = await operator(session, master.url, {"type": "GET_OPERATIONS"})
                return not json.loads(text)["get_operations"].get("operations")

            await eventually(no_operations, 20, "the acknowledged operation to end")

            async def none_on_agent() -> bool:
                _, text = await operator(session, agent.url, {"type": "GET_OPERATIONS"})
                return not json.loads(text)["get_operations"].get("operations")

            await eventually(none_on_agent, 20, "the agent to forget the acknowledged operation")
            agent_id = update["agent_id"]["value"]

            # 2. The operator reserves memory for `ops`; bad input is refused.
            call = {"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": {"value": agent_id}, "resources": reserved("ops", "op", mem=128)}}
            assert (await operator(session, master.url, call))[0] == 202
            too_much = {"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": {"value": agent_id}, "resources": reserved("ops", "op", mem=4096)}}
            code, text = await operator(session, master.url, too_much)
            assert code == 409 and "does not contain" in text and "\n" not in text.strip()
            not_reserved = {"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
                "agent_id": {"value": agent_id},
                "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 1}}]}}
            code, text = await operator(session, master.url, not_reserved)
            assert code == 400 and "is not dynamically reserved" in text
            code, text = await operator(session, master.url, {
                "type": "UNRESERVE_RESOURCES", "unreserve_resources": {
                    "agent_id": {"value": agent_id}, "resources": reserved("web", "op", cpus=1)}})
            assert code == 409, text

            async def agent_reserved() -> dict[str, Any]:
                async with session.get(agent.url + "/state") as resp:
                    return (await resp.json())["reserved_resources_full"]

            await eventually(lambda: _has_roles(agent_reserved(), {"eng", "ops"}), 20,
                             "the agent to checkpoint both reservations")

            # 2b. Another reservation with feedback, left unacknowledged across the restarts.
            eng.offers.clear()  # the operator's reservation rescinded those
            offer = await eng.wait_for(lambda: eng.offers and eng.offers.pop(0))
            status, body = await eng.call({"type": "ACCEPT", "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                "operations": [{"type": "RESERVE", "id": {"value": "r2"}, "reserve": {
                    "resources": [dict(r, allocation_info={"role": "eng"})
                                  for r in reserved("eng", "alice", mem=64)]}}]}})
            assert status == 202, body
            await eng.wait_for(lambda: any(u["operation_id"] == {"value": "r2"}
                                           and u["state"] == "OPERATION_FINISHED"
                                           for u in eng.operation_updates))
            framework_id = eng.framework_id

            # 3. The agent restarts (SIGKILL): it recovers its reservations and reports them.
            agent.kill()
            agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:512")
            await eventually(lambda: _has_roles(agent_reserved(), {"eng", "ops"}), 20,
                             "the restarted agent to recover both reservations")

            async def master_reserved() -> set[str]:
                entry = await agent_entry(session, master.url)
                return set(entry["reserved_resources"]) if entry and entry["active"] else set()

            await eventually(lambda: _eq(master_reserved(), {"eng", "ops"}), 30,
                             "the master to see both reservations again")
            # 4. Master failover: a new master process on the same registry and port (the
            # framework does not tear down: its connection just breaks).
            master.kill()
        master = start_master(tmp_path, port)
        again = {**ENG, "id": {"value": framework_id}, "failover_timeout": 3600}
        async with aiohttp.ClientSession() as session, \
                MiniScheduler(master.url, name="eng", framework_info=again) as eng2:
            assert eng2.framework_id == framework_id

            async def none_on_agent2() -> bool:
                _, text = await operator(session, agent.url, {"type": "GET_OPERATIONS"})
                return not json.loads(text)["get_operations"].get("operations")

            async def master_reserved2() -> set[str]:
                entry = await agent_entry(session, master.url)
                return set(entry["reserved_resources"]) if entry and entry["active"] else set()

            await eventually(lambda: _eq(master_reserved2(), {"eng", "ops"}), 60,
                             "the new master to rebuild the reservations from the agent")
            # The unacknowledged operation was reported by the agent: reconciliation knows
            # it, and the agent's resent status reaches the re-subscribed framework to ack.
            status, _ = await eng2.call({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {
                "operations": [{"operation_id": {"value": "r2"}, "agent_id": {"value": agent_id}},
                               {"operation_id": {"value": "nope"}, "agent_id": {"value": agent_id}}]}})
            assert status == 202
            await eng2.wait_for(lambda: {("r2", "OPERATION_FINISHED"), ("nope", "OPERATION_UNKNOWN")}
                                <= {(u["operation_id"]["value"], u["state"])
                                    for u in eng2.operation_updates})
            resent = await eng2.wait_for(lambda: next(
                (u for u in eng2.operation_updates if "uuid" in u), None), 30)
            assert resent["operation_id"] == {"value": "r2"}
            status, _ = await eng2.call({"type": "ACKNOWLEDGE_OPERATION_STATUS",
                                         "acknowledge_operation_status": {
                                             "agent_id": {"value": agent_id},
                                             "operation_id": {"value": "r2"},
                                             "uuid": resent["uuid"]["value"]}})
            assert status == 202
            await eventually(none_on_agent2, 20, "the agent to forget r2 once acknowledged")
            # eng is offered its reserved cpus, never ops' memory.
            offer = await eng2.wait_for(lambda: next(
                (o for o in eng2.offers if _reserved(o).cpus() == 2), None), 30)
            assert _reserved(offer).mem() == 64  # eng's own r2, never ops' 128
            # And gives them back: UNRESERVE (no id: no feedback), then unreserved again.
            status, body = await eng2.call({"type": "ACCEPT", "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0.1},
                "operations": [{"type": "UNRESERVE", "unreserve": {
                    "resources": [dict(r, allocation_info={"role": "eng"})
                                  for r in reserved("eng", "alice", cpus=2)]}}]}})
            assert status == 202, body

            async def eng_cpus() -> float:
                entry = await agent_entry(session, master.url)
                return float(entry["reserved_resources"].get("eng", {}).get("cpus", 0.0)) \
                    if entry else -1.0

            await eventually(lambda: _is_zero(eng_cpus()), 20, "the unreserve")
            assert {u["operation_id"]["value"] for u in eng2.operation_updates} == {"r2", "nope"}
    finally:
        if agent is not None:
            agent.kill()
        master.kill()


async def _has_roles(awaitable: Any, roles: set[str]) -> bool:
    got = await awaitable
    return set(got) == roles


async def _is_zero(awaitable: Any) -> bool:
    return await awaitable == 0.0


async def _eq(awaitable: Any, expected: set[str]) -> bool:
    return await awaitable == expected



async def test_agent_restarted_with_too_few_resources_refuses_to_start(tmp_path: Path) -> None:
    master = start_master(tmp_path, free_port())
    agent: Proc | None = None
    try:
        agent = start_agent(tmp_path, master.address, "--resources", "cpus:4;mem:512")
        async with aiohttp.ClientSession() as session:

            async def agent_id() -> str | None:
                entry = await agent_entry(session, master.url)
                return entry["id"] if entry else None

            aid = await eventually(agent_id, 20, "the agent to register")
            code, text = await operator(session, master.url, {
                "type": "RESERVE_RESOURCES", "reserve_resources": {
                    "agent_id": {"value": aid}, "resources": reserved("ops", "op", cpus=3)}})
            assert code == 202, text

            async def checkpointed() -> bool:
                async with session.get(agent.url + "/state") as resp:
                    return "ops" in (await resp.json())["reserved_resources_full"]

            await eventually(checkpointed, 20, "the agent to checkpoint the reservation")
        agent.kill()
        agent = start_agent(tmp_path, master.address, "--resources", "cpus:2;mem:512")
        code = await eventually(lambda: agent.popen.poll(), 20, "the agent to refuse to start")
        assert code != 0
        assert "Failed to perform recovery: Checkpointed resources" in agent.log()
        assert "are incompatible with agent resources" in agent.log()
    finally:
        if agent is not None:
            agent.kill()
        master.kill()
