"""Dynamic reservations and operation feedback in the master core, on a FakeClock: RESERVE /
UNRESERVE from frameworks and operators, refinement, offers only to the role and its
descendants, UPDATE_OPERATION_STATUS / ACKNOWLEDGE_OPERATION_STATUS / RECONCILE_OPERATIONS,
bad input dropped or refused with nothing half-applied, re-registration and failover."""

from __future__ import annotations

from typing import Any

import pytest

from mezzo.api.codec import convert, to_builtins
from mezzo.api.common import (
    UUID,
    AgentID,
    FrameworkID,
    Operation,
    OperationState,
    OperationStatus,
    Resource,
)
from mezzo.api.internal import AgentCall, AgentCallType, AgentUpdateOperationStatus
from mezzo.master.core import CallRefused
from mezzo.resources import Resources
from mezzo.testing.master_cluster import (
    MasterCluster,
    ScriptedAgent,
    ScriptedScheduler,
    framework_info,
)

CAPS = ["AGENT_OPERATION_FEEDBACK", "RESOURCE_PROVIDER"]


def dyn(name: str, amount: float, *roles: str, principal: str | None = None,
        allocated: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A wire resource reserved dynamically along `roles` (bottom first)."""
    res: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": amount},
                           "reservations": [{"type": "DYNAMIC", "role": r, "principal": principal}
                                            for r in roles]}
    if labels:
        res["reservations"][-1]["labels"] = {"labels": [{"key": k, "value": v} for k, v in labels.items()]}
    if allocated:
        res["allocation_info"] = {"role": allocated}
    return res


def fw(role: str = "eng", principal: str | None = "alice", **kw: Any) -> Any:
    return framework_info(capabilities=["MULTI_ROLE", "RESERVATION_REFINEMENT"], roles=[role],
                          principal=principal, **kw)


def setup(resources: str = "cpus:4;mem:1024", role: str = "eng", principal: str | None = "alice"
          ) -> tuple[MasterCluster, ScriptedAgent, ScriptedScheduler]:
    c = MasterCluster()
    agent = c.add_agent(resources)
    agent.stream.events.clear()
    agent.subscribe(capabilities=CAPS)
    agent.next_event("SUBSCRIBED")
    s = c.add_scheduler(fw(role, principal))
    return c, agent, s


def wire(resources: list[dict[str, Any]]) -> list[Resource]:
    return [convert(r, Resource) for r in resources]


def offer(c: MasterCluster, s: ScriptedScheduler) -> Any:
    c.allocate()
    return s.next_event("OFFERS").offers.offers[0]


def accept(s: ScriptedScheduler, offer_: Any, *ops: dict[str, Any]) -> int:
    return s.call("ACCEPT", {"offer_ids": [to_builtins(offer_.id)], "operations": list(ops),
                             "filters": {"refuse_seconds": 0}})


def reserve_op(*resources: dict[str, Any], op_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "RESERVE", "reserve": {"resources": list(resources)}}
    if op_id:
        op["id"] = {"value": op_id}
    return op


def unreserve_op(*resources: dict[str, Any], op_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"type": "UNRESERVE", "unreserve": {"resources": list(resources)}}
    if op_id:
        op["id"] = {"value": op_id}
    return op


def agent_finishes(agent: ScriptedAgent, state: str = "OPERATION_FINISHED") -> tuple[Any, bytes]:
    """The agent applies the next APPLY_OPERATION and reports it (reliably)."""
    event = agent.next_event("APPLY_OPERATION").apply_operation
    status_uuid = next(agent.uuids)
    status = OperationStatus(operation_id=event.operation_info.id, state=OperationState(state),
                             uuid=UUID(value=status_uuid), agent_id=AgentID(value=agent.agent_id))
    agent.call(AgentCall(type=AgentCallType.UPDATE_OPERATION_STATUS,
                         update_operation_status=AgentUpdateOperationStatus(
                             framework_id=event.framework_id, status=status,
                             operation_uuid=event.operation_uuid)))
    return event, status_uuid


def reserved_in(o: Any) -> Resources:
    return Resources.from_wire(o.resources).unallocate().reserved()


# ---------------------------------------------------------------------------- frameworks


def test_framework_reserve_then_offer_carries_reservation_and_feedback() -> None:
    c, agent, s = setup()
    o = offer(c, s)
    assert accept(s, o, reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng",
                                       labels={"team": "a"}), op_id="r1")) == 202
    # Speculatively applied: the master's view and the allocator changed at once.
    total = c.master.agents[agent.agent_id].total
    assert total.reserved("eng").cpus() == 2 and total.cpus() == 4
    event, status_uuid = agent_finishes(agent)
    assert event.operation_info.reserve.resources[0].allocation_info is None
    update = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert update.state == "OPERATION_FINISHED" and update.operation_id.value == "r1"
    assert update.uuid.value == status_uuid
    # GET_OPERATIONS lists it until the framework acknowledges.
    [op] = c.master.get_operations()
    assert op.latest_status.state == "OPERATION_FINISHED"
    assert s.call("ACKNOWLEDGE_OPERATION_STATUS", {
        "agent_id": {"value": agent.agent_id}, "operation_id": {"value": "r1"},
        "uuid": to_builtins(UUID(value=status_uuid))["value"]}) == 202
    ack = agent.next_event("ACKNOWLEDGE_OPERATION_STATUS").acknowledge_operation_status
    assert ack.status_uuid.value == status_uuid
    assert c.master.get_operations() == []
    # The remainder came back unfiltered: the next offer holds the reservation with labels.
    o2 = offer(c, s)
    got = reserved_in(o2)
    assert got.cpus() == 2
    [item] = list(got)
    assert item.key.reservations[0].principal == "alice"
    assert item.key.reservations[0].labels == (("team", "a"),)


def test_reserved_resources_are_offered_only_to_the_role_and_descendants() -> None:
    c, agent, s = setup("cpus:2;mem:512")
    o = offer(c, s)
    accept(s, o, reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng"),
                            dyn("mem", 512, "eng", principal="alice", allocated="eng")))
    agent_finishes(agent)
    s.call("SUPPRESS", {})
    other = c.add_scheduler(fw("web", None, name="web"))
    c.allocate()
    assert other.types_pending().count("OFFERS") == 0
    child = c.add_scheduler(fw("eng/backend", None, name="child"))
    o2 = offer(c, child)
    assert reserved_in(o2).cpus() == 2
    assert o2.allocation_info.role == "eng/backend"


def test_refinement_to_a_child_role_and_unreserve_returns_it_to_the_parent() -> None:
    c, agent, s = setup("cpus:2")
    accept(s, offer(c, s), reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng")))
    agent_finishes(agent)
    s.call("TEARDOWN")
    child = c.add_scheduler(fw("eng/backend", "bob", name="child"))
    o = offer(c, child)
    refined = dyn("cpus", 2, "eng", "eng/backend", principal="bob", allocated="eng/backend")
    refined["reservations"][0]["principal"] = "alice"
    assert accept(child, o, reserve_op(refined, op_id="refine")) == 202
    agent_finishes(agent)
    assert child.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status.state \
        == "OPERATION_FINISHED"
    [item] = list(c.master.agents[agent.agent_id].total.reserved())
    assert [r.role for r in item.key.reservations] == ["eng", "eng/backend"]
    # UNRESERVE pops one level: back to `eng`.
    o2 = offer(c, child)
    assert accept(child, o2, unreserve_op(refined | {"allocation_info": {"role": "eng/backend"}})) == 202
    agent_finishes(agent)
    [item] = list(c.master.agents[agent.agent_id].total.reserved())
    assert [r.role for r in item.key.reservations] == ["eng"]
    assert c.master.agents[agent.agent_id].checkpointed.cpus() == 2


@pytest.mark.parametrize(("op", "message"), [
    (reserve_op(dyn("cpus", 8, "eng", principal="alice", allocated="eng"), op_id="x"),
     "does not contain"),
    (reserve_op(dyn("cpus", 1, "eng", principal="mallory", allocated="eng"), op_id="x"),
     "which does not match a reserved resource in the request with principal 'mallory'"),
    (reserve_op(dyn("cpus", 1, "eng", allocated="eng"), op_id="x"),
     "with no principal set"),
    (reserve_op(dyn("cpus", 1, "web", principal="alice", allocated="eng"), op_id="x"),
     "A reserve operation was attempted for a resource with role 'web', but the resource was"
     " allocated to role 'eng'"),
    (reserve_op({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                 "allocation_info": {"role": "eng"}}, op_id="x"), "is not dynamically reserved"),
    (unreserve_op(dyn("cpus", 1, "eng", principal="alice", allocated="eng"), op_id="x"),
     "does not contain"),
    (reserve_op(dyn("cpus", 1, "web", "eng", principal="alice", allocated="eng"), op_id="x"),
     "does not refine 'web'"),
])
def test_bad_framework_operations_are_dropped_with_operation_error(op, message) -> None:
    c, agent, s = setup()
    o = offer(c, s)
    before = c.master.agents[agent.agent_id].total
    assert accept(s, o, op) == 202
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_ERROR" and message in status.message, status.message
    assert status.uuid is None and status.operation_id.value == "x"
    assert c.master.agents[agent.agent_id].total == before
    assert "APPLY_OPERATION" not in agent.types_pending()
    assert c.master.get_operations() == []
    # The whole offer comes back.
    assert Resources.from_wire(offer(c, s).resources).cpus() == 4


def test_operation_error_without_id_is_silent_and_launch_after_reserve_uses_it() -> None:
    c, agent, s = setup()
    o = offer(c, s)
    launch = {"type": "LAUNCH", "launch": {"task_infos": [{
        "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": agent.agent_id},
        "command": {"value": "true"},
        "resources": [dyn("cpus", 2, "eng", principal="alice", allocated="eng")]}]}}
    assert accept(s, o, reserve_op(dyn("cpus", 9, "eng", principal="alice", allocated="eng")),
                  reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng")),
                  launch) == 202
    assert "UPDATE_OPERATION_STATUS" not in s.types_pending()
    assert agent.types_pending() == ["APPLY_OPERATION", "RUN_TASK"]
    # The reserved cpus are in use: UNRESERVE of them does not fit the next offer.
    agent_finishes(agent)
    o2 = offer(c, s)
    assert accept(s, o2, unreserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng"),
                                      op_id="u")) == 202
    assert s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status.state \
        == "OPERATION_ERROR"


def test_feedback_needs_agent_capabilities_and_launch_cannot_have_an_id() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:2")  # no AGENT_OPERATION_FEEDBACK
    s = c.add_scheduler(fw())
    o = offer(c, s)
    accept(s, o, reserve_op(dyn("cpus", 1, "eng", principal="alice", allocated="eng"), op_id="r"))
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert "does not have the required AGENT_OPERATION_FEEDBACK and RESOURCE_PROVIDER" in status.message
    o = offer(c, s)
    accept(s, o, {"type": "LAUNCH", "id": {"value": "l"}, "launch": {"task_infos": [{
        "name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": agent.agent_id},
        "command": {"value": "true"}, "resources": [{"name": "cpus", "type": "SCALAR",
                                                     "scalar": {"value": 1}}]}]}})
    update = s.next_event("UPDATE").update.status
    assert update.state == "TASK_ERROR" and "cannot be set on LAUNCH" in update.message


def test_invalid_offers_drop_operations() -> None:
    _c, _agent, s = setup()
    assert accept(s, type("O", (), {"id": {"value": "nope"}})(),
                  reserve_op(dyn("cpus", 1, "eng", principal="alice"), op_id="r")) == 202
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.message.startswith("Operation attempted with invalid offers: ")


def test_reconcile_operations_answers_every_listed_operation() -> None:
    c, agent, s = setup()
    accept(s, offer(c, s), reserve_op(dyn("cpus", 1, "eng", principal="alice", allocated="eng"),
                                      op_id="known"))
    c.master.mark_gone("gone-agent") if False else None
    c.master.unreachable_agents["far"] = (None, 0.0)
    c.master.gone_agents["gone"] = 0.0
    c.master.recovered_agents["rec"] = None
    assert s.call("RECONCILE_OPERATIONS", {"operations": [
        {"operation_id": {"value": "known"}},
        {"operation_id": {"value": "a"}, "agent_id": {"value": agent.agent_id}},
        {"operation_id": {"value": "b"}, "agent_id": {"value": "far"}},
        {"operation_id": {"value": "c"}, "agent_id": {"value": "gone"}},
        {"operation_id": {"value": "d"}, "agent_id": {"value": "rec"}},
        {"operation_id": {"value": "e"}, "agent_id": {"value": "who"}},
        {"operation_id": {"value": "f"}},
    ]}) == 202
    got = {e.update_operation_status.status.operation_id.value:
           (e.update_operation_status.status.state, e.update_operation_status.status.message)
           for e in s.all_of("UPDATE_OPERATION_STATUS")}
    assert got["known"][0] == "OPERATION_PENDING"
    assert got["a"] == ("OPERATION_UNKNOWN", "Reconciliation: Operation is unknown")
    assert got["b"][0] == "OPERATION_UNREACHABLE"
    assert got["c"][0] == "OPERATION_GONE_BY_OPERATOR"
    assert got["d"][0] == "OPERATION_RECOVERING"
    assert got["e"] == ("OPERATION_UNKNOWN", "Reconciliation: Both operation and agent are unknown")
    assert got["f"][0] == "OPERATION_UNKNOWN" and "no 'agent_id'" in got["f"][1]
    # Implicit: every known operation.
    s.call("RECONCILE_OPERATIONS", {"operations": []})
    [e] = s.all_of("UPDATE_OPERATION_STATUS")
    assert e.update_operation_status.status.operation_id.value == "known"


def test_unacknowledged_operation_of_a_gone_agent() -> None:
    c, agent, s = setup()
    accept(s, offer(c, s), reserve_op(dyn("cpus", 1, "eng", principal="alice", allocated="eng"),
                                      op_id="r"))
    c.master.mark_gone(agent.agent_id)
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_GONE_BY_OPERATOR"
    assert c.master.framework_operations == {}


# ---------------------------------------------------------------------------- operators


def test_operator_reserve_rescinds_offers_and_conflicts_on_what_is_in_use() -> None:
    c, agent, s = setup()
    o = offer(c, s)
    c.master.reserve_resources(agent.agent_id, [], wire([dyn("cpus", 3, "ops", principal="op")]), "op")
    assert str(s.next_event("RESCIND").rescind.offer_id.value) == o.id.value
    event, _ = agent_finishes(agent)
    assert event.framework_id is None
    # The master acknowledged the status itself (no framework will).
    assert agent.next_event("ACKNOWLEDGE_OPERATION_STATUS")
    assert c.master.get_operations() == []
    total = c.master.agents[agent.agent_id].total
    assert total.reserved("ops").cpus() == 3
    # More than is left unreserved: 409, and nothing changed.
    with pytest.raises(CallRefused) as refused:
        c.master.reserve_resources(agent.agent_id, [], wire([dyn("cpus", 2, "ops", principal="op")]), "op")
    assert refused.value.status == 409 and "does not contain" in refused.value.message
    assert c.master.agents[agent.agent_id].total == total
    # Unreserving what is not reserved: 409; what is reserved: accepted.
    with pytest.raises(CallRefused) as refused:
        c.master.unreserve_resources(agent.agent_id, wire([dyn("cpus", 1, "web", principal="op")]), "op")
    assert refused.value.status == 409
    c.master.unreserve_resources(agent.agent_id, wire([dyn("cpus", 3, "ops", principal="op")]), "op")
    assert c.master.agents[agent.agent_id].total.reserved().is_empty()


@pytest.mark.parametrize(("call", "status", "message"), [
    (("reserve", [dyn("cpus", 1, "ops", principal="x")], "op"), 400,
     "Invalid RESERVE operation on agent"),
    (("reserve", [dyn("cpus", 1, "ops", principal="op", allocated="ops")], "op"), 400,
     "the operator API only allows reservations to be made to unallocated resources"),
    (("reserve", [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}], "op"), 400, ""),
    (("unreserve", [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}], "op"), 400,
     "Invalid UNRESERVE operation: Resource cpus:1 is not dynamically reserved"),
])
def test_operator_bad_input(call, status, message) -> None:
    c, agent, _ = setup()
    kind, resources, principal = call
    with pytest.raises(CallRefused) as refused:
        if kind == "reserve":
            c.master.reserve_resources(agent.agent_id, [], wire(resources), principal)
        else:
            c.master.unreserve_resources(agent.agent_id, wire(resources), principal)
    assert refused.value.status == status and message in refused.value.message
    assert "\n" not in refused.value.message
    assert c.master.agents[agent.agent_id].total.reserved().is_empty()
    with pytest.raises(CallRefused) as refused:
        c.master.reserve_resources("nope", [], wire(resources), principal)
    assert refused.value.status == 400


def test_authorization_reserve_and_unreserve_acls() -> None:
    from mezzo.security.authorizer import LocalAuthorizer

    acls = {"permissive": False,
            "reserve_resources": [{"principals": {"values": ["ops"]}, "roles": {"values": ["eng"]}}],
            "unreserve_resources": [{"principals": {"values": ["ops"]},
                                     "reserver_principals": {"values": ["ops"]}}]}
    authz = LocalAuthorizer(acls)
    c, agent, s = setup(principal="alice")
    c.master.authorize = authz.authorized
    with pytest.raises(CallRefused) as refused:
        c.master.reserve_resources(agent.agent_id, [], wire([dyn("cpus", 1, "web", principal="ops")]), "ops")
    assert refused.value.status == 403
    c.master.reserve_resources(agent.agent_id, [], wire([dyn("cpus", 1, "eng", principal="ops")]), "ops")
    # alice (a framework) may not reserve.
    accept(s, offer(c, s), reserve_op(dyn("cpus", 1, "eng", principal="alice", allocated="eng"),
                                      op_id="r"))
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_ERROR"
    assert "Principal 'alice' no authorized to perform action RESERVE_RESOURCES" in status.message


# ---------------------------------------------------------------------------- recovery


def test_reregistration_and_failover_rebuild_reservations_and_operations() -> None:
    c, agent, s = setup()
    accept(s, offer(c, s), reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng"),
                                      op_id="r"))
    event = agent.next_event("APPLY_OPERATION").apply_operation
    checkpointed = Resources.from_wire(event.operation_info.reserve.resources).to_wire()
    pending = Operation(framework_id=FrameworkID(value=s.framework_id),
                        agent_id=AgentID(value=agent.agent_id), info=event.operation_info,
                        latest_status=OperationStatus(operation_id=event.operation_info.id,
                                                      state=OperationState.OPERATION_FINISHED),
                        uuid=event.operation_uuid)
    # A new master (failover): the agent re-registers with what it checkpointed.
    c2 = MasterCluster(store=c.store)
    agent.cluster = c2
    agent.subscribe(checkpointed_resources=checkpointed, operations=[pending], capabilities=CAPS)
    total = c2.master.agents[agent.agent_id].total
    assert total.reserved("eng").cpus() == 2 and total.cpus() == 4
    [op] = c2.master.get_operations()
    assert op.operation_id == "r"
    # The framework re-subscribes and reconciles its operation.
    s.cluster = c2
    s.subscribe()
    s.call("RECONCILE_OPERATIONS", {"operations": [{"operation_id": {"value": "r"},
                                                    "agent_id": {"value": agent.agent_id}}]})
    assert s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status.state \
        == "OPERATION_FINISHED"
    # Only `eng` is offered the reserved cpus.
    o = offer(c2, s)
    assert reserved_in(o).cpus() == 2


def test_reregistration_drops_operations_the_agent_never_got() -> None:
    c, agent, s = setup()
    accept(s, offer(c, s), reserve_op(dyn("cpus", 2, "eng", principal="alice", allocated="eng"),
                                      op_id="r"))
    agent.disconnect()
    agent.subscribe(capabilities=CAPS)  # reports neither the reservation nor the operation
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_DROPPED"
    assert c.master.agents[agent.agent_id].total.reserved().is_empty()


def test_incompatible_checkpointed_resources_refuse_the_agent() -> None:
    _c, agent, _ = setup("cpus:1")
    agent.disconnect()
    result = agent.subscribe(checkpointed_resources=wire([dyn("cpus", 2, "eng", principal="p")]))
    assert result.agent_id is None and "incompatible" in result.error


def test_sdk_reserve_and_unreserve_operations_are_accepted() -> None:
    from mezzo.scheduler import reserve_operation, unreserve_operation

    c, agent, s = setup()
    mine = wire([dyn("cpus", 1, "eng", principal="alice", allocated="eng")])
    assert accept(s, offer(c, s), to_builtins(reserve_operation(mine, "sdk-r"))) == 202
    agent_finishes(agent)
    assert s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status.state \
        == "OPERATION_FINISHED"
    assert accept(s, offer(c, s), to_builtins(unreserve_operation(mine))) == 202
    agent_finishes(agent)
    assert c.master.agents[agent.agent_id].total.reserved().is_empty()


def test_operator_reserve_on_a_disconnected_agent_is_dropped_when_it_comes_back() -> None:
    c, agent, _ = setup()
    agent.disconnect()
    c.master.reserve_resources(agent.agent_id, [], wire([dyn("cpus", 1, "ops", principal="op")]), "op")
    assert c.master.agents[agent.agent_id].total.reserved("ops").cpus() == 1
    assert len(c.master.get_operations()) == 1
    agent.subscribe(capabilities=CAPS)  # reports no such reservation nor operation
    assert c.master.get_operations() == []
    assert c.master.agents[agent.agent_id].total.reserved().is_empty()


def test_pre_refinement_format_for_frameworks_without_the_capability() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:2")
    agent.subscribe(capabilities=CAPS)
    s = c.add_scheduler(framework_info(capabilities=["MULTI_ROLE"], roles=["eng"], principal="alice"))
    old_style = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "eng",
                 "reservation": {"principal": "alice"}, "allocation_info": {"role": "eng"}}
    assert accept(s, offer(c, s), reserve_op(old_style, op_id="old")) == 202
    agent_finishes(agent)
    assert s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status.state \
        == "OPERATION_FINISHED"
    got = offer(c, s)
    [reserved_] = [r for r in got.resources if r.role == "eng"]
    assert reserved_.reservation.principal == "alice" and not reserved_.reservations
