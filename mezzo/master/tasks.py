"""Task calls and status updates: KILL, SHUTDOWN, ACKNOWLEDGE, RECONCILE, MESSAGE, and the
agent's STATUS_UPDATE / FRAMEWORK_MESSAGE / EXECUTOR_EXITED (spec §5.4–§5.6).

Reliable updates (with a uuid) are forwarded with that uuid; the agent resends until the
scheduler's ACKNOWLEDGE is relayed back. Resources are recovered when the latest state is
terminal; the task moves to the completed list when its terminal update is acknowledged.
"""

from __future__ import annotations

from mezzo.api.common import (
    AgentID,
    ExecutorID,
    FrameworkID,
    Reason,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.internal import (
    AgentAcknowledge,
    AgentEvent,
    AgentEventType,
    AgentExecutorExited,
    AgentFrameworkMessage,
    AgentKillTask,
    AgentShutdownExecutor,
    AgentStatusUpdate,
)
from mezzo.api.scheduler import (
    Acknowledge,
    CallMessage,
    Event,
    EventMessage,
    EventType,
    Failure,
    Kill,
    Reconcile,
    ReconcileTask,
    Shutdown,
    Update,
)
from mezzo.master.base import MasterBase
from mezzo.master.records import AgentRecord, FrameworkRecord, TaskRecord

_RECONCILIATION = "Reconciliation: "


class TaskCalls(MasterBase):
    # ------------------------------------------------------------------ agent -> master

    def status_update(self, agent: AgentRecord, update: AgentStatusUpdate) -> None:
        status = update.status
        framework = self.frameworks.get(update.framework_id.value)
        task = framework.tasks.get(status.task_id.value) if framework else None
        if framework is None or task is None:
            # Unknown framework or task (e.g. already completed): the agent keeps retrying
            # until acknowledged; acknowledging on the scheduler's behalf would lose nothing
            # it could still act on, so the master lets the retry reach a re-subscribed
            # scheduler instead and only counts it.
            self.counters.inc("invalid_status_updates")
            return
        self.counters.inc("messages_status_update")
        self.counters.inc("valid_status_updates")
        if status.agent_id is None:
            status.agent_id = AgentID(value=agent.id)
        if status.executor_id is None and task.executor_id is not None:
            status.executor_id = ExecutorID(value=task.executor_id)
        if status.uuid is not None:
            task.status_update_state = status.state
            task.status_update_uuid = status.uuid
        if status.uuid is None or task.latest_uuid() != status.uuid:
            task.add_status(status)  # (a retried update is kept once)
        self.update_task_state(task, update.latest_state or status.state)
        if self.send(framework, Event(type=EventType.UPDATE, update=Update(status=status))) and status.uuid:
            task.update_sent_at = self.now()

    def framework_message(self, agent: AgentRecord, msg: AgentFrameworkMessage) -> None:
        framework = self.frameworks.get(msg.framework_id.value)
        if framework is None:
            self.counters.inc("dropped_messages")
            return
        self.counters.inc("messages_executor_to_framework")
        self.send(
            framework,
            Event(
                type=EventType.MESSAGE,
                message=EventMessage(
                    agent_id=AgentID(value=agent.id), executor_id=msg.executor_id, data=msg.data
                ),
            ),
        )

    def executor_exited(self, agent: AgentRecord, exited: AgentExecutorExited) -> None:
        framework = self.frameworks.get(exited.framework_id.value)
        if framework is None:
            return
        executor = framework.executors.get(agent.id, {}).pop(exited.executor_id.value, None)
        if executor is not None and executor.resources:
            self.allocator.recover_resources(
                framework.id, agent.id, executor.resources, None, self.now()
            )
            self.request_allocation()
        if not exited.command_executor:
            self.send(
                framework,
                Event(
                    type=EventType.FAILURE,
                    failure=Failure(
                        agent_id=AgentID(value=agent.id),
                        executor_id=exited.executor_id,
                        status=exited.status,
                    ),
                ),
            )

    # ------------------------------------------------------------------ scheduler calls

    def acknowledge(self, framework: FrameworkRecord, ack: Acknowledge) -> None:
        self.counters.inc("messages_status_update_acknowledgement")
        agent = self.agents.get(ack.agent_id.value)
        task = framework.tasks.get(ack.task_id.value)
        if agent is None:
            self.counters.inc("invalid_status_update_acknowledgements")
            return
        self.counters.inc("valid_status_update_acknowledgements")
        if task is not None and task.status_update_uuid == ack.uuid and task.update_sent_at is not None:
            self.update_round_trip_timer.observe(self.now() - task.update_sent_at)
            task.update_sent_at = None
        if (
            task is not None
            and task.status_update_uuid == ack.uuid
            and task.status_update_state is not None
            and is_terminal(task.status_update_state)
        ):
            self.complete_task(task)
        if agent.connected:
            self.outbox.send_agent(
                agent.stream,
                AgentEvent(
                    type=AgentEventType.ACKNOWLEDGE,
                    acknowledge=AgentAcknowledge(
                        framework_id=FrameworkID(value=framework.id),
                        task_id=ack.task_id,
                        uuid=ack.uuid,
                    ),
                ),
            )

    def kill(self, framework: FrameworkRecord, kill: Kill) -> None:
        self.counters.inc("messages_kill_task")
        task = framework.tasks.get(kill.task_id.value)
        if task is None:
            # Unknown task: answered as an explicit reconciliation of it (spec §5.6).
            self.reconcile(framework, Reconcile(tasks=[ReconcileTask(task_id=kill.task_id, agent_id=kill.agent_id)]))
            return
        if kill.agent_id is not None and kill.agent_id.value != task.agent_id:
            return
        agent = self.agents.get(task.agent_id)
        if agent is not None and agent.connected:
            self.outbox.send_agent(
                agent.stream,
                AgentEvent(
                    type=AgentEventType.KILL_TASK,
                    kill_task=AgentKillTask(
                        framework_id=FrameworkID(value=framework.id),
                        task_id=kill.task_id,
                        kill_policy=kill.kill_policy or task.info.kill_policy,
                    ),
                ),
            )

    def shutdown_executor(self, framework: FrameworkRecord, call: Shutdown) -> None:
        self.counters.inc("messages_shutdown_executor")
        agent = self.agents.get(call.agent_id.value)
        if agent is not None and agent.connected:
            self.outbox.send_agent(
                agent.stream,
                AgentEvent(
                    type=AgentEventType.SHUTDOWN_EXECUTOR,
                    shutdown_executor=AgentShutdownExecutor(
                        framework_id=FrameworkID(value=framework.id), executor_id=call.executor_id
                    ),
                ),
            )

    def message(self, framework: FrameworkRecord, call: CallMessage) -> None:
        self.counters.inc("messages_framework_to_executor")
        agent = self.agents.get(call.agent_id.value)
        if agent is None or not agent.connected:
            self.counters.inc("dropped_messages")
            return
        self.outbox.send_agent(
            agent.stream,
            AgentEvent(
                type=AgentEventType.FRAMEWORK_MESSAGE,
                framework_message=AgentFrameworkMessage(
                    framework_id=FrameworkID(value=framework.id),
                    executor_id=call.executor_id,
                    data=call.data,
                ),
            ),
        )

    # ------------------------------------------------------------------ RECONCILE

    def reconcile(self, framework: FrameworkRecord, call: Reconcile) -> None:
        """Answer per spec §5.5 (UPDATE events, no uuid, SOURCE_MASTER, REASON_RECONCILIATION)."""
        self.counters.inc("messages_reconcile_tasks")
        if not call.tasks:
            for task in [*framework.tasks.values(), *framework.unreachable_tasks.values()]:
                self.send_update(framework, self._reconciled(framework, task))
            return
        for entry in call.tasks:
            known: TaskRecord | None = framework.tasks.get(
                entry.task_id.value
            ) or framework.unreachable_tasks.get(entry.task_id.value)
            if known is not None:
                self.send_update(framework, self._reconciled(framework, known))
                continue
            status = self._reconcile_unknown(framework, entry)
            if status is not None:
                self.send_update(framework, status)

    def _reconciled(self, framework: FrameworkRecord, task: TaskRecord) -> TaskStatus:
        state = task.status_update_state or task.state
        latest = task.latest_status()
        status = self.master_status(
            framework, task.task_id, state, Reason.REASON_RECONCILIATION,
            _RECONCILIATION + "Latest task state",
            agent_id=task.agent_id, executor_id=task.executor_id,
            unreachable_time=task.unreachable_time,
        )
        if latest is not None:
            status.healthy = latest.healthy
            status.check_status = latest.check_status
            status.container_status = latest.container_status
        return status

    def _reconcile_unknown(self, framework: FrameworkRecord, entry: ReconcileTask) -> TaskStatus | None:
        task_id = entry.task_id.value
        agent_id = entry.agent_id.value if entry.agent_id else None
        if agent_id is not None and agent_id in self.recovered_agents:
            return None  # the agent may still re-register: no answer yet
        if agent_id is None and self.recovered_agents:
            return None
        pa = framework.partition_aware
        reason = Reason.REASON_RECONCILIATION
        if agent_id is not None and agent_id in self.agents:
            state, msg = (TaskState.TASK_GONE if pa else TaskState.TASK_LOST), "Task is unknown to the agent"
            return self.master_status(framework, task_id, state, reason, _RECONCILIATION + msg, agent_id=agent_id)
        if agent_id is not None and agent_id in self.unreachable_agents:
            when = self.unreachable_agents[agent_id][1]
            state = TaskState.TASK_UNREACHABLE if pa else TaskState.TASK_LOST
            return self.master_status(
                framework, task_id, state, reason, _RECONCILIATION + "Task is unreachable",
                agent_id=agent_id, unreachable_time=when if pa else None,
            )
        if agent_id is not None and agent_id in self.gone_agents:
            state = TaskState.TASK_GONE_BY_OPERATOR if pa else TaskState.TASK_LOST
            return self.master_status(
                framework, task_id, state, reason, _RECONCILIATION + "Task is gone", agent_id=agent_id
            )
        state = TaskState.TASK_UNKNOWN if pa else TaskState.TASK_LOST
        return self.master_status(
            framework, task_id, state, reason, _RECONCILIATION + "Task is unknown", agent_id=agent_id
        )
