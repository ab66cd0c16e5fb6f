"""A whole cluster in process on one FakeClock (`mezzo.testing.sim_cluster`): the master core
and agent cores wired together, schedulers scripted. Launch to acknowledged terminal update,
kill, update retries across a lost acknowledgement, agent disconnection and re-registration,
framework teardown."""

from __future__ import annotations

from mezzo.agent.base import AgentOptions
from mezzo.agent.state import ExecutorPhase
from mezzo.api.common import TaskID
from mezzo.resources import Resources
from mezzo.testing.master_cluster import task_info
from mezzo.testing.sim_cluster import SimCluster


def launch(cluster: SimCluster, sched, task_id: str = "t1"):
    cluster.advance(1)
    offer = sched.next_event("OFFERS").offers.offers[0]
    assert sched.launch(offer, [task_info(task_id, offer)]) == 202
    cluster.settle()
    return offer


def test_a_task_runs_finishes_and_everything_is_cleaned_up() -> None:
    c = SimCluster()
    agent = c.add_agent("cpus:2;mem:1024")
    assert agent.agent_id is not None and agent.core.registered
    sched = c.add_scheduler()
    launch(c, sched)
    running = sched.next_event("UPDATE").update.status
    assert (running.task_id.value, running.state) == ("t1", "TASK_RUNNING")
    assert running.agent_id.value == agent.agent_id
    sched.acknowledge(running)
    c.settle()
    agent.finish_task("t1")
    finished = sched.next_event("UPDATE").update.status
    assert finished.state == "TASK_FINISHED"
    sched.acknowledge(finished)
    c.settle()
    # The command executor exited after its task; with every update acknowledged the agent
    # has forgotten the framework, and the master the task.
    assert agent.core.frameworks == {}
    assert [f.id.value for f in agent.core.completed_frameworks] == [sched.framework_id]
    assert not c.master.frameworks[sched.framework_id].tasks
    assert agent.core.used == Resources()


def test_kill_reaches_the_fake_executor_and_comes_back_killed() -> None:
    c = SimCluster()
    c.add_agent()
    sched = c.add_scheduler()
    launch(c, sched)
    sched.acknowledge(sched.next_event("UPDATE").update.status)
    assert sched.call("KILL", {"task_id": {"value": "t1"}}) == 202
    c.settle()
    killed = sched.next_event("UPDATE").update.status
    assert killed.state == "TASK_KILLED"


def test_an_unacknowledged_update_is_retried_by_the_agent_core() -> None:
    c = SimCluster(agent_options=AgentOptions(work_dir="/sim", status_update_retry_interval=10.0))
    c.add_agent()
    sched = c.add_scheduler()
    launch(c, sched)
    first = sched.next_event("UPDATE").update.status  # not acknowledged
    c.advance(9)
    assert [e for e in sched.pending() if str(e.type) == "UPDATE"] == []
    c.advance(1)
    again = sched.next_event("UPDATE").update.status
    assert again.uuid == first.uuid and again.state == "TASK_RUNNING"


def test_agent_reregisters_with_its_task_after_a_disconnection() -> None:
    c = SimCluster()
    agent = c.add_agent()
    sched = c.add_scheduler()
    launch(c, sched)
    sched.acknowledge(sched.next_event("UPDATE").update.status)
    c.settle()
    agent.disconnect()
    assert not agent.core.registered
    c.advance(5)
    agent.reconnect()
    assert agent.core.registered
    record = c.master.agents[agent.agent_id]
    assert record.connected
    assert "t1" in {t for t in c.master.frameworks[sched.framework_id].tasks}
    ex = agent.core.frameworks[sched.framework_id].executors["t1"]
    assert ex.phase == ExecutorPhase.RUNNING
    assert ex.launched[TaskID(value="t1")].state == "TASK_RUNNING"


def test_teardown_shuts_the_framework_down_on_the_agent() -> None:
    c = SimCluster()
    agent = c.add_agent(finish=False)
    sched = c.add_scheduler()
    launch(c, sched)
    sched.acknowledge(sched.next_event("UPDATE").update.status)
    c.settle()
    assert sched.call("TEARDOWN") == 202
    c.settle()
    assert agent.core.frameworks == {}
    assert agent.executors.executors == {}


def test_many_agents_and_tasks_settle_deterministically() -> None:
    def run() -> list[tuple[str, str]]:
        c = SimCluster()
        for _ in range(5):
            c.add_agent("cpus:4;mem:4096", finish=True)
        sched = c.add_scheduler()
        seen: list[tuple[str, str]] = []
        for round_ in range(4):
            c.advance(1)
            events = sched.pending()
            sched.all_of("")  # everything pending is read now
            for i, event in enumerate(events):
                if str(event.type) == "OFFERS":
                    for j, offer in enumerate(event.offers.offers):
                        sched.launch(offer, [task_info(f"r{round_}-{i}-{j}", offer)])
                elif str(event.type) == "UPDATE":
                    status = event.update.status
                    seen.append((status.task_id.value, str(status.state)))
                    sched.acknowledge(status)
            c.settle()
        return seen

    first = run()
    assert first == run()
    assert {s for _, s in first} == {"TASK_RUNNING", "TASK_FINISHED"}
    assert len([1 for _, s in first if s == "TASK_FINISHED"]) >= 5
