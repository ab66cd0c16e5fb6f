"""Executor calls: SUBSCRIBE, UPDATE, MESSAGE, and the end of an executor's stream (spec §6).

A handler family of the agent core (`mezzo.agent.core.AgentCore`); the HTTP side (content
checks, decoding, status codes of the response) is `mezzo.agent.executor_api`. A call the
agent refuses raises `CallRefused(status, message)` before anything changes: 400 unknown
framework or executor or a malformed update, 403 an executor that has not subscribed, 503
while recovering (except SUBSCRIBE).

SUBSCRIBE: the stream starts with SUBSCRIBED (executor_info, framework_info with id, agent_info
with id, container_id), then the launches queued for the executor. A second SUBSCRIBE closes
the previous stream; an executor being shut down gets a single SHUTDOWN and the stream closes.
On re-subscription after an agent restart, the agent replays the executor's
`unacknowledged_updates`, and tasks the agent launched but the executor does not list in
`unacknowledged_tasks` while still STAGING are lost (TASK_LOST, REASON_AGENT_RESTARTED).

UPDATE: recorded (checkpointed for checkpointing frameworks) and forwarded; the ACKNOWLEDGED
event echoing the executor's uuid follows on the stream (also for a duplicate).
"""

from __future__ import annotations

import logging
from typing import Any

from mezzo.agent.base import CallRefused, log
from mezzo.agent.containerizer.records import Limitation
from mezzo.agent.launch import is_default_executor
from mezzo.agent.launches import LaunchHandlers
from mezzo.agent.state import Executor, ExecutorPhase, Framework
from mezzo.api import executor as exe
from mezzo.api.common import (
    ContainerID,
    ExecutorID,
    FrameworkID,
    Reason,
    Source,
    TaskState,
    TaskStatus,
)
from mezzo.api.internal import AgentCall, AgentCallType, AgentFrameworkMessage

NOT_RECOVERED = "Agent has not finished recovery"
NOT_SUBSCRIBED = "Executor is not subscribed"


