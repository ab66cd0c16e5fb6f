"""Persistent volumes in the master core, on a FakeClock (issue 14 §3): CREATE / DESTROY /
GROW_VOLUME / SHRINK_VOLUME from frameworks and operators on reserved disk, the volume offered
back to its role, Mesos's errors for bad input with nothing half-applied, ACLs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from mezzo.api.codec import convert, to_builtins
from mezzo.api.common import Resource, Scalar, TaskInfo
from mezzo.master.core import CallRefused
from mezzo.resources import Resources
from mezzo.testing.master_cluster import (
    MasterCluster,
    ScriptedAgent,
    ScriptedScheduler,
    framework_info,
)

CAPS = ["AGENT_OPERATION_FEEDBACK", "RESOURCE_PROVIDER", "HIERARCHICAL_ROLE",
        "RESERVATION_REFINEMENT", "RESIZE_VOLUME"]


def volume(vid: str = "data", size: float = 64, role: str = "eng", *, principal: str | None = "alice",
           path: str = "data", mode: str = "RW", allocated: str | None = None,
           shared: bool = False, reservation: str = "STATIC") -> dict[str, Any]:
    persistence: dict[str, Any] = {"id": vid}
    if principal:
        persistence["principal"] = principal
    r: dict[str, Any] = {
        "name": "disk", "type": "SCALAR", "scalar": {"value": size},
        "reservations": [{"type": reservation, "role": role}],
        "disk": {"persistence": persistence, "volume": {"container_path": path, "mode": mode}}}
    if allocated:
        r["allocation_info"] = {"role": allocated}
    if shared:
        r["shared"] = {}
    return r


def wire(*resources: dict[str, Any]) -> list[Resource]:
    return [convert(r, Resource) for r in resources]


def setup(resources: str = "cpus:2;mem:256;disk(eng):100;disk:50", principal: str | None = "alice",
          capabilities: tuple[str, ...] = ()
          ) -> tuple[MasterCluster, ScriptedAgent, ScriptedScheduler]:
    c = MasterCluster()
    agent = c.add_agent(resources)
    agent.stream.events.clear()
    agent.subscribe(capabilities=CAPS)
    agent.next_event("SUBSCRIBED")
    s = c.add_scheduler(framework_info(
        capabilities=["MULTI_ROLE", "RESERVATION_REFINEMENT", *capabilities], roles=["eng"],
        principal=principal))
    return c, agent, s


def offer(c: MasterCluster, s: ScriptedScheduler) -> Any:
    c.allocate()
    return s.next_event("OFFERS").offers.offers[0]


def accept(s: ScriptedScheduler, o: Any, *ops: dict[str, Any]) -> int:
    return s.call("ACCEPT", {"offer_ids": [to_builtins(o.id)], "operations": list(ops),
                             "filters": {"refuse_seconds": 0}})


def create_op(*volumes: dict[str, Any], op_id: str = "c1") -> dict[str, Any]:
    return {"type": "CREATE", "id": {"value": op_id}, "create": {"volumes": list(volumes)}}


def destroy_op(*volumes: dict[str, Any], op_id: str = "d1") -> dict[str, Any]:
    return {"type": "DESTROY", "id": {"value": op_id}, "destroy": {"volumes": list(volumes)}}


def volumes_in(o: Any) -> Resources:
    return Resources.from_wire(o.resources).unallocate().persistent_volumes()


def where(c: MasterCluster, agent: ScriptedAgent) -> str:
    a = c.master.agents[agent.agent_id]
    return f"; on agent {a.id} at {a.pid} ({a.hostname})"


def test_framework_create_offers_the_volume_back_and_a_task_uses_it() -> None:
    c, agent, s = setup()
    o = offer(c, s)
    assert accept(s, o, create_op(volume(allocated="eng"))) == 202
    apply = agent.next_event("APPLY_OPERATION").apply_operation
    assert apply.operation_info.type == "CREATE"
    assert apply.operation_info.create.volumes[0].allocation_info is None
    a = c.master.agents[agent.agent_id]
    assert a.checkpointed == Resources.from_wire(wire(volume()))
    # The whole 100 of reserved disk minus the 64 of the volume stays reserved disk.
    assert a.total.reserved("eng").persistent_volumes().disk() == 64
    assert a.total.reserved("eng").disk() == 100
    o2 = offer(c, s)
    assert volumes_in(o2) == Resources.from_wire(wire(volume()))
    # A task names the volume with its own container path: the same resource (Mesos's
    # DiskInfo equality ignores `volume`).
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": to_builtins(o2.agent_id),
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          volume(path="elsewhere", allocated="eng")]}
    assert accept(s, o2, {"type": "LAUNCH", "launch": {"task_infos": [task]}}) == 202
    run = agent.next_event("RUN_TASK").run_task.task
    assert isinstance(run, TaskInfo)
    assert run.resources[1].disk.volume.container_path == "elsewhere"
    # In use: an operator cannot destroy it.
    with pytest.raises(CallRefused) as refused:
        c.master.destroy_volumes(agent.agent_id, wire(volume()), None)
    assert refused.value.status == 400
    assert refused.value.message == "Invalid DESTROY operation: Persistent volumes in use"
    # Ended: destroyed, and the disk is plain reserved disk again.
    agent.update("t1", "TASK_FINISHED", framework_id=s.framework_id)
    c.master.destroy_volumes(agent.agent_id, wire(volume()), None)
    apply = agent.next_event("APPLY_OPERATION").apply_operation
    assert apply.operation_info.type == "DESTROY"
    assert a.checkpointed.is_empty()
    assert a.total.persistent_volumes().is_empty() and a.total.reserved("eng").disk() == 100


@pytest.mark.parametrize(("vol", "message"), [
    ({**volume(allocated="eng"), "reservations": []},
     "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created from unreserved"
     " resources"),
    (volume(mode="RO", allocated="eng"), "Not a persistent volume: Read-only persistent volume"
                                         " not supported"),
    (volume(vid="a/b", allocated="eng"),
     "Invalid resources: Invalid DiskInfo: Invalid persistence ID for persistent volume: 'a/b'"
     " contains invalid characters"),
    (volume(principal="bob", allocated="eng"),
     "Create volume operation attempted by authenticated principal 'alice', which does not match"
     " a volume in the operation with principal 'bob' set in 'disk.persistence'"),
    (volume(shared=True, allocated="eng"),
     "Create volume operation for 'disk(eng)(allocated: eng)[data:data]<SHARED>:64' has been"
     " attempted by framework '{fid}' with no SHARED_RESOURCES capability"),
])
def test_framework_bad_create_is_dropped_with_mesos_message(vol: dict[str, Any], message: str) -> None:
    c, agent, s = setup()
    o = offer(c, s)
    before = c.master.agents[agent.agent_id].total
    assert accept(s, o, create_op(vol)) == 202
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_ERROR"
    assert status.message == message.format(fid=s.framework_id) + where(c, agent)
    assert c.master.agents[agent.agent_id].total == before
    assert c.master.agents[agent.agent_id].checkpointed.is_empty()
    assert "APPLY_OPERATION" not in agent.types_pending()


def test_duplicate_persistence_id_and_bigger_than_the_offer() -> None:
    c, agent, s = setup()
    c.master.create_volumes(agent.agent_id, wire(volume(size=10)), None)
    o = offer(c, s)
    accept(s, o, create_op(volume(size=20, path="x", allocated="eng")))
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.message == "Persistence ID 'data' is not unique" + where(c, agent)
    o = offer(c, s)
    accept(s, o, create_op(volume(vid="big", size=1000, allocated="eng")))
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_ERROR" and "does not contain" in status.message
    with pytest.raises(CallRefused) as refused:
        c.master.create_volumes(agent.agent_id, wire(volume(size=5)), None)
    assert refused.value.status == 400
    assert refused.value.message == (
        f"Invalid CREATE operation on agent {where(c, agent).removeprefix('; on agent ')}: Persistence ID 'data' is not"
        " unique")


def test_operator_create_rescinds_offers_and_conflicts_when_disk_is_short() -> None:
    c, agent, s = setup()
    o = offer(c, s)
    c.master.create_volumes(agent.agent_id, wire(volume(size=64)), None)
    assert s.next_event("RESCIND").rescind.offer_id == o.id
    with pytest.raises(CallRefused) as refused:
        c.master.create_volumes(agent.agent_id, wire(volume(vid="more", size=64)), None)
    assert refused.value.status == 409
    with pytest.raises(CallRefused) as refused:
        c.master.destroy_volumes(agent.agent_id, wire(volume(vid="nope")), None)
    assert refused.value.message == "Invalid DESTROY operation: Persistent volumes not found"
    with pytest.raises(CallRefused) as refused:
        c.master.create_volumes("no-such-agent", wire(volume()), None)
    assert refused.value.message == "No agent found with specified ID"


def test_grow_and_shrink() -> None:
    c, agent, _s = setup()
    c.master.create_volumes(agent.agent_id, wire(volume(size=64)), None)
    add = {"name": "disk", "type": "SCALAR", "scalar": {"value": 16},
           "reservations": [{"type": "STATIC", "role": "eng"}]}
    c.master.grow_volume(agent.agent_id, wire(volume(size=64))[0], wire(add)[0], None)
    a = c.master.agents[agent.agent_id]
    assert a.total.persistent_volumes().disk() == 80 and a.total.reserved("eng").disk() == 100
    c.master.shrink_volume(agent.agent_id, wire(volume(size=80))[0], Scalar(value=30), None)
    assert a.checkpointed == Resources.from_wire(wire(volume(size=50)))
    with pytest.raises(CallRefused) as refused:
        c.master.shrink_volume(agent.agent_id, wire(volume(size=50))[0], Scalar(value=50), None)
    assert refused.value.message.endswith(
        "Value of 'ShrinkVolume.subtract' must be smaller than the size of 'ShrinkVolume.volume'")
    big = {**add, "scalar": {"value": 51}}  # 50 of reserved disk is left
    with pytest.raises(CallRefused) as refused:
        c.master.grow_volume(agent.agent_id, wire(volume(size=50))[0], wire(big)[0], None)
    assert refused.value.status == 409
    assert a.checkpointed == Resources.from_wire(wire(volume(size=50)))


def test_growing_a_volume_of_no_size_is_refused() -> None:
    """Found by the fuzz test: GROW_VOLUME whose volume has size 0 (dropped by Resources) was
    a 500 (ValueError unpacking the volume); now 400, nothing changed, also from a framework."""
    c, agent, s = setup()
    c.master.create_volumes(agent.agent_id, wire(volume(size=64)), None)
    a = c.master.agents[agent.agent_id]
    before = a.checkpointed
    add = {"name": "disk", "type": "SCALAR", "scalar": {"value": 16},
           "reservations": [{"type": "STATIC", "role": "eng"}]}
    with pytest.raises(CallRefused) as refused:
        c.master.grow_volume(agent.agent_id, wire(volume(size=0))[0], wire(add)[0], None)
    assert refused.value.status == 400
    assert refused.value.message.endswith("The size of 'GrowVolume.volume' field must be greater than zero")
    assert a.checkpointed == before
    o = offer(c, s)
    assert accept(s, o, {"type": "GROW_VOLUME", "id": {"value": "g0"}, "grow_volume": {
        "volume": volume(size=0), "addition": add}}) == 202
    assert a.checkpointed == before


def test_a_framework_create_of_no_volumes_is_not_a_500() -> None:
    """Found by the fuzz test: an ACCEPT whose CREATE had `volumes: null` was a 500 (the log
    line read the first of no conversions), after the ACCEPT's earlier operations had been
    applied. It changes nothing, as the operator's CREATE_VOLUMES of no volumes."""
    c, agent, s = setup()
    a = c.master.agents[agent.agent_id]
    before = a.checkpointed
    o = offer(c, s)
    assert accept(s, o, {"type": "CREATE", "create": {"volumes": None}}) == 202
    assert a.checkpointed == before


