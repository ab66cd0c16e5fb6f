"""Ending things: kills, executor and framework shutdowns, container exits.

A handler family of the agent core (`mezzo.agent.core.AgentCore`). What happens when:

- KILL of a task not yet delivered: TASK_KILLED (REASON_TASK_KILLED_DURING_LAUNCH) with the rest
  of its group; the executor is shut down if it has nothing left. KILL of a delivered task: a KILL
  event to the executor (the command executor applies the KillPolicy grace, SIGTERM then
  SIGKILL); if the executor cannot be reached it is shut down and the task gets TASK_KILLED.
  KILL of a task the agent does not know: TASK_LOST (REASON_TASK_UNKNOWN).
- Shutdown of an executor: SHUTDOWN event, then its container is destroyed when the grace period
  (`ExecutorInfo.shutdown_grace_period`, else `--executor_shutdown_grace_period`) has passed
  (`shutdown_deadline`, run by `tick`); at once if the executor has no stream.
- Shutdown of a framework: its update streams are forgotten (the master forgot its tasks),
  undelivered launches dropped, every executor shut down.
- Container limitation (an isolator saw a limit broken): the container is destroyed.
- Container exit: the executor is TERMINATED, its live tasks get a terminal update (see
  `termination_status`), the master gets EXECUTOR_EXITED, and the executor is completed once
  its terminal updates are acknowledged.
"""

from __future__ import annotations

from mezzo.agent.base import AgentCoreBase, log
from mezzo.agent.containerizer.records import Limitation, Termination
from mezzo.agent.launch import shutdown_grace
from mezzo.agent.outbox import RemoveContainerRecord
from mezzo.agent.state import (
    Executor,
    ExecutorPhase,
    Framework,
    PendingTermination,
    new_task,
    resources_of,
)
from mezzo.api import executor as exe
from mezzo.api.common import FrameworkID, KillPolicy, Reason, TaskID, TaskState
from mezzo.api.internal import AgentCall, AgentCallType, AgentExecutorExited


