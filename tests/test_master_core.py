"""The master core on a FakeClock: subscription lifecycle, offers, launches, status updates,
reconciliation, kill, agent loss and re-registration, registry recovery."""

from __future__ import annotations

import pytest

from mezzo.api.common import TaskState
from mezzo.master.base import MasterOptions
from mezzo.master.core import CallRefused
from mezzo.master.registry import AdmitAgent, MarkReachable, MarkUnreachable
from mezzo.store.memory import MemoryStore
from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info


def offer_of(sched):
    return sched.next_event("OFFERS").offers.offers[0]


def running_task(cluster, sched, agent, task_id="t1"):
    cluster.allocate()
    offer = offer_of(sched)
    assert sched.launch(offer, [task_info(task_id, offer)]) == 202
    agent.next_event("RUN_TASK")
    agent.update(task_id, "TASK_RUNNING", framework_id=sched.framework_id)
    update = sched.next_event("UPDATE")
    sched.acknowledge(update.update.status)
    return offer


# ---------------------------------------------------------------------------- subscribe


def test_subscribe_sends_subscribed_then_heartbeat_and_offers() -> None:
    c = MasterCluster()
    c.add_agent("cpus:2;mem:1024")
    s = c.add_scheduler()
    assert s.stream.types() == ["SUBSCRIBED", "HEARTBEAT"]
    assert s.stream.events[0].subscribed.heartbeat_interval_seconds == 15.0
    c.allocate()
    offer = offer_of(s)
    assert offer.allocation_info is None
    assert {r.role for r in offer.resources} == {"*"}
    assert all(r.allocation_info is None for r in offer.resources)
    c.advance(15)
    assert "HEARTBEAT" in [str(e.type) for e in s.pending()]


def test_multi_role_offers_carry_allocation_info() -> None:
    c = MasterCluster()
    c.add_agent("cpus:2;mem:1024")
    s = c.add_scheduler(framework_info(capabilities=["MULTI_ROLE"], roles=["a"]))
    c.allocate()
    offer = offer_of(s)
    assert offer.allocation_info.role == "a"
    assert {r.allocation_info.role for r in offer.resources} == {"a"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"roles": ["a"]}, "MULTI_ROLE"),
        ({"role": "-bad"}, "invalid"),
        ({"failover_timeout": -1.0}, "failover_timeout"),
    ],
)
def test_semantic_refusal_is_error_then_close(fields, message) -> None:
    c = MasterCluster()
    s = c.add_scheduler(framework_info(**fields), subscribe=False)
    result = s.subscribe()
    assert result.framework_id is None and message in result.error
    assert s.stream.types() == ["ERROR"] and s.stream.closed
    assert c.master.frameworks == {}


def test_roles_whitelist_and_root_submissions() -> None:
    c = MasterCluster(MasterOptions(roles=frozenset({"ok"}), root_submissions=False))
    assert c.add_scheduler(framework_info(role="other"), subscribe=False).subscribe().error
    assert c.add_scheduler(framework_info(user="root"), subscribe=False).subscribe().error
    assert c.add_scheduler(framework_info(role="ok"), subscribe=False).subscribe().error is None


def test_failover_old_stream_gets_error_and_offers_return() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer_of(s)
    old = s.stream
    s.subscribe()
    assert old.types()[-1] == "ERROR" and old.events[-1].error.message == "Framework failed over"
    assert old.closed
    assert s.stream.types() == ["SUBSCRIBED", "HEARTBEAT"]
    assert c.master.offers == {}
    c.allocate()
    offer_of(s)  # the same resources come back at once (no filter)


def test_disconnect_then_failover_timeout_removes_framework() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(failover_timeout=10.0))
    running_task(c, s, agent)
    s.disconnect()
    fw = c.master.frameworks[s.framework_id]
    assert not fw.connected and not c.master.offers
    c.advance(5)
    assert s.framework_id in c.master.frameworks
    c.advance(6)
    assert s.framework_id in c.master.completed_frameworks
    assert agent.next_event("SHUTDOWN_FRAMEWORK")
    task = c.master.completed_frameworks[s.framework_id].completed_tasks[0]
    assert task.state == TaskState.TASK_KILLED
    assert task.statuses[-1].reason == "REASON_FRAMEWORK_REMOVED"
    # A later SUBSCRIBE with that id is refused.
    assert s.subscribe().error == "Framework has been removed"


