"""The master's per-agent timer heap, and that pings and re-registration deadlines still fire
with it (on the in-process cluster, FakeClock)."""

from __future__ import annotations

import random

from mezzo.master.base import MasterOptions
from mezzo.master.timers import DeadlineQueue
from mezzo.testing.master_cluster import MasterCluster


def test_deadline_queue_matches_a_scan() -> None:
    rng = random.Random(7)
    queue = DeadlineQueue()
    model: dict[str, float] = {}
    now = 0.0
    for _ in range(5000):
        op = rng.random()
        key = f"a{rng.randrange(50)}"
        if op < 0.5:
            when = now + rng.uniform(0, 10)
            queue.set(key, when)
            model[key] = when
        elif op < 0.6:
            queue.discard(key)
            model.pop(key, None)
        else:
            now += rng.uniform(0, 1)
            due = queue.pop_due(now)
            expected = sorted((w, k) for k, w in model.items() if w <= now)
            assert due == [k for _, k in expected]
            for k in due:
                del model[k]
        assert queue.earliest() == (min(model.values()) if model else None)
        assert len(queue) == len(model)


def test_agents_are_pinged_on_time_and_a_silent_one_becomes_unreachable() -> None:
    cluster = MasterCluster(MasterOptions(agent_ping_timeout=2.0, max_agent_ping_timeouts=3))
    quiet = cluster.add_agent()
    chatty = cluster.add_agent()
    cluster.advance(2.0)
    assert quiet.next_event("PING") and chatty.next_event("PING")
    for _ in range(4):
        chatty.pong()
        cluster.advance(2.0)
    assert chatty.agent_id in cluster.master.agents
    assert quiet.agent_id not in cluster.master.agents
    assert quiet.agent_id in cluster.master.unreachable_agents


def test_a_disconnected_agent_is_unreachable_after_the_reregister_timeout() -> None:
    cluster = MasterCluster(MasterOptions(agent_reregister_timeout=30.0))
    agent = cluster.add_agent()
    agent.disconnect()
    assert cluster.master.next_deadline() <= cluster.clock.now() + 30.0
    cluster.advance(29.0)
    assert agent.agent_id in cluster.master.agents
    cluster.advance(1.5)
    assert agent.agent_id in cluster.master.unreachable_agents
    # Coming back clears it.
    agent.subscribe()
    assert agent.agent_id in cluster.master.agents
    assert agent.agent_id not in cluster.master.reregister_timers


def test_heartbeats_every_interval_and_failover_timeout_removes_the_framework() -> None:
    from mezzo.testing.master_cluster import framework_info

    cluster = MasterCluster(MasterOptions(heartbeat_interval=5.0))
    sched = cluster.add_scheduler(framework_info(failover_timeout=20.0))
    sched.all_of("HEARTBEAT")
    cluster.advance(5.0)
    assert len(sched.all_of("HEARTBEAT")) == 1
    cluster.advance(10.0)
    assert len(sched.all_of("HEARTBEAT")) == 2
    sched.disconnect()
    cluster.advance(19.0)
    assert sched.framework_id in cluster.master.frameworks
    cluster.advance(1.5)
    assert sched.framework_id not in cluster.master.frameworks
    assert sched.framework_id in cluster.master.completed_frameworks
    assert sched.framework_id not in cluster.master.failover_timers