class ExecutorHandlers(LaunchHandlers):
    def calling_executor(
        self, framework_id: FrameworkID, executor_id: ExecutorID, *, subscribed: bool
    ) -> tuple[Framework, Executor]:
        """The framework and executor a call names, or CallRefused."""
        if self.recovering and subscribed:
            raise CallRefused(503, NOT_RECOVERED)
        fw = self.frameworks.get(framework_id.value)
        if fw is None:
            raise CallRefused(400, "Framework cannot be found")
        ex = fw.executors.get(executor_id.value)
        if ex is None:
            raise CallRefused(400, "Executor cannot be found")
        if subscribed and ex.phase == ExecutorPhase.REGISTERING:
            raise CallRefused(403, NOT_SUBSCRIBED)
        return fw, ex

    # ----------------------------------------------------------------- SUBSCRIBE

    def executor_subscribed(
        self, framework_id: FrameworkID, executor_id: ExecutorID, sub: exe.Subscribe, stream: Any
    ) -> None:
        fw, ex = self.calling_executor(framework_id, executor_id, subscribed=False)
        if fw.terminating or ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            self.outbox.send_executor(stream, exe.Event(type=exe.EventType.SHUTDOWN))
            self.outbox.close_executor(stream, "executor is shutting down")
            return
        previous = ex.stream
        ex.stream = stream
        if previous is not None:
            self.outbox.close_executor(previous, "replaced by a new subscription")
        ex.registration_deadline = None
        ex.phase = ExecutorPhase.RUNNING
        if log.isEnabledFor(logging.INFO):  # one per task for command tasks: skip the arguments
            log.info("executor %s of framework %s subscribed", ex.id, fw.id)
        self.outbox.send_executor(
            stream,
            exe.Event(
                type=exe.EventType.SUBSCRIBED,
                subscribed=exe.Subscribed(
                    executor_info=ex.info, framework_info=fw.info, agent_info=self.info,
                    container_id=ContainerID(value=ex.container_id),
                ),
            ),
        )
        if ex.recovered:
            ex.recovered = False
            self.lose_unknown_staging(fw, ex, sub)
        for unacked in sub.unacknowledged_updates:
            self.record_update(fw, ex, unacked.status, None)
        self.deliver_queued(fw, ex)

    def lose_unknown_staging(self, fw: Framework, ex: Executor, sub: exe.Subscribe) -> None:
        known = {t.task_id for t in sub.unacknowledged_tasks}
        known.update(u.status.task_id for u in sub.unacknowledged_updates)
        for task in list(ex.launched.values()):
            if task.state == TaskState.TASK_STAGING and task.task_id not in known:
                status = self.agent_status(
                    task.task_id, TaskState.TASK_LOST, Reason.REASON_AGENT_RESTARTED,
                    "Task launched during agent restart", ex.id,
                )
                self.executor_status(fw, ex, status)

    def executor_disconnected(
        self, framework_id: FrameworkID, executor_id: ExecutorID, stream: Any
    ) -> None:
        ex = self.executor(framework_id, executor_id)
        if ex is not None and ex.stream is stream:
            ex.stream = None

    # ----------------------------------------------------------------- UPDATE

    def executor_update(
        self,
        framework_id: FrameworkID,
        executor_id: ExecutorID,
        status: TaskStatus,
        limitation: Limitation | None,
    ) -> None:
        fw, ex = self.calling_executor(framework_id, executor_id, subscribed=True)
        problem = None
        if status.source is None:
            status.source = Source.SOURCE_EXECUTOR
        if status.source != Source.SOURCE_EXECUTOR:
            problem = f"Received update with source {status.source}, expecting SOURCE_EXECUTOR"
        elif status.state == TaskState.TASK_STAGING:
            problem = "Received TASK_STAGING from executor"
        elif status.executor_id is not None and status.executor_id != ex.id:
            problem = f"ExecutorID in the status ({status.executor_id}) does not match the caller"
        if problem is None:
            problem = self.record_update(fw, ex, status, limitation)
        if problem is not None:
            self.metrics["invalid_status_updates"] += 1
            raise CallRefused(400, problem)

    def record_update(
        self, fw: Framework, ex: Executor, status: TaskStatus, limitation: Limitation | None
    ) -> str | None:
        """Record, forward, and acknowledge to the executor (also for duplicates); returns
        why the update cannot be taken, if it cannot."""
        if status.timestamp is None:
            status.timestamp = self.clock.now()
        builtin = ex.command or is_default_executor(ex.info, ex.command)
        if builtin and status.state == TaskState.TASK_FAILED and limitation is not None:
            # The OOM killer may kill the task before the containerizer notices: the built-in
            # executors then report a plain failure; the kernel's record says why.
            try:
                status.reason = Reason(limitation.reason)
            except ValueError:
                status.reason = Reason.REASON_CONTAINER_LIMITATION
            status.message = f"{limitation.message} ({status.message or 'task failed'})"
        try:
            self.executor_status(fw, ex, status)
        except ValueError as e:
            return str(e)
        assert status.uuid is not None
        self.send_to_executor(
            ex,
            exe.Event(
                type=exe.EventType.ACKNOWLEDGED,
                acknowledged=exe.Acknowledged(task_id=status.task_id, uuid=status.uuid),
            ),
        )
        return None

    # ----------------------------------------------------------------- MESSAGE

    def executor_message(
        self, framework_id: FrameworkID, executor_id: ExecutorID, data: bytes
    ) -> None:
        """An executor's MESSAGE, relayed to the scheduler through the master."""
        fw, ex = self.calling_executor(framework_id, executor_id, subscribed=True)
        self.outbox.send_master(
            AgentCall(
                type=AgentCallType.FRAMEWORK_MESSAGE, agent_id=self.info.id,
                framework_message=AgentFrameworkMessage(
                    framework_id=fw.id, executor_id=ex.id, data=data
                ),
            )
        )

    def message_to_executor(self, msg: AgentFrameworkMessage) -> None:
        """A scheduler's message for one of the executors here (FRAMEWORK_MESSAGE)."""
        ex = self.executor(msg.framework_id, msg.executor_id)
        if ex is None or not self.send_to_executor(
            ex, exe.Event(type=exe.EventType.MESSAGE, message=exe.EventMessage(data=msg.data))
        ):
            self.metrics["invalid_framework_messages"] += 1
            log.info("dropping framework message for executor %s", msg.executor_id)
            return
        self.metrics["valid_framework_messages"] += 1