def test_resubscribe_within_failover_timeout_keeps_tasks() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(failover_timeout=10.0))
    running_task(c, s, agent)
    s.disconnect()
    c.advance(5)
    s.subscribe()
    c.advance(20)
    assert list(c.master.frameworks[s.framework_id].tasks) == ["t1"]


def test_teardown_closes_stream_without_error() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    running_task(c, s, agent)
    assert s.call("TEARDOWN") == 202
    assert s.stream.closed and "ERROR" not in s.stream.types()
    assert agent.next_event("SHUTDOWN_FRAMEWORK")
    assert s.framework_id in c.master.completed_frameworks


def test_call_refusals_change_nothing() -> None:
    c = MasterCluster()
    s = c.add_scheduler(framework_info(failover_timeout=100.0))
    with pytest.raises(CallRefused) as missing:
        s.call("REVIVE", stream_id=None)
    assert missing.value.status == 400
    with pytest.raises(CallRefused) as wrong:
        s.call("REVIVE", stream_id="nope")
    assert wrong.value.status == 400
    s.disconnect()
    with pytest.raises(CallRefused) as forbidden:
        s.call("REVIVE")
    assert forbidden.value.status == 403
    s.framework_id = "unknown"
    with pytest.raises(CallRefused) as unknown:
        s.call("REVIVE")
    assert unknown.value.status == 400


# ---------------------------------------------------------------------------- offers


def test_decline_filter_default_and_revive() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    s.call("DECLINE", {"offer_ids": [{"value": offer.id.value}]})
    c.allocate()
    assert not s.all_of("OFFERS")
    c.advance(5.5)
    assert s.all_of("OFFERS")


def test_decline_refuse_seconds_and_revive_clears_it() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    s.call("DECLINE", {"offer_ids": [{"value": offer.id.value}], "filters": {"refuse_seconds": 100}})
    c.advance(50)
    assert not s.all_of("OFFERS")
    s.call("REVIVE")
    c.allocate()
    assert s.all_of("OFFERS")


def test_suppress_stops_offers() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    s.call("SUPPRESS")
    c.advance(3)
    assert not s.all_of("OFFERS")


def test_offer_timeout_rescinds() -> None:
    c = MasterCluster(MasterOptions(offer_timeout=30.0))
    c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    c.advance(31)
    rescind = s.next_event("RESCIND")
    assert rescind.rescind.offer_id == offer.id


# ---------------------------------------------------------------------------- launches


def test_launch_update_ack_flow_and_completion() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:1;mem:512")
    s = c.add_scheduler()
    running_task(c, s, agent)
    ack = agent.next_event("ACKNOWLEDGE")
    assert ack.acknowledge.task_id.value == "t1"
    fw = c.master.frameworks[s.framework_id]
    assert fw.tasks["t1"].state == TaskState.TASK_RUNNING
    status = agent.update("t1", "TASK_FINISHED", framework_id=s.framework_id)
    update = s.next_event("UPDATE").update.status
    assert update.uuid == status.uuid and update.state == "TASK_FINISHED"
    assert "t1" in fw.tasks  # until acknowledged
    assert fw.tasks["t1"].recovered  # but its resources are back
    s.acknowledge(update)
    assert "t1" not in fw.tasks and fw.completed_tasks[-1].task_id == "t1"


def test_unacknowledged_update_is_resent_by_agent_and_forwarded_again() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    s.launch(offer, [task_info("t1", offer)])
    status = agent.update("t1", "TASK_RUNNING", framework_id=s.framework_id)
    s.drop_next("UPDATE")  # lost on the way
    # The agent retries the same update (same uuid).
    from mezzo.api.common import FrameworkID
    from mezzo.api.internal import AgentCall, AgentCallType, AgentStatusUpdate

    agent.call(AgentCall(type=AgentCallType.STATUS_UPDATE, status_update=AgentStatusUpdate(
        framework_id=FrameworkID(value=s.framework_id), status=status)))
    assert s.next_event("UPDATE").update.status.uuid == status.uuid


