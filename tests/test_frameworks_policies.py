"""Decision cores of the example frameworks, without sockets: delay scheduling, gang
all-or-nothing allocation, service backoff and spreading, the iterative coordinator."""

from __future__ import annotations

import random

import pytest

from mezzo.core.clock import FakeClock
from mezzo.frameworks.batch_policy import DelayScheduler, make_job, place_blocks
from mezzo.frameworks.gang_policy import GangPlanner, Phase
from mezzo.frameworks.iterative_core import (
    IterationDriver,
    PartitionSpec,
    generate_partition_text,
    gradient,
    parse_partition,
)
from mezzo.frameworks.service_policy import InstanceState, ServicePlanner

# --------------------------------------------------------------------------- batch


def _one_job(locations: list[set[str]], wait: float, clock: FakeClock) -> DelayScheduler:
    sched = DelayScheduler(locality_wait=wait)
    sched.submit(make_job("j1", [frozenset(s) for s in locations], clock.now()))
    return sched


def test_delay_scheduling_accepts_a_local_offer_at_once() -> None:
    clock = FakeClock()
    sched = _one_job([{"a"}, {"b"}], wait=5.0, clock=clock)
    placement = sched.choose("b", clock.now())
    assert placement is not None and placement.local
    assert placement.task.index == 1


def test_delay_scheduling_skips_non_local_offers_until_the_wait_passes() -> None:
    clock = FakeClock()
    sched = _one_job([{"a"}], wait=5.0, clock=clock)
    assert sched.choose("c", clock.now()) is None  # starts waiting
    clock.advance(4.9)
    assert sched.choose("c", clock.now()) is None
    clock.advance(0.1)
    placement = sched.choose("c", clock.now())
    assert placement is not None and not placement.local


def test_a_local_launch_resets_the_wait() -> None:
    clock = FakeClock()
    sched = _one_job([{"a"}, {"a"}, {"a"}], wait=3.0, clock=clock)
    assert sched.choose("c", clock.now()) is None
    clock.advance(2.0)
    assert sched.choose("a", clock.now()) is not None  # local: wait reset
    clock.advance(2.0)
    assert sched.choose("c", clock.now()) is None  # waiting afresh from here
    clock.advance(3.0)
    assert sched.choose("c", clock.now()) is not None


def test_zero_wait_takes_any_offer_and_a_later_job_can_use_a_skipped_slot() -> None:
    clock = FakeClock()
    eager = _one_job([{"a"}], wait=0.0, clock=clock)
    assert eager.choose("z", clock.now()) is not None
    sched = DelayScheduler(locality_wait=10.0)
    sched.submit(make_job("j1", [frozenset({"a"})], clock.now()))
    sched.submit(make_job("j2", [frozenset({"b"})], clock.now()))
    placement = sched.choose("b", clock.now())
    assert placement is not None and placement.task.job_id == "j2" and placement.local


def test_plan_offer_fills_slots_and_jobs_finish_with_locality_counted() -> None:
    clock = FakeClock()
    sched = _one_job([{"a"}, {"a"}, {"b"}], wait=1.0, clock=clock)
    plan = sched.plan_offer("a", slots=3, now=clock.now())
    assert [p.local for p in plan] == [True, True]  # the third would be non-local: skipped
    clock.advance(1.0)
    plan += sched.plan_offer("a", slots=1, now=clock.now())
    assert [p.local for p in plan] == [True, True, False]
    # A failed attempt goes back to pending and can run again locally.
    sched.task_failed(plan[2].task, clock.now())
    assert sched.pending_tasks == 1
    again = sched.plan_offer("b", slots=1, now=clock.now())
    assert again[0].local
    for p in [*plan[:2], again[0]]:
        clock.advance(1.0)
        sched.task_finished(p.task, clock.now())
    job = sched.jobs[0]
    assert job.done and job.completion_time == pytest.approx(4.0)
    assert sched.locality() == (3, 3)


def test_block_placement_uses_distinct_nodes_and_is_seeded() -> None:
    nodes = ["n3", "n1", "n2"]
    first = place_blocks("j", 20, nodes, 2, random.Random(7))
    assert all(len(b) == 2 and b <= set(nodes) for b in first)
    assert place_blocks("j", 20, list(reversed(nodes)), 2, random.Random(7)) == first
    assert all(len(b) == 3 for b in place_blocks("j", 5, nodes, 9, random.Random(1)))


# --------------------------------------------------------------------------- gang


def test_gang_never_launches_fewer_than_n() -> None:
    clock = FakeClock()
    gang = GangPlanner(size=4, runs=1, hold_timeout=10.0, retry_delay=1.0, now=clock.now())
    assert gang.offered("o1", "a", 2, clock.now()).empty  # held, nothing launched
    assert gang.offered("o2", "b", 1, clock.now()).empty
    assert gang.held_slots == 3 and gang.phase == Phase.GATHERING
    decision = gang.offered("o3", "c", 3, clock.now())
    launched = [r for _, ranks in decision.launch for r in ranks]
    assert sorted(launched) == [0, 1, 2, 3]
    assert decision.decline == ["o2"]  # the biggest offers were enough
    assert gang.phase == Phase.RUNNING
    assert gang.offered("o4", "d", 8, clock.now()).decline == ["o4"]


