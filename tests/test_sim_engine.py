"""The simulator's engine and cluster: virtual time, the master as a single server, the
simulated agent's protocol, and determinism (same seed, same output)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from mezzo.api.common import TaskState
from mezzo.sim.cluster import SimCluster
from mezzo.sim.engine import Engine
from mezzo.sim.frameworks import ContinuousFramework, ProbeFramework, normal_duration
from mezzo.sim.master_node import (
    AGENT_MESSAGE_OVERHEAD,
    COLD_MESSAGE_OVERHEAD,
    CORE_FACTORS,
    LOOP_TURN_OVERHEAD,
    RECORD_OVERHEAD,
    SOCKET_WRITE_OVERHEAD,
    STREAM_WRITE_OVERHEAD,
    WAKE_COSTS,
    FixedCost,
    Link,
    MasterNode,
    MeasuredCost,
    wake_seconds,
)


def test_engine_runs_events_in_time_then_schedule_order() -> None:
    engine = Engine()
    seen: list[str] = []
    engine.after(2.0, seen.append, "b")
    engine.after(1.0, seen.append, "a")
    engine.after(2.0, seen.append, "c")
    cancelled = engine.after(1.5, seen.append, "never")
    cancelled.cancel()
    engine.run(until=engine.now + 10)
    assert seen == ["a", "b", "c"]
    assert engine.elapsed == 10.0


def test_a_probe_task_runs_through_the_real_master_and_takes_its_length_plus_latency() -> None:
    cluster = SimCluster(seed=3, latency=0.001)
    cluster.add_agents(4, "cpus:1;mem:1024")
    probe = cluster.add_framework(ProbeFramework(cluster.engine, "probe", length=10.0,
                                                 resources="cpus:1;mem:1024"))
    cluster.run_for(30.0)
    assert probe.done_at is not None
    # subscribe, offer, accept, RUN_TASK, update: a handful of one-way latencies and
    # master service times; far less than a second, never negative.
    assert 0.0 < probe.overhead < 0.1
    master = cluster.master.master
    assert master.counters.values["tasks_finished"] == 1
    assert all(a.subscribed for a in cluster.agents)


def test_the_master_serves_one_job_at_a_time() -> None:
    """With a fixed 10 ms per job, 50 agent registrations arriving together take 0.5 s one
    after another. They arrive while the first timer tick is served, so they are the next
    loop turn, whose replies go out together at its end, about half a second later."""
    table = {k: (0.01, 0.0) for k in ("agent.SUBSCRIBE", "agent.other", "scheduler.other",
                                      "allocate", "tick", "agent.PONG")}
    cluster = SimCluster(seed=1, cost=FixedCost(table))
    t0 = cluster.engine.now
    agents = cluster.add_agents(50, "cpus:1;mem:1024")
    cluster.run_for(2.0)
    times = sorted(a.registered_at for a in agents)
    assert times[0] == times[-1]
    assert 0.51 <= times[-1] - t0 <= 0.52
    assert cluster.master.busy_seconds >= 0.5


def test_measured_cost_is_cpu_time_of_the_call() -> None:
    cost = MeasuredCost()
    spent = cost.serve("tick", lambda: sum(range(200_000)) and 0)
    assert 0.0 < spent < 5.0


def _busy_cluster(seed: int, agent: str = "core") -> tuple[SimCluster, list[ContinuousFramework]]:
    cluster = SimCluster(seed=seed, agent=agent)
    rng = random.Random(seed)
    cluster.add_agents(40, "cpus:2;mem:2048", spread=2.0)
    frameworks = [
        cluster.add_framework(ContinuousFramework(
            cluster.engine, f"f{i}", task=(1.0, 1024.0), duration=normal_duration(rng, 5.0, 2.0)))
        for i in range(4)
    ]
    cluster.run_for(40.0)
    return cluster, frameworks


@pytest.mark.parametrize("agent", ["core", "model"])
def test_frameworks_share_the_cluster_and_master_and_agents_agree(agent: str) -> None:
    cluster, frameworks = _busy_cluster(5, agent)
    assert all(f.finished > 50 for f in frameworks)
    # DRF: four identical frameworks end up with about a quarter of the slots each.
    running = [f.running for f in frameworks]
    assert max(running) - min(running) <= 4, running
    # The master and the agents agree on what runs (but for updates in flight).
    on_agents = sum(a.running_tasks for a in cluster.agents)
    in_master = sum(1 for f in cluster.master.master.frameworks.values()
                    for t in f.tasks.values() if t.state == TaskState.TASK_RUNNING)
    assert abs(on_agents - in_master) <= 8


@pytest.mark.parametrize("agent", ["core", "model"])
def test_same_seed_same_run(agent: str) -> None:
    a, fa = _busy_cluster(11, agent)
    b, fb = _busy_cluster(11, agent)
    assert [f.finished for f in fa] == [f.finished for f in fb]
    assert a.master.busy_seconds == b.master.busy_seconds
    assert a.engine.events_run == b.engine.events_run
    c, fc = _busy_cluster(12, agent)
    assert [f.finished for f in fc] != [f.finished for f in fa] or c.engine.events_run != a.engine.events_run


@pytest.mark.parametrize("agent", ["core", "model"])
def test_agents_reregister_with_their_tasks_after_a_master_failover(agent: str) -> None:
    cluster, frameworks = _busy_cluster(7, agent)
    running_before = sum(a.running_tasks for a in cluster.agents)
    assert running_before > 0
    cluster.fail_over(session_timeout=2.0)
    cluster.run_for(6.0)
    master = cluster.master.master
    assert len(master.agents) == len(cluster.agents)
    assert all(f.connected for f in frameworks)
    # The new master knows every task the agents still run (none were lost).
    known = sum(len(a.tasks) for a in master.agents.values())
    assert known >= sum(a.running_tasks for a in cluster.agents) - 8
    assert master.counters.values.get("tasks_lost", 0) == 0
    # And work goes on.
    finished = sum(f.finished for f in frameworks)
    cluster.run_for(20.0)
    assert sum(f.finished for f in frameworks) > finished
    assert TaskState.TASK_RUNNING  # the enum the agents speak


class _Sink:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.received: list[tuple[float, object]] = []

    def receive(self, event: object) -> None:
        self.received.append((self.engine.now, event))

    def stream_closed(self, link: object) -> None:
        pass


def test_a_loop_turn_writes_once_per_client_and_sends_at_its_end() -> None:
    """The jobs waiting when a turn starts are one loop turn; what they emit goes out at its
    end, one write per distinct client (a socket's or a stream's cost) plus a record cost per
    record, from a turn of its own when nothing else waits (the shell's flush callbacks run in
    the loop's next turn); a job arriving later is the next turn and pays its own writes. A
    turn that wakes the sleeping loop costs a wake-up for how long it slept."""
    engine = Engine()
    node = MasterNode(engine, cost=FixedCost({"job": (0.01, 0.0)}), codec=False)
    engine.run(until=engine.now + 1.5)  # recovery and the first ticks: nothing to write
    busy0, t0, wakes0, turns0 = node.busy_seconds, engine.now, node.wakes, node.turns
    slept = t0 - node._idle_since  # type: ignore[operator]
    agent, framework = _Sink(engine), _Sink(engine)
    to_agent, to_framework = Link(agent), Link(framework)

    def job() -> int:
        node.outbox.send_agent(to_agent, "a1")  # type: ignore[arg-type]
        node.outbox.send_agent(to_agent, "a2")  # type: ignore[arg-type]
        node.outbox.send_framework(to_framework, "f")  # type: ignore[arg-type]
        return 0

    engine.at(t0, node._arrive, "job", job, ())
    engine.at(t0, node._arrive, "job", job, ())
    engine.run(until=t0 + 0.1)
    one_turn = SOCKET_WRITE_OVERHEAD + STREAM_WRITE_OVERHEAD + 6 * RECORD_OVERHEAD
    loop = wake_seconds(slept) + LOOP_TURN_OVERHEAD  # the wake-up, then the writes' own turn
    assert (node.wakes - wakes0, node.turns - turns0) == (1, 2)
    assert node.busy_seconds - busy0 == pytest.approx(0.02 + one_turn + loop)
    assert node.stats["job"].seconds == pytest.approx(0.02 + one_turn)
    end = t0 + 0.02 + one_turn + loop + node.latency
    assert [when for when, _ in agent.received] == pytest.approx([end] * 4)
    assert [event for _, event in agent.received] == ["a1", "a2", "a1", "a2"]
    assert framework.received == [(pytest.approx(end), "f"), (pytest.approx(end), "f")]

    slept = engine.now - node._idle_since  # type: ignore[operator]
    engine.at(engine.now, node._arrive, "job", job, ())
    engine.run(until=engine.now + 0.1)
    second_turn = SOCKET_WRITE_OVERHEAD + STREAM_WRITE_OVERHEAD + 3 * RECORD_OVERHEAD
    loop += wake_seconds(slept) + LOOP_TURN_OVERHEAD
    assert node.busy_seconds - busy0 == pytest.approx(0.03 + one_turn + second_turn + loop)


def test_a_wake_up_costs_more_the_longer_the_loop_slept() -> None:
    """`wake_seconds` follows the measured points (`WAKE_COSTS`), held at both ends."""
    (first, cheapest), *_, (last, dearest) = WAKE_COSTS
    assert wake_seconds(first / 10) == cheapest
    assert wake_seconds(last * 10) == dearest
    for (x0, y0), (x1, y1) in pairwise(WAKE_COSTS):
        assert wake_seconds(x0) == pytest.approx(y0)
        assert min(y0, y1) <= wake_seconds((x0 * x1) ** 0.5) <= max(y0, y1)


def test_the_first_message_after_a_wake_up_is_charged_cold_and_the_next_ones_warmer() -> None:
    """The regimes: the core's time times `CORE_FACTORS` at the job's position since the loop
    woke, and `COLD_MESSAGE_OVERHEAD` on a client message that is the first job after a
    wake-up. A given table is charged without them unless the node is told otherwise."""
    engine = Engine()
    node = MasterNode(engine, cost=FixedCost({"agent.other": (0.001, 0.0)}), codec=False)
    assert not node.regimes  # a test's table: charged as it is
    node.regimes = True
    engine.run(until=engine.now + 1.5)
    t0 = engine.now
    for _ in range(3):
        engine.at(t0, node._arrive, "agent.other", lambda: 0, ())
    engine.run(until=t0 + 0.1)
    charged = node.stats["agent.other"].seconds
    (_, cold), (_, second), (_, third) = CORE_FACTORS[:3]
    assert charged == pytest.approx(0.001 * (cold + second + third) + 3 * AGENT_MESSAGE_OVERHEAD
                                    + COLD_MESSAGE_OVERHEAD)
    assert cold > second > third > CORE_FACTORS[-1][1] > 1.0


def test_without_the_shell_overhead_writes_cost_nothing() -> None:
    engine = Engine()
    node = MasterNode(engine, cost=FixedCost({"job": (0.01, 0.0)}), codec=False, shell_overhead=False)
    sink = _Sink(engine)
    link = Link(sink)

    def job() -> int:
        node.outbox.send_agent(link, "a")  # type: ignore[arg-type]
        return 0

    engine.run(until=engine.now + 1.5)
    busy0 = node.busy_seconds
    engine.at(engine.now, node._arrive, "job", job, ())
    engine.run(until=engine.now + 0.1)
    assert node.busy_seconds - busy0 == pytest.approx(0.01)
    assert len(sink.received) == 1


def test_measured_cost_charges_its_share_of_a_collection_inside_a_job() -> None:
    import gc

    cost = MeasuredCost()
    cost.gc_share = 0.25
    held = [[] for _ in range(50_000)]  # something for the collection to walk
    cost.serve("tick", lambda: gc.collect() and 0)
    assert cost.gc_seconds > 0.0
    assert cost.gc_charged == pytest.approx(0.25 * cost.gc_seconds)
    assert held


def test_the_master_holds_a_part_of_the_simulators_heap() -> None:
    from mezzo.sim.heap import master_objects, master_share

    cluster = SimCluster(seed=1, cost="measured")
    cluster.add_agents(20, "cpus:1;mem:1024")
    cluster.run_for(2.0)
    assert master_objects(cluster.master.master) > 100
    assert 0.0 < master_share(cluster.master.master) < 1.0
    assert 0.0 < cluster.master.cost.gc_share < 1.0  # type: ignore[attr-defined]


def test_a_core_factor_scales_the_cores_charge_and_keeps_a_run_deterministic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`CORE_SLOWDOWN` (docs/evaluation.md, "The core's CPU in the real process") multiplies
    the core's tabled or measured time, not the shell's; the fixed model stays deterministic."""
    from mezzo.sim import master_node

    assert FixedCost(core_factor=2.0).serve("tick", lambda: 0) == 2 * FixedCost(core_factor=1.0).serve(
        "tick", lambda: 0)
    table = {"tick": (0.01, 0.0)}
    assert FixedCost(table).serve("tick", lambda: 0) == 0.01  # a table given is charged as it is
    monkeypatch.setattr(master_node, "CORE_SLOWDOWN", 1.5)
    assert FixedCost().core_factor == 1.5 and MeasuredCost().core_factor == 1.5
    a, fa = _busy_cluster(11)
    b, fb = _busy_cluster(11)
    assert [f.finished for f in fa] == [f.finished for f in fb]
    assert a.master.busy_seconds == b.master.busy_seconds


def test_core_times_count_the_cores_calls_in_the_simulator() -> None:
    """`mezzo.sim.coretime`: the timers the real master runs under (`bench/coretime.py`), here
    around the simulated master's core, and gone again afterwards."""
    from mezzo.master.core import Master
    from mezzo.sim.coretime import simulated

    before = Master.scheduler_call
    out = simulated(agents=20, frameworks=4, settle=5.0, window=5.0)
    assert Master.scheduler_call is before
    functions = out["functions"]
    assert out["launches"] > 0
    assert functions["Master.scheduler_call.ACCEPT"]["calls"] > 0
    assert functions["Master.agent_call.STATUS_UPDATE"]["us_per_call"] > 0
    assert functions["Master.scheduler_call.ACCEPT"]["outbox_us_per_call"] > 0
    # Each call is tagged with the simulated loop's idleness before it: the first core call
    # after a wake-up "cold", the next ones by their position since it.
    assert out["sleeps"] > 0
    regimes = out["regimes"]
    assert sum(v["calls"] for k, v in regimes.items() if k.startswith("Master.scheduler_call.ACCEPT@")) \
        == functions["Master.scheduler_call.ACCEPT"]["calls"]
    assert any(k.endswith("@cold") for k in regimes)


def test_core_times_regimes_name_a_calls_position_since_the_loop_woke() -> None:
    from mezzo.sim.coretime import _warm_name

    assert [_warm_name(n) for n in (2, 3, 4, 5, 9, 17, 64, 65)] == \
        ["w2", "w3-4", "w3-4", "w5-8", "w9-16", "w17-64", "w17-64", "w65+"]


def test_core_times_watch_the_event_loops_select() -> None:
    """In a real master (`bench/coretime.py`) the loop's `select()` is watched: a select that
    slept makes the next core call "cold"; uninstalling restores the selector."""
    import asyncio
    import selectors

    from mezzo.sim.coretime import CoreTimes

    before = selectors.DefaultSelector.select
    times = CoreTimes().watch_selector()
    try:
        times.on = True
        asyncio.run(asyncio.sleep(0.01))
    finally:
        times.uninstall()
    assert selectors.DefaultSelector.select is before
    assert times.selects >= 1 and times.sleeps >= 1 and times.slept_ns > 0