def test_invalid_tasks_get_task_error() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:1;mem:512")
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    bad_id = task_info("a/b", offer)
    too_big = task_info("big", offer, resources="cpus:2;mem:32")
    no_command = task_info("nocmd", offer)
    no_command.command = None
    s.launch(offer, [bad_id, too_big, no_command])
    errors = s.all_of("UPDATE")
    assert [(u.update.status.task_id.value, u.update.status.state, u.update.status.reason) for u in errors] == [
        ("a/b", "TASK_ERROR", "REASON_TASK_INVALID"),
        ("big", "TASK_ERROR", "REASON_TASK_INVALID"),
        ("nocmd", "TASK_ERROR", "REASON_TASK_INVALID"),
    ]
    assert all(u.update.status.uuid is None for u in errors)
    assert not agent.all_of("RUN_TASK")
    assert c.master.frameworks[s.framework_id].tasks == {}


def test_a_running_executor_takes_tasks_with_its_own_info_only() -> None:
    """A task naming a running executor's id launches on it when its ExecutorInfo is the same
    (whichever way it was built), and gets TASK_ERROR when it differs."""
    import msgspec

    from mezzo.api.common import CommandInfo, ExecutorID, ExecutorInfo

    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:4096")
    s = c.add_scheduler()

    def executor(command: str) -> ExecutorInfo:
        return ExecutorInfo(executor_id=ExecutorID(value="e"), command=CommandInfo(value=command))

    c.allocate()
    offer = offer_of(s)
    s.launch(offer, [
        msgspec.structs.replace(task_info(name, offer, resources="cpus:1;mem:64"), command=None,
                                executor=executor(command))
        for name, command in (("t1", "run-e"), ("t2", "run-e"), ("t3", "run-something-else"))
    ])
    runs = [r.run_task.task.task_id.value for r in agent.all_of("RUN_TASK")]
    assert runs == ["t1", "t2"]
    errors = [u.update.status for u in s.all_of("UPDATE") if u.update.status.state == "TASK_ERROR"]
    assert [(e.task_id.value, e.reason) for e in errors] == [("t3", "REASON_TASK_INVALID")]
    assert "not compatible with the running executor 'e'" in (errors[0].message or "")


@pytest.mark.parametrize(("caps", "state"), [([], "TASK_LOST"), (["PARTITION_AWARE"], "TASK_DROPPED")])
def test_unknown_offer_gives_lost_or_dropped(caps, state) -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(capabilities=caps))
    c.allocate()
    offer = offer_of(s)
    s.call("DECLINE", {"offer_ids": [{"value": offer.id.value}]})
    s.launch(offer, [task_info("t1", offer)])
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason, status.source) == (state, "REASON_INVALID_OFFERS", "SOURCE_MASTER")
    assert not agent.all_of("RUN_TASK")


def test_unused_remainder_declined_with_call_filters() -> None:
    c = MasterCluster()
    c.add_agent("cpus:1;mem:512")
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    s.launch(offer, [task_info("t1", offer)], refuse_seconds=50)
    c.advance(10)
    assert not s.all_of("OFFERS")


def test_unbuilt_operation_is_refused_before_anything_changes() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    with pytest.raises(CallRefused) as refused:
        s.call("ACCEPT", {"offer_ids": [{"value": offer.id.value}], "operations": [
            {"type": "CREATE_DISK", "create_disk": {}}]})
    assert refused.value.status == 400 and "CREATE_DISK" in refused.value.message
    assert offer.id.value in c.master.offers


# ---------------------------------------------------------------------------- reconcile / kill


def test_reconciliation_table() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(capabilities=["PARTITION_AWARE"]))
    running_task(c, s, agent)
    s.call("RECONCILE", {"tasks": []})
    implicit = s.all_of("UPDATE")
    assert [(u.update.status.task_id.value, u.update.status.state, u.update.status.reason) for u in implicit] == [
        ("t1", "TASK_RUNNING", "REASON_RECONCILIATION")]
    assert implicit[0].update.status.message.startswith("Reconciliation:")
    s.call("RECONCILE", {"tasks": [
        {"task_id": {"value": "t1"}},
        {"task_id": {"value": "x"}, "agent_id": {"value": agent.agent_id}},
        {"task_id": {"value": "y"}},
        {"task_id": {"value": "z"}, "agent_id": {"value": "nowhere"}},
    ]})
    answers = [(u.update.status.task_id.value, u.update.status.state) for u in s.all_of("UPDATE")]
    assert answers == [("t1", "TASK_RUNNING"), ("x", "TASK_GONE"), ("y", "TASK_UNKNOWN"), ("z", "TASK_UNKNOWN")]


