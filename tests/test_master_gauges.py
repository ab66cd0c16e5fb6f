"""The gauges the master keeps as it changes (`mezzo.master.gauges`, `mezzo.resources.tally`)
read what a walk over its collections reads (the way `/metrics/snapshot` was computed before
issue 12), after every step of the lifecycles that move tasks, agents and offers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mezzo.api.common import FrameworkID, TaskID, TaskState, is_terminal
from mezzo.api.internal import AgentTask
from mezzo.master import metrics as master_metrics
from mezzo.master import views
from mezzo.master.base import MasterBase, MasterOptions
from mezzo.master.gauges import TaskIndex
from mezzo.resources import Resources
from mezzo.resources.tally import ScalarTally
from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info

GAUGE_STATES = (TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                TaskState.TASK_KILLING, TaskState.TASK_UNREACHABLE)
ACTIVE_STATES = [s for s in TaskState if not is_terminal(s) and s != TaskState.TASK_UNKNOWN]


def walked(master: MasterBase) -> dict[str, float]:
    """The gauge keys computed by walking every agent, task, executor and offer."""
    frameworks = list(master.frameworks.values())
    agents = list(master.agents.values())
    m: dict[str, float] = {
        "master/slaves_active": sum(1 for a in agents if a.active),
        "master/slaves_inactive": sum(1 for a in agents if not a.active),
        "master/slaves_connected": sum(1 for a in agents if a.connected),
        "master/slaves_disconnected": sum(1 for a in agents if not a.connected),
    }
    gauges = dict.fromkeys(GAUGE_STATES, 0)
    for fw in frameworks:
        for task in fw.tasks.values():
            if task.state in gauges:
                gauges[task.state] += 1
        gauges[TaskState.TASK_UNREACHABLE] += len(fw.unreachable_tasks)
    for state, count in gauges.items():
        m[f"master/tasks_{state.removeprefix('TASK_').lower()}"] = count
    total = sum((a.total for a in agents), Resources())
    used = sum((r for fw in frameworks for r in [
        *(t.resources for t in fw.tasks.values() if not t.recovered),
        *(e.resources for per_agent in fw.executors.values() for e in per_agent.values())]),
        Resources())
    offered = sum((o.resources for o in master.offers.values()), Resources())
    tq, uq, oq = total.quantities(), used.quantities(), offered.quantities()
    rtq, ruq = total.revocable().quantities(), used.revocable().quantities()
    for r in ("cpus", "gpus", "mem", "disk"):
        t, u = tq.get(r, 0.0), uq.get(r, 0.0)
        m[f"master/{r}_total"] = t
        m[f"master/{r}_used"] = u
        m[f"master/{r}_percent"] = (u / t) if t else 0.0
        m[f"master/{r}_offered"] = oq.get(r, 0.0)
        rt, ru = rtq.get(r, 0.0), ruq.get(r, 0.0)
        m[f"master/{r}_revocable_total"] = rt
        m[f"master/{r}_revocable_used"] = ru
        m[f"master/{r}_revocable_percent"] = (ru / rt) if rt else 0.0
    for fw in frameworks:
        prefix = master_metrics.framework_prefix(fw.info.name, fw.id)
        active = dict.fromkeys(ACTIVE_STATES, 0)
        for task in fw.tasks.values():
            if task.state in active:
                active[task.state] += 1
        for state, count in active.items():
            m[f"{prefix}tasks/active/{state.lower()}"] = float(count)
    return m


def check(master: MasterBase) -> None:
    expected = walked(master)
    got = {**views.metrics(master, master.now()), **master_metrics.framework_metrics(master)}
    assert {k: got[k] for k in expected} == expected
    filters = master.allocator.statistics()
    assert filters.offer_filters == sum(a.filters.count() for a in master.allocator._agents.values())  # type: ignore[attr-defined]


def test_tally_is_the_quantities_of_the_sum() -> None:
    values = [Resources.parse("cpus:0.1;mem:32.5;disk:3"), Resources.parse("cpus:0.2;ports:[1-5]"),
              Resources.parse("cpus(r):0.3;mem(r):1"), Resources.parse("cpus:0.7;gpus:1")]
    tally = ScalarTally()
    for r in values:
        tally.add(r)
    summed = sum(values, Resources())
    assert tally.quantities() == {k: v for k, v in summed.quantities().items() if k != "ports"}
    tally.remove(values[0])
    assert tally.quantities() == sum(values[1:], Resources()).scalars().quantities()
    assert ScalarTally().quantities() == {}


def test_task_index_follows_state_and_recovery_and_leaves_no_link() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:4096")
    sched = c.add_scheduler()
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    sched.launch(offer, [task_info("t1", offer), task_info("t2", offer)])
    fw = c.master.frameworks[sched.framework_id]
    index = fw.tasks
    assert isinstance(index, TaskIndex)
    assert index.states[TaskState.TASK_STAGING] == 2
    check(c.master)
    agent.update("t1", "TASK_RUNNING", framework_id=sched.framework_id)
    assert index.states[TaskState.TASK_RUNNING] == 1
    agent.update("t1", "TASK_FINISHED", framework_id=sched.framework_id)
    check(c.master)
    record = fw.tasks["t1"]
    for event in sched.all_of("UPDATE"):
        sched.acknowledge(event.update.status)
    assert record._index is None  # completed: no longer counted, and not linked
    # ... and kept as what the documents show of it (mezzo.master.completed), not as the record.
    assert next(t for t in fw.completed_tasks if t.task_id == "t1").state == TaskState.TASK_FINISHED
    check(c.master)


class Emulated:
    """What the scripted agents run: task id -> (agent, framework id, state, TaskInfo)."""

    def __init__(self, scheds: list[Any]) -> None:
        self.tasks: dict[str, tuple[Any, str, str, Any]] = {}
        self.infos = {s.framework_id: s.info for s in scheds}

    def take_runs(self, agents: list[Any]) -> None:
        for agent in agents:
            for run in agent.all_of("RUN_TASK"):
                task = run.run_task.task
                self.tasks[task.task_id.value] = (
                    agent, run.run_task.framework_info.id.value, "TASK_STAGING", task)
            agent.stream.events.clear()
            agent._cursor = 0

    def report(self, agent: Any) -> dict[str, Any]:
        """The re-registration lists of `agent`: its live tasks and their frameworks."""
        tasks = [(fid, tid, state, info) for tid, (a, fid, state, info) in self.tasks.items()
                 if a is agent and not is_terminal(TaskState(state))]
        infos = {fid: self.infos[fid] for fid, *_ in tasks}
        return {
            "frameworks": list(infos.values()),
            "tasks": [AgentTask(task_id=TaskID(value=tid), framework_id=FrameworkID(value=fid),
                                state=TaskState(state if state != "TASK_STAGING" else "TASK_RUNNING"),
                                resources=info.resources)
                      for fid, tid, state, info in tasks],
        }


def _lifecycle(c: MasterCluster, rng: random.Random, steps: int, *, failover: bool = False) -> None:
    """Random launches, updates, acknowledgements, kills, declines, disconnections,
    re-registrations with the agent's tasks, agent losses, a master failover and a framework
    teardown, the gauges checked after each step."""
    agents = [c.add_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31010]") for _ in range(4)]
    scheds = [c.add_scheduler(framework_info(f"fw{i}", capabilities=["PARTITION_AWARE"] if i % 2 else [],
                                             checkpoint=i > 0))
              for i in range(3)]
    emulated = Emulated(scheds)
    seq = 0
    for step in range(steps):
        if failover and step == steps // 2:
            c = MasterCluster(MasterOptions(agent_reregister_timeout=600), store=c.store)
            for agent in agents:
                agent.cluster = c
                agent.subscribe(**emulated.report(agent))
                check(c.master)
            for sched in scheds:
                sched.cluster = c
                sched.subscribe()
                check(c.master)
        c.allocate()
        for agent in agents:
            if agent.agent_id in c.master.agents:
                agent.pong()
        emulated.take_runs(agents)
        action = rng.random()
        live = [s for s in scheds if s.framework_id in c.master.frameworks]
        if not live:
            break
        sched = rng.choice(live)
        offers = [o.wire for o in c.master.offers.values() if o.framework_id == sched.framework_id]
        if offers and action < 0.45:
            offer = offers[0]
            tasks = []
            for _ in range(rng.randint(1, 3)):
                seq += 1
                tasks.append(task_info(f"t{seq}", offer, resources="cpus:0.5;mem:128"))
            sched.launch(offer, tasks, refuse_seconds=rng.choice([0, 5]))
        elif offers and action < 0.55:
            sched.call("DECLINE", {"offer_ids": [{"value": offers[0].id.value}],
                                   "filters": {"refuse_seconds": 10}})
        elif action < 0.8:
            for tid, (agent, fid, state, info) in list(emulated.tasks.items()):
                if is_terminal(TaskState(state)) or rng.random() < 0.5:
                    continue
                new = rng.choice(["TASK_STARTING", "TASK_RUNNING"] * 4
                                 + ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"])
                emulated.tasks[tid] = (agent, fid, new, info)
                if agent.agent_id in c.master.agents:
                    agent.update(tid, new, framework_id=fid)
        elif action < 0.88:
            agent = rng.choice(agents)
            if agent.agent_id in c.master.agents:
                agent.disconnect()
                check(c.master)
                if rng.random() < 0.5:
                    c.master.mark_unreachable(c.master.agents[agent.agent_id])
                    check(c.master)
            agent.subscribe(**emulated.report(agent))
        elif action < 0.95:
            fw = c.master.frameworks[sched.framework_id]
            if fw.tasks:
                task_id = rng.choice(list(fw.tasks))
                sched.call("KILL", {"task_id": {"value": task_id}})
        else:
            c.advance(rng.choice([1, 5]))
        for s in scheds:
            for event in s.all_of("UPDATE"):
                if s.framework_id in c.master.frameworks and event.update.status.uuid:
                    s.acknowledge(event.update.status)
        check(c.master)
    if scheds[0].framework_id in c.master.frameworks:
        scheds[0].call("TEARDOWN")
        check(c.master)


@pytest.mark.parametrize("seed", range(8))
def test_gauges_follow_random_lifecycles(seed: int) -> None:
    c = MasterCluster(MasterOptions(agent_reregister_timeout=600))
    _lifecycle(c, random.Random(seed), 80, failover=seed % 2 == 1)


def test_reservations_change_the_agents_total() -> None:
    c = MasterCluster(MasterOptions())
    c.add_agent("cpus:4;mem:4096")
    sched = c.add_scheduler(framework_info(roles=["r"], capabilities=["MULTI_ROLE"]))
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    reserve: dict[str, Any] = {"type": "RESERVE", "reserve": {"resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
         "allocation_info": {"role": "r"},
         "reservations": [{"type": "DYNAMIC", "role": "r", "principal": "p"}]}]}}
    sched.call("ACCEPT", {"offer_ids": [{"value": offer.id.value}], "operations": [reserve]})
    check(c.master)
    assert c.master.agents.tally.quantities()["cpus"] == 4.0