def test_volume_on_dynamically_reserved_disk_and_acls() -> None:
    from mezzo.security.authorizer import LocalAuthorizer

    c, agent, s = setup(resources="cpus:2;mem:256;disk:100")
    dyn = {"name": "disk", "type": "SCALAR", "scalar": {"value": 40},
           "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "ops"}]}
    c.master.reserve_resources(agent.agent_id, [], wire(dyn), "ops")
    acls = {"permissive": False,
            "create_volumes": [{"principals": {"values": ["ops"]}, "roles": {"values": ["eng"]}}],
            "destroy_volumes": [{"principals": {"values": ["ops"]},
                                 "creator_principals": {"values": ["ops"]}}]}
    c.master.authorize = LocalAuthorizer(acls).authorized
    vol = volume(size=40, principal="ops", reservation="DYNAMIC")
    vol["reservations"][0]["principal"] = "ops"
    with pytest.raises(CallRefused) as refused:
        c.master.create_volumes(agent.agent_id, wire(vol), "alice")
    assert refused.value.status == 400  # the principal must be the volume's
    bobs = {**vol, "disk": {**vol["disk"], "persistence": {"id": "data", "principal": "bob"}}}
    with pytest.raises(CallRefused) as refused:
        c.master.create_volumes(agent.agent_id, wire(bobs), "bob")
    assert refused.value.status == 403 and refused.value.message.startswith(
        "Forbidden: Principal 'bob' no authorized to perform action CREATE_VOLUME")
    c.master.create_volumes(agent.agent_id, wire(vol), "ops")
    a = c.master.agents[agent.agent_id]
    assert a.checkpointed == Resources.from_wire(wire(vol))  # the reservation is inside it
    # The framework (alice) may not destroy ops' volume.
    o = offer(c, s)
    assert volumes_in(o).disk() == 40
    accept(s, o, destroy_op({**vol, "allocation_info": {"role": "eng"}}))
    status = s.next_event("UPDATE_OPERATION_STATUS").update_operation_status.status
    assert status.state == "OPERATION_ERROR" and "no authorized" in status.message
    # UNRESERVE of the volume's disk is refused while it is a volume (Mesos's message).
    with pytest.raises(CallRefused) as refused:
        c.master.unreserve_resources(agent.agent_id, wire(vol), "ops")
    assert "cannot be unreserved directly" in refused.value.message
    c.master.destroy_volumes(agent.agent_id, wire(vol), "ops")
    assert a.checkpointed == Resources.from_wire(wire(dyn))


def test_shared_volume_used_by_several_tasks_and_offered_while_in_use() -> None:
    c, agent, s = setup(resources="cpus:4;mem:1024;disk(eng):100", capabilities=("SHARED_RESOURCES",))
    plain = c.add_scheduler(framework_info(capabilities=["MULTI_ROLE"], roles=["eng"], name="plain"))
    c.master.create_volumes(agent.agent_id, wire(volume(size=50, shared=True)), None)
    c.allocate()
    events = [(x, x.next_event("OFFERS").offers.offers[0]) for x in (s, plain)
              if "OFFERS" in x.types_pending()]
    assert len(events) == 1  # one agent, one offer per cycle
    # Make sure the SHARED_RESOURCES framework holds the offer with the volume.
    holder, o = events[0]
    if holder is plain:
        assert volumes_in(o).is_empty()  # never offered to a framework without the capability
        plain.call("DECLINE", {"offer_ids": [to_builtins(o.id)],
                               "filters": {"refuse_seconds": 1000}})
        o = offer(c, s)
    assert volumes_in(o) == Resources.from_wire(wire(volume(size=50, shared=True)))
    assert plain.call("SUPPRESS", {}) == 202  # what follows is about `s` alone

    def task(tid: str) -> dict[str, Any]:
        return {"name": tid, "task_id": {"value": tid}, "agent_id": to_builtins(o.agent_id),
                "command": {"value": "sleep 100"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                              volume(size=50, shared=True, allocated="eng", path=tid)]}

    assert accept(s, o, {"type": "LAUNCH", "launch": {"task_infos": [task("a"), task("b")]}}) == 202
    assert [e.run_task.task.task_id.value for e in agent.all_of("RUN_TASK")] == ["a", "b"]
    # Still offered to the capable framework while both tasks use it.
    o2 = offer(c, s)
    assert volumes_in(o2) == Resources.from_wire(wire(volume(size=50, shared=True)))
    assert accept(s, o2, {"type": "LAUNCH", "launch": {"task_infos": [
        {**task("c"), "agent_id": to_builtins(o2.agent_id)}]}}) == 202
    with pytest.raises(CallRefused) as refused:
        c.master.destroy_volumes(agent.agent_id, wire(volume(size=50, shared=True)), None)
    assert refused.value.message == "Invalid DESTROY operation: Persistent volumes in use"
    for tid in ("a", "b", "c"):
        agent.update(tid, "TASK_FINISHED", framework_id=s.framework_id)
    # Every copy came back: the allocator holds none, the volume can go.
    allocator = c.master.allocator
    held = [r for r in allocator._agents[agent.agent_id].allocated.values()  # type: ignore[attr-defined]
            if r.shared()]
    assert held == []
    c.master.destroy_volumes(agent.agent_id, wire(volume(size=50, shared=True)), None)
    assert c.master.agents[agent.agent_id].checkpointed.is_empty()


def test_a_task_naming_a_bad_or_duplicate_volume_is_an_error() -> None:
    c, agent, s = setup()
    c.master.create_volumes(agent.agent_id, wire(volume(size=10)), None)
    o = offer(c, s)

    def task(tid: str, *vols: dict[str, Any]) -> dict[str, Any]:
        return {"name": tid, "task_id": {"value": tid}, "agent_id": to_builtins(o.agent_id),
                "command": {"value": "true"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}, *vols]}

    unreserved = {**volume(vid="u", allocated="eng"), "reservations": []}
    twice = [volume(size=10, allocated="eng"), volume(size=10, path="again", allocated="eng")]
    accept(s, o, {"type": "LAUNCH", "launch": {"task_infos": [
        task("t1", unreserved), task("t2", *twice)]}})
    first = s.next_event("UPDATE").update.status
    second = s.next_event("UPDATE").update.status
    assert (first.state, first.message) == (
        "TASK_ERROR", "Task uses invalid resources: Invalid DiskInfo: Persistent volumes cannot"
        " be created from unreserved resources")
    assert (second.state, second.message) == (
        "TASK_ERROR", "Task uses duplicate persistence ID: Persistence ID 'data' is not unique")


def test_sdk_volume_helpers() -> None:
    from mezzo.scheduler import create_operation, destroy_operation
    from mezzo.scheduler import volume as sdk_volume

    c, agent, s = setup()
    o = offer(c, s)
    disk = next(r for r in o.resources if r.name == "disk" and r.reservations)
    v = sdk_volume(msgspec.structs.replace(disk, scalar=Scalar(value=30)), "sdk", "data",
                   principal="alice")
    assert accept(s, o, to_builtins(create_operation([v], "sdk-c"))) == 202
    agent_finishes_volume = agent.next_event("APPLY_OPERATION").apply_operation
    assert agent_finishes_volume.operation_info.create.volumes[0].disk.persistence.id == "sdk"
    o2 = offer(c, s)
    [offered] = [r for r in o2.resources if r.disk is not None]
    assert accept(s, o2, to_builtins(destroy_operation([offered]))) == 202
    assert agent.next_event("APPLY_OPERATION").apply_operation.operation_info.type == "DESTROY"
    assert c.master.agents[agent.agent_id].checkpointed.is_empty()