def test_reconcile_non_partition_aware_gets_lost() -> None:
    c = MasterCluster()
    c.add_agent()
    s = c.add_scheduler()
    s.call("RECONCILE", {"tasks": [{"task_id": {"value": "y"}}]})
    status = s.next_event("UPDATE").update.status
    assert status.state == "TASK_LOST" and status.agent_id is None


def test_kill_forwards_or_reconciles() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    running_task(c, s, agent)
    s.call("KILL", {"task_id": {"value": "t1"}})
    assert agent.next_event("KILL_TASK").kill_task.task_id.value == "t1"
    s.call("KILL", {"task_id": {"value": "t1"}, "agent_id": {"value": "other"}})
    assert not agent.all_of("KILL_TASK")
    s.call("KILL", {"task_id": {"value": "nope"}})
    assert s.next_event("UPDATE").update.status.state == "TASK_LOST"


# ---------------------------------------------------------------------------- agents


@pytest.mark.parametrize(("caps", "state"), [([], "TASK_LOST"), (["PARTITION_AWARE"], "TASK_UNREACHABLE")])
def test_agent_missing_pings_becomes_unreachable(caps, state) -> None:
    c = MasterCluster(MasterOptions(agent_ping_timeout=15.0, max_agent_ping_timeouts=5))
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(capabilities=caps))
    running_task(c, s, agent)
    c.advance(60)
    assert agent.agent_id in c.master.agents
    c.advance(30)
    assert agent.agent_id not in c.master.agents
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason) == (state, "REASON_AGENT_REMOVED")
    assert s.next_event("FAILURE").failure.agent_id.value == agent.agent_id
    assert isinstance(c.outbox.operations[-1], MarkUnreachable)


def test_answered_pings_keep_agent() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    for _ in range(10):
        c.advance(15)
        agent.pong()
    assert agent.agent_id in c.master.agents


def test_unreachable_agent_comes_back_with_its_tasks() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(capabilities=["PARTITION_AWARE"]))
    offer = running_task(c, s, agent)
    c.master.mark_unreachable(c.master.agents[agent.agent_id])
    s.all_of("UPDATE")
    from mezzo.api.common import FrameworkID, TaskID
    from mezzo.api.internal import AgentTask

    agent.subscribe(frameworks=[c.master.frameworks[s.framework_id].info], tasks=[AgentTask(
        task_id=TaskID(value="t1"), framework_id=FrameworkID(value=s.framework_id),
        state=TaskState.TASK_RUNNING, resources=task_info("t1", offer).resources)])
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason) == ("TASK_RUNNING", "REASON_AGENT_REREGISTERED")
    assert c.master.frameworks[s.framework_id].tasks["t1"].state == TaskState.TASK_RUNNING
    assert isinstance(c.outbox.operations[-1], MarkReachable)


def test_disconnected_agent_loses_non_checkpointing_tasks() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    running_task(c, s, agent)
    agent.disconnect()
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason) == ("TASK_LOST", "REASON_AGENT_DISCONNECTED")
    c.advance(601)
    assert agent.agent_id in c.master.unreachable_agents


def test_registration_is_recorded_and_recovered_after_restart() -> None:
    store = MemoryStore()
    c1 = MasterCluster(store=store)
    agent = c1.add_agent()
    assert isinstance(c1.outbox.operations[0], AdmitAgent)
    c2 = MasterCluster(MasterOptions(agent_reregister_timeout=600.0), store=store)
    assert agent.agent_id in c2.master.recovered_agents
    # Explicit reconciliation for a task on a recovered agent gets no answer yet.
    s = c2.add_scheduler()
    s.call("RECONCILE", {"tasks": [{"task_id": {"value": "t"}, "agent_id": {"value": agent.agent_id}}]})
    assert not s.all_of("UPDATE")
    c2.advance(601)
    assert agent.agent_id in c2.master.unreachable_agents
    assert s.next_event("FAILURE").failure.agent_id.value == agent.agent_id  # Mesos's sendSlaveLost
    c3 = MasterCluster(store=store)
    assert agent.agent_id in c3.master.unreachable_agents


