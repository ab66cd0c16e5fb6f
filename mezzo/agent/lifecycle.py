"""Ending things on the agent: kills, executor and framework shutdowns, executor exits.

A mixin of `mezzo.agent.agent.Agent` (split out to keep each module to one concern); it uses
the agent's collaborators (`containerizer`, `updates`, `checkpointer`, `send_call`) and
collections (`frameworks`, `completed_frameworks`). What happens when:

- KILL of a task not yet delivered: TASK_KILLED (REASON_TASK_KILLED_DURING_LAUNCH) with the rest
  of its group; the executor is shut down if it has nothing left. KILL of a delivered task: a KILL
  event to the executor (the command executor applies the KillPolicy grace, SIGTERM then
  SIGKILL); if the executor cannot be reached it is ended and the task gets TASK_KILLED.
- Shutdown of an executor: SHUTDOWN event, then the container is destroyed after the grace
  period (`ExecutorInfo.shutdown_grace_period`, else `--executor_shutdown_grace_period`).
- Executor exit: live tasks get a terminal update (see `_termination_status`), the master gets
  EXECUTOR_EXITED, and the executor is completed once its terminal updates are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mezzo.agent.containerizer import Termination
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.state import (
    Executor,
    ExecutorPhase,
    Framework,
    PendingTermination,
    new_task,
    resources_of,
)
from mezzo.api import executor as exe
from mezzo.api.common import (
    FrameworkCapabilityType,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    Reason,
    TaskID,
    TaskState,
)
from mezzo.api.internal import AgentCall, AgentCallType, AgentExecutorExited

log = logging.getLogger(__name__)


class LifecycleMixin:
    """Kill / shutdown / exit handling of the Agent (see the module docstring)."""

    # Provided by Agent.
    frameworks: dict[str, Framework]
    containerizer: Any
    updates: Any
    checkpointer: Any
    flags: Any
    metrics: dict[str, int]
    info: Any
    completed_frameworks: Any
    stopped: asyncio.Event
    send_call: Any
    spawn: Any
    agent_status: Any
    executor_status: Any
    _accept_update: Any
    _framework: Any
    _find_task: Any
    send_to_executor: Any

    # ================================================================= kill and shutdown

    def kill_task(self, framework_id: FrameworkID, task_id: TaskID, policy: KillPolicy | None) -> None:
        fw = self.frameworks.get(framework_id.value)
        if fw is None:
            log.info("kill of task %s of unknown framework %s ignored", task_id, framework_id)
            return
        for ex in list(fw.executors.values()):
            launch = ex.queued_task(task_id)
            if launch is not None:
                # Not delivered yet: kill it here (with the rest of its group).
                ex.queued.remove(launch)
                for info in launch.tasks:
                    ex.resources = ex.resources - resources_of([info.resources])
                    status = self.agent_status(
                        info.task_id, TaskState.TASK_KILLED,
                        Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                        "Task killed before it was delivered to the executor", ex.id,
                    )
                    ex.launched[info.task_id] = new_task(info, fw.id, ex)
                    self.executor_status(fw, ex, status)
                if not ex.has_live_work():
                    self.shutdown_executor(ex, None)
                return
            task = ex.launched.get(task_id)
            if task is not None:
                if ex.phase == ExecutorPhase.RUNNING and self.send_to_executor(
                    ex,
                    exe.Event(
                        type=exe.EventType.KILL,
                        kill=exe.Kill(task_id=task_id, kill_policy=policy or task.kill_policy),
                    ),
                ):
                    return
                # Cannot reach the executor: end it; its tasks get TASK_KILLED.
                self.shutdown_executor(
                    ex,
                    PendingTermination(
                        TaskState.TASK_KILLED, Reason.REASON_EXECUTOR_UNREGISTERED,
                        "Task killed: executor not reachable",
                    ),
                )
                return
            if ex.find_task(task_id) is not None or any(t.task_id == task_id for t in ex.completed):
                return  # already terminal
        log.info("kill of unknown task %s: answering TASK_LOST", task_id)
        status = self.agent_status(
            task_id, TaskState.TASK_LOST, Reason.REASON_TASK_UNKNOWN,
            "Attempted to kill an unknown task", None,
        )
        self._accept_update(fw.id, status)

    def shutdown_grace(self, ex: Executor) -> float:
        period = ex.info.shutdown_grace_period
        if period is not None:
            return period.nanoseconds / 1e9
        return self.flags.executor_shutdown_grace_period

    def shutdown_executor(self, ex: Executor, pending: PendingTermination | None) -> None:
        """SHUTDOWN to the executor, destroy the container after the grace period."""
        if ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            return
        ex.phase = ExecutorPhase.TERMINATING
        ex.pending_termination = pending or PendingTermination(
            TaskState.TASK_KILLED, Reason.REASON_EXECUTOR_TERMINATED, "Executor shut down"
        )
        if ex.registration_timer is not None:
            ex.registration_timer.cancel()
        if ex.pid is None:
            return  # still launching: _start_container destroys it
        if self.send_to_executor(ex, exe.Event(type=exe.EventType.SHUTDOWN)):
            loop = asyncio.get_running_loop()
            ex.shutdown_timer = loop.call_later(
                self.shutdown_grace(ex), lambda: self.spawn(self._destroy(ex))
            )
        else:
            self.spawn(self._destroy(ex))

    async def _destroy(self, ex: Executor) -> None:
        with contextlib.suppress(Exception):
            await self.containerizer.destroy(ex.container_id)

    def shutdown_framework(self, framework_id: FrameworkID) -> None:
        fw = self.frameworks.get(framework_id.value)
        if fw is None:
            return
        log.info("shutting down framework %s", framework_id)
        fw.terminating = True
        # The master has forgotten this framework's tasks: no more updates or acks for them.
        self.updates.forget_framework(fw.id)
        for ex in list(fw.executors.values()):
            ex.queued.clear()
            self.shutdown_executor(ex, None)
        self._maybe_remove_framework(fw)

    def update_framework(self, info: FrameworkInfo) -> None:
        if info.id is not None and info.id.value in self.frameworks:
            self._framework(info)

    def reconcile_tasks(
        self, framework_id: FrameworkID, task_ids: list[TaskID], framework: FrameworkInfo | None
    ) -> None:
        """The master believes these tasks run here; answer TASK_DROPPED (PARTITION_AWARE
        frameworks) or TASK_LOST for unknown ones, reliably (as a Mesos agent does)."""
        partition_aware = framework is not None and any(
            c.type == FrameworkCapabilityType.PARTITION_AWARE for c in framework.capabilities
        )
        state = TaskState.TASK_DROPPED if partition_aware else TaskState.TASK_LOST
        for task_id in task_ids:
            if self._find_task(task_id) is None:
                status = self.agent_status(
                    task_id, state, Reason.REASON_RECONCILIATION,
                    "Reconciliation: task unknown to the agent", None,
                )
                self._accept_update(framework_id, status)

    async def shutdown(self, remove_checkpoint: bool = False) -> None:
        """Shut every executor down and stop the agent (master's SHUTDOWN)."""
        for fw in list(self.frameworks.values()):
            self.shutdown_framework(fw.id)
        for fw in list(self.frameworks.values()):
            for ex in list(fw.executors.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.containerizer.wait(ex.container_id),
                                           self.shutdown_grace(ex) + 5)
        if remove_checkpoint:
            with contextlib.suppress(OSError):
                layout.latest_agent_path(self.flags.work_dir).unlink()
        self.stopped.set()

    # ================================================================= executor exits

    def executor_terminated(self, ex: Executor, termination: Termination) -> None:
        fw = self.frameworks.get(ex.framework_id.value)
        if ex.phase == ExecutorPhase.TERMINATED or fw is None:
            return
        ex.phase = ExecutorPhase.TERMINATED
        self.metrics["executors_terminated"] += 1
        for timer in (ex.registration_timer, ex.shutdown_timer):
            if timer is not None:
                timer.cancel()
        if ex.stream is not None:
            ex.stream.close("executor terminated")
            ex.stream = None
        log.info("executor %s of framework %s terminated: %s", ex.id, fw.id, termination.message)
        state, reason, message = self._termination_status(ex, termination)
        for launch in ex.queued:
            for info in launch.tasks:
                ex.launched[info.task_id] = new_task(info, fw.id, ex)
        ex.queued.clear()
        for task in list(ex.launched.values()):
            if fw.terminating:
                del ex.launched[task.task_id]
                ex.completed.append(task)
                continue
            status = self.agent_status(task.task_id, state, reason, message, ex.id)
            if reason == Reason.REASON_CONTAINER_LIMITATION_MEMORY and termination.limitation:
                status.message = termination.limitation.message
            self.executor_status(fw, ex, status)
        if ex.pid is not None:
            self.send_call(
                AgentCall(
                    type=AgentCallType.EXECUTOR_EXITED, agent_id=self.info.id,
                    executor_exited=AgentExecutorExited(
                        framework_id=fw.id, executor_id=ex.id, status=termination.status,
                        command_executor=ex.command,
                    ),
                )
            )
        self.checkpointer.remove_container(ex.container_id)
        self._maybe_complete_executor(fw, ex)

    @staticmethod
    def _termination_status(ex: Executor, termination: Termination) -> tuple[TaskState, Reason, str]:
        if termination.limitation is not None:
            try:
                reason = Reason(termination.limitation.reason)
            except ValueError:
                reason = Reason.REASON_CONTAINER_LIMITATION
            return TaskState.TASK_FAILED, reason, termination.limitation.message
        if ex.pending_termination is not None:
            p = ex.pending_termination
            return p.state, p.reason, p.message
        return (
            TaskState.TASK_FAILED,
            Reason.REASON_EXECUTOR_TERMINATED,
            f"Executor terminated: {termination.message}",
        )

    def _maybe_complete_executor(self, fw: Framework, ex: Executor) -> None:
        if not ex.is_done() or fw.executors.get(ex.id.value) is not ex:
            return
        del fw.executors[ex.id.value]
        fw.completed_executors.append(ex)
        if ex.checkpoint:
            self.checkpointer.remove_executor(fw.id.value, ex.id.value)
        self._maybe_remove_framework(fw)

    def _maybe_remove_framework(self, fw: Framework) -> None:
        if fw.executors or self.frameworks.get(fw.id.value) is not fw:
            return
        del self.frameworks[fw.id.value]
        self.completed_frameworks.append(fw)
        if fw.checkpoint:
            self.checkpointer.remove_framework(fw.id.value)