class EndingHandlers(AgentCoreBase):
    # ----------------------------------------------------------------- kill

    def kill_task(self, framework_id: FrameworkID, task_id: TaskID, policy: KillPolicy | None) -> None:
        fw = self.frameworks.get(framework_id.value)
        if fw is None:
            log.info("kill of task %s of unknown framework %s ignored", task_id, framework_id)
            return
        ex = self.task_index.get(task_id)
        if ex is not None and ex.framework_id == fw.id:
            launch = ex.queued_task(task_id)
            if launch is not None:
                self.kill_queued(fw, ex, task_id)
                return
            task = ex.launched.get(task_id)
            if task is None:
                return  # terminal already
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
        for other in fw.executors.values():
            if any(t.task_id == task_id for t in other.completed):
                return  # already terminal and acknowledged
        log.info("kill of unknown task %s: answering TASK_LOST", task_id)
        status = self.agent_status(
            task_id, TaskState.TASK_LOST, Reason.REASON_TASK_UNKNOWN,
            "Attempted to kill an unknown task", None,
        )
        self.accept_update(fw.id, status)

    def kill_queued(self, fw: Framework, ex: Executor, task_id: TaskID) -> None:
        """Not delivered yet: kill it here (with the rest of its group)."""
        launch = ex.queued_task(task_id)
        assert launch is not None
        ex.queued.remove(launch)
        for info in launch.tasks:
            self.set_resources(ex, ex.resources - resources_of([info.resources]))
            status = self.agent_status(
                info.task_id, TaskState.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                "Task killed before it was delivered to the executor", ex.id,
            )
            ex.launched[info.task_id] = new_task(info, fw.id, ex)
            self.executor_status(fw, ex, status)
        if not ex.has_live_work():
            self.shutdown_executor(ex, None)

    # ----------------------------------------------------------------- shutdowns

    def shutdown_grace(self, ex: Executor) -> float:
        return shutdown_grace(ex.info, self.options.executor_shutdown_grace_period)

    def shutdown_executor(self, ex: Executor, pending: PendingTermination | None) -> None:
        """SHUTDOWN to the executor; its container is destroyed after the grace period."""
        if ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            return
        ex.phase = ExecutorPhase.TERMINATING
        ex.pending_termination = pending or PendingTermination(
            TaskState.TASK_KILLED, Reason.REASON_EXECUTOR_TERMINATED, "Executor shut down"
        )
        ex.registration_deadline = None
        if ex.pid is None:
            return  # still launching: container_launched destroys it
        if self.send_to_executor(ex, exe.Event(type=exe.EventType.SHUTDOWN)):
            ex.shutdown_deadline = when = self.monotonic() + self.shutdown_grace(ex)
            self.wake_at(ex, when)
        else:
            self.outbox.destroy_container(ex.container_id)

    def shutdown_grace_expired(self, ex: Executor) -> None:
        ex.shutdown_deadline = None
        if ex.phase == ExecutorPhase.TERMINATING:
            self.outbox.destroy_container(ex.container_id)

    def shutdown_framework(self, framework_id: FrameworkID) -> None:
        fw = self.frameworks.get(framework_id.value)
        if fw is None:
            return
        log.info("shutting down framework %s", framework_id)
        fw.terminating = True
        # The master has forgotten this framework's tasks: no more updates or acks for them.
        self.updates.forget_framework(fw.id)
        for ex in list(fw.executors.values()):
            for info in ex.queued_tasks():
                self.task_index.pop(info.task_id, None)
            ex.queued.clear()
            self.shutdown_executor(ex, None)
        self.maybe_remove_framework(fw)

    def shutdown_agent(self, message: str) -> None:
        """The master's SHUTDOWN: end every executor, then the shell stops (forgetting the
        agent id, so that a restart registers a new agent)."""
        log.warning("master asked this agent to shut down: %s", message)
        self.stopping = True
        for fw in list(self.frameworks.values()):
            self.shutdown_framework(fw.id)
        self.outbox.stop_agent(True)

    # ----------------------------------------------------------------- exits

    def container_limited(self, container_id: str, limitation: Limitation) -> None:
        """A container broke a limit: destroy it (as Mesos does with a limited container);
        its tasks end TASK_FAILED with the limitation's reason when it has exited (see
        `termination_status`). A container the core does not know is destroyed too."""
        ex = self.containers.get(container_id)
        if ex is not None and ex.phase != ExecutorPhase.TERMINATED:
            log.info("container %s of executor %s reached a limit: %s", container_id, ex.id,
                     limitation.message)
            if ex.limitation is None:
                ex.limitation = limitation
        self.outbox.destroy_container(container_id)

    def executor_terminated(self, ex: Executor, termination: Termination) -> None:
        fw = self.frameworks.get(ex.framework_id.value)
        if ex.phase == ExecutorPhase.TERMINATED or fw is None:
            return
        self.used = self.used - ex.resources
        ex.phase = ExecutorPhase.TERMINATED
        self.metrics["executors_terminated"] += 1
        ex.registration_deadline = ex.shutdown_deadline = None
        if ex.stream is not None:
            self.outbox.close_executor(ex.stream, "executor terminated")
            ex.stream = None
        log.info("executor %s of framework %s terminated: %s", ex.id, fw.id, termination.message)
        state, reason, message = self.termination_status(ex, termination)
        for launch in ex.queued:
            for info in launch.tasks:
                ex.launched[info.task_id] = new_task(info, fw.id, ex)
        ex.queued.clear()
        for task in list(ex.launched.values()):
            if fw.terminating:
                del ex.launched[task.task_id]
                ex.completed.append(task)
                self.task_index.pop(task.task_id, None)
                continue
            status = self.agent_status(task.task_id, state, reason, message, ex.id)
            self.executor_status(fw, ex, status)
        if ex.pid is not None:
            self.outbox.send_master(
                AgentCall(
                    type=AgentCallType.EXECUTOR_EXITED, agent_id=self.info.id,
                    executor_exited=AgentExecutorExited(
                        framework_id=fw.id, executor_id=ex.id, status=termination.status,
                        command_executor=ex.command,
                    ),
                )
            )
        self.outbox.checkpoint(RemoveContainerRecord(ex.container_id))
        self.maybe_complete_executor(fw, ex)

    @staticmethod
    def termination_status(ex: Executor, termination: Termination) -> tuple[TaskState, Reason, str]:
        """The terminal state of the tasks an ended executor leaves: a limit breach wins, then
        why the agent ended it, else the executor failed."""
        limitation = termination.limitation or ex.limitation
        if limitation is not None:
            try:
                reason = Reason(limitation.reason)
            except ValueError:
                reason = Reason.REASON_CONTAINER_LIMITATION
            return TaskState.TASK_FAILED, reason, limitation.message
        if ex.pending_termination is not None:
            p = ex.pending_termination
            return p.state, p.reason, p.message
        return (
            TaskState.TASK_FAILED,
            Reason.REASON_EXECUTOR_TERMINATED,
            f"Executor terminated: {termination.message}",
        )