def test_recovered_agent_reregisters_in_time() -> None:
    store = MemoryStore()
    c1 = MasterCluster(store=store)
    agent = c1.add_agent()
    c2 = MasterCluster(store=store)
    agent.cluster = c2
    assert agent.subscribe().agent_id == agent.agent_id
    assert agent.agent_id in c2.master.agents and not c2.master.recovered_agents
    c2.advance(700)
    assert agent.agent_id in c2.master.agents or agent.agent_id in c2.master.unreachable_agents


def test_batched_status_updates_are_forwarded_in_order() -> None:
    from mezzo.api.common import AgentID, FrameworkID, Source, TaskID, TaskStatus
    from mezzo.api.internal import AgentCall, AgentCallType, AgentStatusUpdate

    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:1024")
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    ids = ["a", "b", "c"]
    s.launch(offer, [task_info(t, offer, resources="cpus:1;mem:32") for t in ids])
    statuses = [
        TaskStatus(task_id=TaskID(value=t), state=TaskState.TASK_RUNNING, source=Source.SOURCE_EXECUTOR,
                   uuid=next(agent.uuids), agent_id=AgentID(value=agent.agent_id))
        for t in ids
    ]
    fid = FrameworkID(value=s.framework_id)
    agent.call(AgentCall(type=AgentCallType.STATUS_UPDATE, status_updates=[
        AgentStatusUpdate(framework_id=fid, status=st) for st in statuses]))
    updates = s.all_of("UPDATE")
    assert [(u.update.status.task_id.value, u.update.status.uuid) for u in updates] == [
        (st.task_id.value, st.uuid) for st in statuses]
    assert all(t.state == "TASK_RUNNING" for t in c.master.frameworks[s.framework_id].tasks.values())


def test_status_update_call_without_updates_is_refused() -> None:
    from mezzo.api.internal import AgentCall, AgentCallType

    c = MasterCluster()
    agent = c.add_agent()
    with pytest.raises(CallRefused, match="status_update"):
        agent.call(AgentCall(type=AgentCallType.STATUS_UPDATE))


def test_message_shutdown_and_request_reach_the_agent_or_are_counted() -> None:
    import base64

    from mezzo.api.common import ExecutorID, FrameworkID
    from mezzo.api.internal import AgentCall, AgentCallType, AgentFrameworkMessage

    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    data = base64.b64encode(b"hello executor").decode()
    assert s.call("MESSAGE", {"agent_id": {"value": agent.agent_id}, "executor_id": {"value": "e1"},
                              "data": data}) == 202
    msg = agent.next_event("FRAMEWORK_MESSAGE").framework_message
    assert (msg.framework_id.value, msg.executor_id.value, msg.data) == (s.framework_id, "e1", b"hello executor")

    assert s.call("SHUTDOWN", {"agent_id": {"value": agent.agent_id}, "executor_id": {"value": "e1"}}) == 202
    shut = agent.next_event("SHUTDOWN_EXECUTOR").shutdown_executor
    assert (shut.framework_id.value, shut.executor_id.value) == (s.framework_id, "e1")

    # A message to an agent the master does not know is dropped and counted, not an error.
    assert s.call("MESSAGE", {"agent_id": {"value": "nope"}, "executor_id": {"value": "e1"}, "data": data}) == 202
    assert c.master.counters.values["dropped_messages"] == 1

    # REQUEST is accepted and ignored (as Mesos' allocator does).
    assert s.call("REQUEST", {"requests": [{"agent_id": {"value": agent.agent_id}}]}) == 202

    # And the executor's reply travels back as a MESSAGE event.
    agent.call(AgentCall(type=AgentCallType.FRAMEWORK_MESSAGE, framework_message=AgentFrameworkMessage(
        framework_id=FrameworkID(value=s.framework_id), executor_id=ExecutorID(value="e1"), data=b"hi back")))
    event = s.next_event("MESSAGE").message
    assert (event.agent_id.value, event.executor_id.value, event.data) == (agent.agent_id, "e1", b"hi back")


# ---------------------------------------------------------------------------- tasks an agent omits


def reported(task_id, framework_id, offer, state=TaskState.TASK_RUNNING):
    from mezzo.api.common import FrameworkID, TaskID
    from mezzo.api.internal import AgentTask

    return AgentTask(task_id=TaskID(value=task_id), framework_id=FrameworkID(value=framework_id),
                     state=state, resources=task_info(task_id, offer).resources)


