"""When the master runs its allocator (issue 17): batch runs every --allocation_interval,
event-triggered runs at most once per --allocation_coalesce_window, and declines that trigger
nothing and keep the declined resources from their decliner until the next batch run — so a
framework declining everything with `refuse_seconds: 0` no longer makes the master spin.

All on a FakeClock (`MasterCluster`); steps of 1/64 s keep the clock arithmetic exact."""

from __future__ import annotations

from mezzo.master import views
from mezzo.master.base import MasterOptions
from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info

STEP = 1 / 64
WINDOW = MasterOptions().allocation_coalesce_window


def decline_all(sched, refuse_seconds: float = 0.0) -> int:
    """Decline every pending offer at once; returns how many."""
    offers = [o for event in sched.all_of("OFFERS") for o in event.offers.offers]
    if offers:
        sched.call("DECLINE", {"offer_ids": [{"value": o.id.value} for o in offers],
                               "filters": {"refuse_seconds": refuse_seconds}})
    return len(offers)


def runs(cluster: MasterCluster) -> tuple[int, int, int]:
    """(all runs, batch runs, event-triggered runs)."""
    master = cluster.master
    return (master.allocator.statistics().allocation_runs, master.batch_allocation_runs,
            master.event_allocation_runs)


def test_a_framework_declining_everything_gets_one_offer_per_batch_run() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    declined = 0
    for _ in range(640):  # 10 s; the scheduler answers every offer within one step
        c.advance(STEP)
        declined += decline_all(s)
    # Before issue 17 every DECLINE asked for a run and got the same resources straight back:
    # one run and one offer per step here (~640), and thousands a second on a real master.
    assert runs(c) == (11, 11, 0)  # t = 0, 1, ..., 10: the batch runs only
    assert declined == 11
    metrics = views.metrics(c.master, c.clock.now())
    assert metrics["allocator/mesos/allocation_runs"] == 11
    assert metrics["allocator/mesos/allocation_runs_batch"] == 11
    assert metrics["allocator/mesos/allocation_runs_event_triggered"] == 0
    assert metrics["master/messages_decline_offers"] == 11


def test_a_longer_refuse_seconds_still_holds() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.advance(STEP)
    assert decline_all(s, refuse_seconds=3.0) == 1
    c.advance(3.0 - STEP)  # the batch run at 3 s: the filter still holds
    assert not s.all_of("OFFERS")
    c.advance(1.0)  # the filter ended just after 3 s; the batch run at 4 s offers again
    assert s.all_of("OFFERS")
    assert runs(c) == (5, 5, 0)


def test_other_frameworks_get_declined_resources_before_the_next_batch() -> None:
    c = MasterCluster()
    c.add_agent()
    first = c.add_scheduler(framework_info("first"))
    c.advance(STEP)
    assert decline_all(first) == 1
    c.advance(0.25)
    assert runs(c) == (1, 1, 0)  # the decline asked for nothing
    second = c.add_scheduler(framework_info("second"))  # an event: a new framework
    c.advance(WINDOW)
    assert len(second.all_of("OFFERS")) == 1  # the declined agent, at once
    assert not first.all_of("OFFERS")
    assert runs(c) == (2, 1, 1)


def test_triggers_within_one_window_of_the_last_run_make_one_run() -> None:
    c = MasterCluster()
    s = c.add_scheduler()
    c.advance(0.5)  # past the first batch run; the next one is at 1 s
    c.add_agent()
    c.advance(0)  # an isolated trigger runs at once
    assert runs(c) == (2, 1, 1) and len(s.all_of("OFFERS")) == 1
    agents = []
    for _ in range(4):  # a burst within the window after that run
        agents.append(c.add_agent())
        c.advance(WINDOW / 8)
    assert runs(c) == (2, 1, 1) and not s.all_of("OFFERS")
    c.advance(WINDOW)  # the window has ended: one run for the whole burst
    assert runs(c) == (3, 1, 2)
    offered = {o.agent_id.value for e in s.all_of("OFFERS") for o in e.offers.offers}
    assert offered == {a.agent_id for a in agents}


def test_a_new_framework_and_a_new_agent_are_offered_within_one_window() -> None:
    c = MasterCluster()
    c.add_agent("cpus:2;mem:1024")
    c.advance(0.25)
    s = c.add_scheduler()
    c.advance(WINDOW)
    assert len(s.all_of("OFFERS")) == 1
    c.advance(0.25)
    c.add_agent("cpus:2;mem:1024")
    c.advance(WINDOW)
    assert len(s.all_of("OFFERS")) == 1
    assert runs(c) == (3, 1, 2)


def test_freed_resources_and_an_accept_remainder_come_back_within_one_window() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:1;mem:512")
    s = c.add_scheduler()
    c.advance(STEP)
    offer = s.next_event("OFFERS").offers.offers[0]
    assert s.launch(offer, [task_info("t1", offer, resources="cpus:0.5;mem:256")], refuse_seconds=0) == 202
    c.advance(WINDOW)
    remainder = s.next_event("OFFERS").offers.offers[0]  # launching frameworks are not slowed
    assert {r.name: r.scalar.value for r in remainder.resources if r.scalar} == {"cpus": 0.5, "mem": 256}
    agent.next_event("RUN_TASK")
    agent.update("t1", "TASK_FINISHED", framework_id=s.framework_id)
    c.advance(WINDOW)
    freed = s.next_event("OFFERS").offers.offers[0]
    assert {r.name: r.scalar.value for r in freed.resources if r.scalar} == {"cpus": 0.5, "mem": 256}
    assert runs(c) == (3, 1, 2)


def test_drf_still_offers_each_agent_to_the_framework_with_the_lowest_share() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:4096")
    big = c.add_scheduler(framework_info("big"))
    small = c.add_scheduler(framework_info("small"))
    c.advance(STEP)
    offers = {s.framework_id: s.all_of("OFFERS") for s in (big, small)}
    holder = big if offers[big.framework_id] else small
    other = small if holder is big else big
    offer = offers[holder.framework_id][0].offers.offers[0]
    holder.launch(offer, [task_info("t", offer, resources="cpus:3;mem:3072")], refuse_seconds=0)
    agent.next_event("RUN_TASK")
    # The remainder goes to the framework holding nothing, not back to the launcher.
    c.advance(WINDOW)
    assert not holder.all_of("OFFERS")
    assert len(other.all_of("OFFERS")) == 1
    # A second agent: `other` declined nothing and still has the lower share.
    c.add_agent("cpus:4;mem:4096")
    c.advance(WINDOW)
    assert len(other.all_of("OFFERS")) == 1 and not holder.all_of("OFFERS")


def test_revive_clears_the_decline_filter_and_triggers_a_run() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.advance(STEP)
    assert decline_all(s) == 1
    c.advance(0.25)
    assert not s.all_of("OFFERS")
    s.call("REVIVE")
    c.advance(WINDOW)
    assert len(s.all_of("OFFERS")) == 1
    assert runs(c) == (2, 1, 1)