@pytest.mark.parametrize("seed", range(20))
def test_gang_random_offer_streams_launch_exactly_n_or_nothing(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    size = rng.randint(1, 6)
    gang = GangPlanner(size=size, runs=3, hold_timeout=5.0, retry_delay=1.0, now=clock.now())
    for i in range(60):
        clock.advance(rng.uniform(0, 2))
        if rng.random() < 0.2 and gang.held:
            gang.rescinded(rng.choice(sorted(gang.held)))
        decision = gang.offered(f"o{i}", f"a{i % 3}", rng.randint(0, 3), clock.now())
        decision_t = gang.tick(clock.now())
        for d in (decision, decision_t):
            ranks = [r for _, rr in d.launch for r in rr]
            assert ranks == [] or sorted(ranks) == list(range(size))
        if gang.phase == Phase.RUNNING and rng.random() < 0.5:
            for r in range(size):
                gang.rank_finished(r, clock.now())


def test_gang_releases_everything_on_timeout_then_retries() -> None:
    clock = FakeClock()
    gang = GangPlanner(size=3, runs=1, hold_timeout=10.0, retry_delay=2.0, now=clock.now())
    gang.offered("o1", "a", 2, clock.now())
    clock.advance(10.0)
    decision = gang.tick(clock.now())
    assert decision.decline == ["o1"] and not decision.launch
    assert gang.phase == Phase.COOLING and gang.releases == 1
    assert gang.offered("o2", "a", 5, clock.now()).decline == ["o2"]  # cooling: declined
    clock.advance(2.0)
    gang.tick(clock.now())
    assert gang.phase == Phase.GATHERING
    assert len(gang.offered("o3", "a", 5, clock.now()).launch) == 1


def test_gang_kills_survivors_when_a_rank_fails_and_counts_runs() -> None:
    clock = FakeClock()
    gang = GangPlanner(size=3, runs=1, hold_timeout=10.0, retry_delay=1.0, now=clock.now())
    gang.offered("o1", "a", 3, clock.now())
    decision = gang.rank_failed(1, clock.now())
    assert decision.kill == [0, 2] and gang.failed_runs == 1
    clock.advance(1.0)
    gang.tick(clock.now())
    gang.offered("o2", "b", 3, clock.now())
    for rank in range(3):
        gang.rank_finished(rank, clock.now())
    assert gang.done and gang.completed_runs == 1


# --------------------------------------------------------------------------- service


def test_service_backoff_doubles_up_to_the_maximum_and_resets_when_stable() -> None:
    clock = FakeClock()
    svc = ServicePlanner(1, backoff_initial=1.0, backoff_maximum=8.0, stable_after=30.0)
    delays = []
    for n in range(6):
        (inst,) = svc.plan_offer("a", 1, 1, clock.now())
        svc.launched(inst, f"t{n}")
        svc.task_running(f"t{n}", clock.now())
        clock.advance(1.0)
        ended = svc.task_ended(f"t{n}", clock.now())
        assert ended is not None
        delays.append(ended.delay)
        assert svc.plan_offer("a", 1, 1, clock.now()) == []  # backing off
        clock.advance(ended.delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    (inst,) = svc.plan_offer("a", 1, 1, clock.now())
    svc.launched(inst, "stable")
    svc.task_running("stable", clock.now())
    clock.advance(30.0)
    assert svc.task_ended("stable", clock.now()).delay == 1.0  # type: ignore[union-attr]
    assert svc.stats.restarts == 7


def test_service_spreads_at_most_ceil_n_over_agents_per_agent() -> None:
    clock = FakeClock()
    svc = ServicePlanner(5)
    assert svc.max_per_agent(3) == 2
    first = svc.plan_offer("a", slots=10, agents=3, now=clock.now())
    assert len(first) == 2
    assert svc.plan_offer("a", slots=10, agents=3, now=clock.now()) == []
    second = svc.plan_offer("b", slots=10, agents=3, now=clock.now())
    third = svc.plan_offer("c", slots=10, agents=3, now=clock.now())
    assert (len(second), len(third)) == (2, 1)
    assert svc.per_agent() == {"a": 2, "b": 2, "c": 1}
    for n, inst in enumerate([*first, *second, *third]):
        svc.launched(inst, f"t{n}")
        svc.task_running(f"t{n}", clock.now())
    assert svc.running == 5 and not svc.wants_offers(clock.now())
    svc.task_ended("t0", clock.now())
    assert svc.per_agent() == {"a": 1, "b": 2, "c": 1}
    assert [i.state for i in svc.instances].count(InstanceState.WAITING) == 1


def test_service_uptime_accumulates_instance_seconds() -> None:
    clock = FakeClock()
    svc = ServicePlanner(2)
    for n, inst in enumerate(svc.plan_offer("a", 2, 1, clock.now())):
        svc.launched(inst, f"t{n}")
        svc.task_running(f"t{n}", clock.now())
    clock.advance(10.0)
    svc.sample(clock.now())
    assert svc.stats.up_seconds == pytest.approx(20.0)


# --------------------------------------------------------------------------- iterative


def test_logistic_regression_converges_over_partitions() -> None:
    spec = [PartitionSpec(seed=3, partition=p, points=400, dims=3) for p in range(2)]
    parts = [
        parse_partition(generate_partition_text(s.seed, s.partition, s.points, s.dims))
        for s in spec
    ]
    assert PartitionSpec.from_bytes(spec[1].to_bytes()) == spec[1]
    driver = IterationDriver(partitions=2, iterations=8, dims=3)
    clock = FakeClock()
    while not driver.done:
        request = driver.start(clock.now())
        clock.advance(1.0)
        for p, part in enumerate(parts):
            g, loss = gradient(part, request["weights"])
            reply = {
                "iteration": request["iteration"],
                "partition": p,
                "gradient": g,
                "count": part.count,
                "loss": loss,
            }
            finished = driver.reply(reply, clock.now())
            assert finished == (p == 1)
        assert not driver.reply(reply, clock.now())  # a duplicate is ignored
    losses = [r.loss for r in driver.records]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # log(2) at w = 0
    assert losses[-1] < losses[0] - 0.05
    assert driver.speedup() == pytest.approx(1.0)