def launched_not_received(c, s, agent, task_id="t1"):
    """ACCEPT an offer; the RUN_TASK goes out on the agent's stream but is lost with it."""
    c.allocate()
    offer = offer_of(s)
    assert s.launch(offer, [task_info(task_id, offer, resources="cpus:4;mem:4096")]) == 202
    agent.drop_next("RUN_TASK")
    return offer


@pytest.mark.parametrize(("caps", "state"), [([], "TASK_LOST"), (["PARTITION_AWARE"], "TASK_DROPPED")])
def test_task_whose_launch_was_lost_in_a_reregistration_gets_a_terminal_update(caps, state) -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:4096")
    s = c.add_scheduler(framework_info(capabilities=caps, checkpoint=True))
    launched_not_received(c, s, agent)
    # The agent re-registers (its stream broke) without the task.
    agent.subscribe(frameworks=[])
    assert agent.next_event().type == "SUBSCRIBED"
    reconcile = agent.next_event("RECONCILE_TASKS").reconcile_tasks
    assert reconcile.framework_id.value == s.framework_id
    assert [t.value for t in reconcile.task_ids] == ["t1"]
    assert reconcile.framework.capabilities == c.master.frameworks[s.framework_id].info.capabilities
    # Until the agent answers, the master keeps the task and its resources.
    fw = c.master.frameworks[s.framework_id]
    assert fw.tasks["t1"].state == TaskState.TASK_STAGING
    c.allocate()
    assert not s.all_of("OFFERS")
    # The agent does not know the task: it answers as a Mesos agent does (reliably).
    agent.update("t1", state, framework_id=s.framework_id, source="SOURCE_AGENT",
                 reason="REASON_RECONCILIATION")
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.reason, status.source) == (state, "REASON_RECONCILIATION", "SOURCE_AGENT")
    assert status.uuid is not None
    s.acknowledge(status)
    assert "t1" not in fw.tasks and fw.completed_tasks[-1].state == state
    c.allocate()
    assert s.next_event("OFFERS")  # the resources are free again


def test_task_the_agent_reports_is_not_reconciled() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:4;mem:4096")
    s = c.add_scheduler(framework_info(checkpoint=True))
    offer = launched_not_received(c, s, agent)
    fw_info = c.master.frameworks[s.framework_id].info
    agent.subscribe(frameworks=[fw_info], tasks=[reported("t1", s.framework_id, offer, TaskState.TASK_STAGING)])
    assert agent.types_pending() == ["SUBSCRIBED"]
    assert c.master.frameworks[s.framework_id].tasks["t1"].info.command.value == "true"  # same record


def test_unreported_task_already_terminal_is_completed_without_a_second_update() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(checkpoint=True))
    running_task(c, s, agent)
    agent.update("t1", "TASK_FINISHED", framework_id=s.framework_id)
    s.next_event("UPDATE")  # forwarded; the acknowledgement reached the agent but not us
    agent.subscribe(frameworks=[])
    assert agent.types_pending() == ["SUBSCRIBED"]
    fw = c.master.frameworks[s.framework_id]
    assert "t1" not in fw.tasks and fw.completed_tasks[-1].state == TaskState.TASK_FINISHED
    assert not s.all_of("UPDATE")


def test_unreachable_agent_returning_without_a_task_reconciles_it() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler(framework_info(capabilities=["PARTITION_AWARE"]))
    running_task(c, s, agent)
    c.master.mark_unreachable(c.master.agents[agent.agent_id])
    assert agent.stream.closed  # so that a partitioned agent re-registers once it can
    assert s.next_event("UPDATE").update.status.state == "TASK_UNREACHABLE"
    agent.subscribe(frameworks=[])
    reconcile = agent.next_event("RECONCILE_TASKS").reconcile_tasks
    assert [t.value for t in reconcile.task_ids] == ["t1"]
    fw = c.master.frameworks[s.framework_id]
    assert "t1" in fw.tasks and "t1" not in fw.unreachable_tasks
    agent.update("t1", "TASK_DROPPED", framework_id=s.framework_id, source="SOURCE_AGENT",
                 reason="REASON_RECONCILIATION")
    status = s.next_event("UPDATE").update.status
    assert status.state == "TASK_DROPPED"
    s.acknowledge(status)
    assert fw.completed_tasks[-1].task_id == "t1"


