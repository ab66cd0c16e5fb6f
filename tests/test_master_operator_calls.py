"""Operator decisions in the master core (issue 10 item 5): UPDATE_WEIGHTS (validated, stored in
the registry, recovered by the next leader), TEARDOWN, MARK_AGENT_GONE and the task query of
`/master/tasks`, on a FakeClock with refusals that change nothing."""

from __future__ import annotations

import pytest

from mezzo.api.operator import WeightInfo
from mezzo.master.base import MasterOptions
from mezzo.master.core import CallRefused
from mezzo.master.registry import UpdateWeights
from mezzo.store.memory import MemoryStore
from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info


def allocator_weight(cluster: MasterCluster, role: str) -> float:
    return cluster.master.allocator._roles.weight(role)  # type: ignore[attr-defined]


def test_update_weights_is_stored_applied_and_rescinds_offers_of_weighted_roles() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler(framework_info(role="web"))
    c.allocate()
    offer = s.next_event("OFFERS").offers.offers[0]
    c.master.update_weights([WeightInfo(role="web", weight=2.5), WeightInfo(role="batch", weight=0.5)])
    assert c.master.weights == {"web": 2.5, "batch": 0.5}
    assert c.outbox.operations[-1] == UpdateWeights(weights={"web": 2.5, "batch": 0.5})
    assert c.store.get("weights") is not None
    assert allocator_weight(c, "web") == 2.5
    # "web" has a framework: its outstanding offer is rescinded so the weights apply at once.
    assert s.next_event("RESCIND").rescind.offer_id == offer.id
    c.master.update_weights([WeightInfo(role="batch", weight=3.0)])
    assert c.master.weights == {"web": 2.5, "batch": 3.0}


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (WeightInfo(role="-bad", weight=1.0), "Invalid role '-bad'"),
        (WeightInfo(role="ok", weight=0.0), "Weights must be positive"),
        (WeightInfo(role="ok", weight=float("inf")), "Weights must be positive"),
        (WeightInfo(role="other", weight=1.0), "Unknown role 'other'"),
    ],
)
def test_invalid_weights_are_refused_and_change_nothing(info, message) -> None:
    c = MasterCluster(MasterOptions(roles=frozenset({"ok"})))
    before = list(c.outbox.operations)
    with pytest.raises(CallRefused) as refused:
        c.master.update_weights([WeightInfo(role="ok", weight=2.0), info])
    assert refused.value.status == 400 and message in refused.value.message
    assert c.master.weights == {} and c.outbox.operations == before


def test_weights_survive_a_new_leader_and_win_over_the_flag() -> None:
    store = MemoryStore()
    first = MasterCluster(MasterOptions(weights={"web": 2.0}), store=store)
    # No weights in the registry yet: the flag's are used and stored.
    assert first.master.weights == {"web": 2.0}
    assert first.outbox.operations == [UpdateWeights(weights={"web": 2.0})]
    first.master.update_weights([WeightInfo(role="batch", weight=4.0)])
    # The next leader reads the registry; its own --weights no longer apply.
    second = MasterCluster(MasterOptions(weights={"web": 9.0}), store=store)
    assert second.master.weights == {"web": 2.0, "batch": 4.0}
    assert allocator_weight(second, "web") == 2.0 and allocator_weight(second, "batch") == 4.0
    assert second.outbox.operations == []


def test_teardown_and_mark_gone_refuse_unknown_ids() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    with pytest.raises(CallRefused) as refused:
        c.master.teardown_framework("nope")
    assert (refused.value.status, refused.value.message) == (400, "No framework found with specified ID 'nope'")
    with pytest.raises(CallRefused) as refused:
        c.master.mark_agent_gone("nope")
    assert (refused.value.status, refused.value.message) == (404, "Agent 'nope' not found")
    c.master.teardown_framework(s.framework_id)
    assert s.framework_id in c.master.completed_frameworks
    c.master.mark_agent_gone(agent.agent_id)
    assert agent.agent_id in c.master.gone_agents and agent.stream.closed


def test_find_tasks_filters_orders_and_pages() -> None:
    c = MasterCluster()
    agents = [c.add_agent(), c.add_agent()]  # one offer for each framework
    first = c.add_scheduler(framework_info("first"))
    second = c.add_scheduler(framework_info("second"))
    c.allocate()
    for sched, prefix in ((first, "a"), (second, "b")):
        for event in sched.all_of("OFFERS"):
            offer = event.offers.offers[0]
            sched.launch(offer, [task_info(f"{prefix}{i}", offer) for i in range(3)])
    first_agent = next(a for a in agents if a.next_event("RUN_TASK").run_task.task.task_id.value == "a0")
    for task_id in ("a0", "a1", "a2"):
        c.clock.advance(1)
        first_agent.update(task_id, "TASK_RUNNING", framework_id=first.framework_id)
    master = c.master
    assert [t.task_id for t in master.find_tasks(framework_id=first.framework_id)] == ["a2", "a1", "a0"]
    assert [t.task_id for t in master.find_tasks(framework_id=first.framework_id, newest_first=False)] == [
        "a0", "a1", "a2"]
    assert [t.task_id for t in master.find_tasks(task_id="b1")] == ["b1"]
    assert [t.task_id for t in master.find_tasks(framework_id=first.framework_id, limit=1, offset=1)] == ["a1"]
    # Mesos's -1: no limit; a negative offset is refused.
    assert [t.task_id for t in master.find_tasks(framework_id=first.framework_id, limit=-1)] == [
        "a2", "a1", "a0"]
    with pytest.raises(CallRefused):
        master.find_tasks(offset=-1)


def test_a_bug_in_a_handler_is_not_turned_into_a_refusal(monkeypatch) -> None:
    """Only validation errors become 400s; anything else propagates (the shell answers a
    logged 500), where it used to come back as a 400 carrying the exception's text."""
    c = MasterCluster()
    s = c.add_scheduler()

    def broken(*_: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(c.master, "_apply_framework_info", broken)
    with pytest.raises(KeyError):
        s.call("UPDATE_FRAMEWORK", {"framework_info": {"user": "tester", "name": "renamed"}})
    # A validation problem is still a refusal.
    with pytest.raises(CallRefused) as refused:
        s.call("UPDATE_FRAMEWORK", {"framework_info": {"user": "someone else", "name": "x"}})
    assert refused.value.status == 400 and "user" in refused.value.message