def test_agent_reporting_a_removed_framework_is_told_to_shut_it_down() -> None:
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    offer = running_task(c, s, agent)
    fw_info = c.master.frameworks[s.framework_id].info
    agent.disconnect()
    s.call("TEARDOWN")
    agent.subscribe(frameworks=[fw_info], tasks=[reported("t1", s.framework_id, offer)])
    assert agent.next_event("SHUTDOWN_FRAMEWORK").shutdown_framework.framework_id.value == s.framework_id


def test_removed_agent_task_whose_terminal_update_was_not_forwarded_yet_is_lost() -> None:
    """The agent knew the task finished but the framework had only seen RUNNING: removing the
    agent must not complete the task silently."""
    c = MasterCluster()
    agent = c.add_agent()
    s = c.add_scheduler()
    c.allocate()
    offer = offer_of(s)
    s.launch(offer, [task_info("t1", offer)])
    agent.update("t1", "TASK_RUNNING", framework_id=s.framework_id, latest_state="TASK_FINISHED")
    assert s.next_event("UPDATE").update.status.state == "TASK_RUNNING"  # not acknowledged
    c.master.mark_unreachable(c.master.agents[agent.agent_id])
    status = s.next_event("UPDATE").update.status
    assert (status.task_id.value, status.state, status.reason) == ("t1", "TASK_LOST", "REASON_AGENT_REMOVED")


def test_dropped_framework_without_failover_timeout_frees_its_offers_within_one_interval() -> None:
    c = MasterCluster(MasterOptions(allocation_interval=1.0))
    c.add_agent("cpus:2;mem:1024")
    first = c.add_scheduler(framework_info("first"))
    c.allocate()
    offer_of(first)  # the whole agent
    second = c.add_scheduler(framework_info("second"))
    c.advance(1.0)
    assert not second.all_of("OFFERS")
    first.disconnect()  # failover_timeout 0
    assert first.framework_id in c.master.completed_frameworks and c.master.offers == {}
    c.advance(1.0)
    [event] = second.all_of("OFFERS")
    assert {r.name: r.scalar.value for r in event.offers.offers[0].resources if r.scalar} == {"cpus": 2, "mem": 1024}


def test_reconciliation_while_an_unreachable_agent_re_registers_says_unreachable() -> None:
    """Found by the chaos test: while a returning agent's registry write was under way the
    agent was in no collection, so reconciling its tasks answered TASK_UNKNOWN, and a
    PARTITION_AWARE framework relaunched tasks that were still running."""
    store = MemoryStore()
    first = MasterCluster(store=store)
    agent = first.add_agent()
    first.master.mark_unreachable(first.master.agents[agent.agent_id])
    second = MasterCluster(store=store)
    s = second.add_scheduler(framework_info(capabilities=["PARTITION_AWARE"]))
    agent.cluster = second
    second.outbox.hold_registry = True
    agent.subscribe()
    assert agent.agent_id in second.master.registering
    s.call("RECONCILE", {"tasks": [{"task_id": {"value": "t"}, "agent_id": {"value": agent.agent_id}}]})
    status = s.next_event("UPDATE").update.status
    assert (status.state, status.message) == ("TASK_UNREACHABLE", "Reconciliation: Task is unreachable")
    second.outbox.release_registry()
    assert agent.agent_id in second.master.agents and not second.master.unreachable_agents


def test_reconciliation_while_a_recovered_agent_re_registers_waits() -> None:
    store = MemoryStore()
    first = MasterCluster(store=store)
    agent = first.add_agent()
    second = MasterCluster(store=store)
    s = second.add_scheduler(framework_info(capabilities=["PARTITION_AWARE"]))
    agent.cluster = second
    second.outbox.hold_registry = True
    agent.info.hostname = "renamed"  # changed info: a registry write first
    agent.subscribe()
    assert agent.agent_id in second.master.registering
    s.call("RECONCILE", {"tasks": [{"task_id": {"value": "t"}, "agent_id": {"value": agent.agent_id}}]})
    assert not s.all_of("UPDATE")  # as for any agent not re-registered yet
    second.outbox.release_registry()
    assert agent.agent_id in second.master.agents and not second.master.recovered_agents
