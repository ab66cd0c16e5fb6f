"""`AgentCore`: the agent's decision core, without asyncio, files or sockets.

Everything the agent decides happens here: running tasks in executors, delivering launches,
kills and shutdowns with their grace periods, turning container exits into terminal updates,
reliable status updates (the `StatusUpdateManager` of `mezzo.agent.updates`), registration and
re-registration with the master, and rebuilding all of it from the checkpoint tree after a
restart. It is one mutator: the shell (`mezzo.agent.agent`), the emulated agent of the
benchmarks and the in-process cluster (`mezzo.testing.sim_cluster`) change agent state only by

- `handle(event)`: one typed input (`mezzo.agent.events.AgentInput`: the master's events,
  executor calls, container outcomes, recovery), dispatched by an exhaustive `match`;
  executor calls the agent refuses raise `CallRefused` before anything changes;
- `tick()`: run every timer due at `clock.monotonic()` (executor registration timeouts,
  shutdown grace periods, the executor re-registration window after recovery, status update
  retries with exponential backoff); `next_deadline()` says when the next one is due.

Effects leave only through the injected `AgentOutbox` (`mezzo.agent.outbox`): containers to
launch or destroy, events for executors, calls to the master, checkpoint records. Queries
(`subscribe_call`, `frameworks`, `updates`, `metrics`...) read state and change nothing.

Handler families (each a class in the chain `AgentCoreBase` -> `EndingHandlers` ->
`LaunchHandlers` -> `ExecutorHandlers` -> `AgentCore`): `base` (state, shared helpers),
`endings` (kill, shutdown, exits), `launches` (RUN_TASK, containers, delivery), `executors`
(executor calls); this module adds the dispatch, the master's events, timers and recovery.
"""

from __future__ import annotations

import heapq

from mezzo.agent import checkpoint
from mezzo.agent.base import AgentOptions, CallRefused, log
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.events import (
    AgentInput,
    ContainerExited,
    ContainerLaunched,
    ContainerLaunchFailed,
    ContainerLimited,
    ExecutorDisconnected,
    ExecutorMessage,
    ExecutorSubscribed,
    ExecutorUpdate,
    MasterDisconnected,
    RecoverCheckpoint,
    TasksFetched,
)
from mezzo.agent.executors import ExecutorHandlers
from mezzo.agent.nested import container_name
from mezzo.agent.outbox import AgentRecord, ContainerPidRecord
from mezzo.agent.state import (
    Executor,
    ExecutorPhase,
    Framework,
    PendingTermination,
    new_task,
    record_status,
    resources_of,
)
from mezzo.api.common import (
    AgentID,
    FrameworkCapabilityType,
    FrameworkID,
    FrameworkInfo,
    Operation,
    Reason,
    TaskID,
    TaskState,
    is_terminal,
)
from mezzo.api.internal import (
    AgentApplyOperation,
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentExecutor,
    AgentPong,
    AgentSubscribe,
    AgentTask,
)
from mezzo.resources import Resources

__all__ = ["VERSION", "AgentCore", "AgentOptions", "CallRefused"]

VERSION = "1.11.0"
# What this agent tells the master it supports (Mesos's agent capabilities): operation
# feedback on its default resources needs the last two.
CAPABILITIES = ("MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT",
                "RESOURCE_PROVIDER", "RESIZE_VOLUME", "AGENT_OPERATION_FEEDBACK")


class AgentCore(ExecutorHandlers):
    """The agent's decision core (see the module docstring)."""

    # ================================================================= the one entry point

    def handle(self, event: AgentInput) -> None:
        """Apply one input. Raises CallRefused (nothing changed) for a refused executor call."""
        # The cases of every task come first (a launch is RUN_TASK, ContainerLaunched,
        # ExecutorSubscribed for a new executor, ExecutorUpdate, ACKNOWLEDGE).
        match event:
            case AgentEvent():
                self.master_event(event)
            case ExecutorUpdate(framework_id, executor_id, status, limitation):
                self.executor_update(framework_id, executor_id, status, limitation)
            case ContainerLaunched(container_id, pid):
                self.container_launched(container_id, pid)
            case ExecutorSubscribed(framework_id, executor_id, subscribe, stream):
                self.executor_subscribed(framework_id, executor_id, subscribe, stream)
            case MasterDisconnected():
                self.registered = False
                self.updates.connected = False
                log.info("disconnected from the master")
            case ExecutorMessage(framework_id, executor_id, data):
                self.executor_message(framework_id, executor_id, data)
            case ExecutorDisconnected(framework_id, executor_id, stream):
                self.executor_disconnected(framework_id, executor_id, stream)
            case ContainerLaunchFailed(container_id, message):
                self.container_launch_failed(container_id, message)
            case ContainerLimited(container_id, limitation):
                self.container_limited(container_id, limitation)
            case ContainerExited(container_id, termination):
                ex = self.containers.get(container_id)
                if ex is not None:
                    self.executor_terminated(ex, termination)
            case TasksFetched(container_id, key, error):
                self.tasks_fetched(container_id, key, error)
            case RecoverCheckpoint(state):
                self.recover(state)
        if self.recovering and self.recovery_deadline is not None:
            self.maybe_finish_recovery(timed_out=False)

    def master_event(self, event: AgentEvent) -> None:
        """One event of the master's stream."""
        match event.type:
            case AgentEventType.SUBSCRIBED if event.subscribed is not None:
                self.subscribed(event.subscribed.agent_id, event.subscribed.master_info)
            case AgentEventType.RUN_TASK if event.run_task is not None:
                e = event.run_task
                self.run_task(e.framework_info, [e.task], e.executor_info, group=False)
            case AgentEventType.RUN_TASK_GROUP if event.run_task_group is not None:
                g = event.run_task_group
                self.run_task(g.framework_info, g.task_group.tasks, g.executor_info, group=True)
            case AgentEventType.KILL_TASK if event.kill_task is not None:
                k = event.kill_task
                self.kill_task(k.framework_id, k.task_id, k.kill_policy)
            case AgentEventType.ACKNOWLEDGE if event.acknowledge is not None:
                a = event.acknowledge
                self.acknowledge(a.framework_id, a.task_id, a.uuid)
            case AgentEventType.SHUTDOWN_FRAMEWORK if event.shutdown_framework is not None:
                self.shutdown_framework(event.shutdown_framework.framework_id)
            case AgentEventType.SHUTDOWN_EXECUTOR if event.shutdown_executor is not None:
                s = event.shutdown_executor
                ex = self.executor(s.framework_id, s.executor_id)
                if ex is not None:
                    self.shutdown_executor(ex, None)
            case AgentEventType.FRAMEWORK_MESSAGE if event.framework_message is not None:
                self.message_to_executor(event.framework_message)
            case AgentEventType.UPDATE_FRAMEWORK if event.update_framework is not None:
                info = event.update_framework.framework_info
                if info.id is not None and info.id.value in self.frameworks:
                    self.framework(info)
            case AgentEventType.RECONCILE_TASKS if event.reconcile_tasks is not None:
                r = event.reconcile_tasks
                self.reconcile_tasks(r.framework_id, r.task_ids, r.framework)
            case AgentEventType.APPLY_OPERATION if event.apply_operation is not None:
                self.apply_operation(event.apply_operation)
            case AgentEventType.ACKNOWLEDGE_OPERATION_STATUS \
                    if event.acknowledge_operation_status is not None:
                removal = self.operations.acknowledge(event.acknowledge_operation_status)
                if removal is not None:
                    self.outbox.checkpoint(removal)
            case AgentEventType.PING:
                ping_id = event.ping.ping_id if event.ping is not None else 0
                self.outbox.send_master(
                    AgentCall(
                        type=AgentCallType.PONG, agent_id=self.info.id,
                        pong=AgentPong(ping_id=ping_id),
                    )
                )
            case AgentEventType.SHUTDOWN:
                self.shutdown_agent(event.shutdown.message if event.shutdown else "")
            case AgentEventType.ERROR:
                log.error("master error: %s", event.error.message if event.error else "")
            case _:
                log.warning("ignoring master event %s", event.type)

    # ================================================================= the master

    def apply_operation(self, event: AgentApplyOperation) -> None:
        """APPLY_OPERATION (RESERVE, UNRESERVE, ...): checkpoint, then report the status."""
        records, call = self.operations.apply(
            event, self.info.id, self.uuid_bytes(), self.monotonic())
        for record in records:
            self.outbox.checkpoint(record)
        self.total = self.operations.total
        log.info("applied %s operation %s: %s", event.operation_info.type,
                 event.operation_uuid.value.hex(), call.update_operation_status.status.state
                 if call.update_operation_status else "")
        if self.registered:
            self.outbox.send_master(call)

    def subscribed(self, agent_id: AgentID, master_info: object) -> None:
        first = self.info.id is None
        if self.info.id is not None and self.info.id != agent_id:
            log.warning("master assigned a new agent id %s (was %s)", agent_id, self.info.id)
        self.info.id = agent_id
        self.master_info = master_info
        self.registered = True
        self.outbox.checkpoint(AgentRecord(self.info))
        log.info("%s with master as %s", "registered" if first else "re-registered", agent_id)
        self.updates.connected = True
        self.send_forwards(self.updates.resend_all(self.monotonic()))
        for call in self.operations.resend_all(self.monotonic(), self.info.id):
            self.outbox.send_master(call)

    def subscribe_call(self, pid: str | None = None) -> AgentCall:
        """The SUBSCRIBE call: registration, or re-registration with what runs here; `pid` is
        the shell's `slave(1)@ip:port` (the master's fallback is the address it sees)."""
        sub = AgentSubscribe(agent_info=self.info, version=VERSION, pid=pid,
                             capabilities=list(CAPABILITIES))
        if self.info.id is not None:
            sub.checkpointed_resources, sub.operations = self.operations.subscribe_fields()
            for fw in self.frameworks.values():
                if not fw.executors:
                    continue
                sub.frameworks.append(fw.info)
                for ex in fw.executors.values():
                    if ex.phase == ExecutorPhase.TERMINATED and not ex.terminated:
                        continue
                    sub.executors.append(AgentExecutor(framework_id=fw.id, executor_info=ex.info))
                    sub.tasks.extend(self.agent_tasks(fw, ex))
            sub.completed_framework_ids = [
                f.id for f in self.completed_frameworks if f.info.id is not None
            ]
        return AgentCall(type=AgentCallType.SUBSCRIBE, subscribe=sub)

    def agent_tasks(self, fw: Framework, ex: Executor) -> list[AgentTask]:
        out = []
        executor_id = None if ex.command else ex.id
        for info in ex.queued_tasks():
            out.append(
                AgentTask(
                    task_id=info.task_id, framework_id=fw.id, executor_id=executor_id,
                    name=info.name, state=TaskState.TASK_STAGING, resources=info.resources,
                )
            )
        for task in [*ex.launched.values(), *ex.terminated.values()]:
            head = self.updates.head(task.task_id)
            out.append(
                AgentTask(
                    task_id=task.task_id, framework_id=fw.id, executor_id=executor_id,
                    name=task.name, state=task.state, resources=task.resources,
                    statuses=task.statuses[-3:],
                    status_update_state=head.state if head else None,
                    status_update_uuid=head.uuid if head else None,
                )
            )
        return out

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
            if self.find_task(task_id) is None:
                status = self.agent_status(
                    task_id, state, Reason.REASON_RECONCILIATION,
                    "Reconciliation: task unknown to the agent", None,
                )
                self.accept_update(framework_id, status)

    # ================================================================= timers

    def tick(self) -> None:
        """Run every timer that is due at `clock.monotonic()`."""
        now = self.monotonic()
        self.send_forwards(self.updates.due(now))
        if self.registered:
            for call in self.operations.due(now, self.info.id):
                self.outbox.send_master(call)
        while self.timers and self.timers[0][0] <= now:
            _, _, ex = heapq.heappop(self.timers)
            if ex.registration_deadline is not None and ex.registration_deadline <= now:
                self.registration_timed_out(ex)
            if ex.shutdown_deadline is not None and ex.shutdown_deadline <= now:
                self.shutdown_grace_expired(ex)
        if self.recovery_deadline is not None and self.recovery_deadline <= now:
            self.maybe_finish_recovery(timed_out=True)

    def next_deadline(self) -> float | None:
        """When `tick()` next has something to do (monotonic scale), None if nothing waits."""
        timers = self.timers
        while timers:
            when, _, ex = timers[0]
            if when in (ex.registration_deadline, ex.shutdown_deadline):
                break
            heapq.heappop(timers)  # stale: that deadline was cleared or moved
        deadlines = [timers[0][0]] if timers else []
        retry = self.updates.next_deadline()
        if retry is not None:
            deadlines.append(retry)
        operation_retry = self.operations.next_deadline() if self.registered else None
        if operation_retry is not None:
            deadlines.append(operation_retry)
        if self.recovery_deadline is not None:
            deadlines.append(self.recovery_deadline)
        return min(deadlines) if deadlines else None

    # ================================================================= queries (change nothing)

    def live_container(self, name: str) -> tuple[str, int | None] | None:
        """(sandbox, root pid or None while launching) of a live container this core runs, by
        its containerizer name: an executor's (`<container id>`), or the container of a live
        task of the default executor (`<executor's container>.<task's container>`, as its
        status updates name it; the executor runs it in `<executor sandbox>/tasks/<task_id>`).
        None for any other name (nested and standalone containers are the operator API's)."""
        top, _, rest = name.partition(".")
        if "." in rest:
            return None
        ex = self.containers.get(top)
        if ex is None or ex.phase == ExecutorPhase.TERMINATED:
            return None
        if not rest:
            return str(ex.sandbox), ex.pid
        for task in ex.launched.values():
            for status in task.statuses:
                cid = status.container_status.container_id if status.container_status else None
                if cid is not None and container_name(cid) == name:
                    return f"{ex.sandbox}/tasks/{task.task_id.value}", ex.pid
        return None

    def live_executor_containers(self) -> list[tuple[str, float, bool]]:
        """(container id, shutdown grace, framework checkpoints) of every executor whose
        container has not terminated: what the shell waits for or kills when it stops."""
        return [
            (ex.container_id, self.shutdown_grace(ex), fw.checkpoint)
            for fw in self.frameworks.values()
            for ex in fw.executors.values()
            if ex.phase != ExecutorPhase.TERMINATED
        ]

    def pending_operations(self) -> list[Operation]:
        """Operations applied here whose terminal status the master has not acknowledged."""
        return list(self.operations.operations.values())

    # ================================================================= recovery

    def recover(self, state: checkpoint.AgentState | None) -> None:
        """Rebuild from the checkpoint tree (Mesos docs/agent-recovery.md): frameworks,
        executors with a live container, tasks (state = the latest checkpointed update) and
        their update streams. Recovered executors must re-subscribe within
        `executor_reregistration_timeout`, else they are shut down and their tasks end
        TASK_LOST (REASON_EXECUTOR_REREGISTRATION_TIMEOUT)."""
        recovered: list[Executor] = []
        if state is not None:
            assert state.info.id is not None
            self.info.id = state.info.id
            # Raises ConversionError when `--resources` no longer hold the checkpointed
            # reservations and volumes: the agent must not start (as Mesos).
            self.operations.recover(Resources.from_wire(state.checkpointed_resources),
                                    state.operations, self.monotonic())
            self.total = self.operations.total
            for fw_state in state.frameworks.values():
                for ex_state in fw_state.executors.values():
                    run = ex_state.run
                    if run is None or run.pid is None:
                        continue
                    recovered.append(self.rebuild(fw_state, ex_state, run))
        if not recovered:
            self.finish_recovery()
            return
        self.outbox.adopt_containers(
            [(ex.container_id, ex.pid) for ex in recovered if ex.pid is not None]
        )
        for ex in recovered:
            if ex.pid is not None:
                self.outbox.checkpoint(ContainerPidRecord(ex.container_id, ex.pid))
        self.recovery_deadline = self.monotonic() + self.options.executor_reregistration_timeout

    def rebuild(
        self,
        fw_state: checkpoint.FrameworkState,
        ex_state: checkpoint.ExecutorState,
        run: checkpoint.RunState,
    ) -> Executor:
        info = fw_state.info
        assert info.id is not None and self.info.id is not None
        fw = self.frameworks.get(info.id.value)
        if fw is None:
            fw = self.frameworks[info.id.value] = Framework(info)
        ex_id = ex_state.info.executor_id.value
        ex = Executor(
            framework_id=info.id, info=ex_state.info, container_id=run.container_id,
            directory=layout.sandbox_path(
                self.options.work_dir, self.info.id.value, info.id.value, ex_id, run.container_id
            ),
            command=run.command, checkpoint=True, pid=run.pid, recovered=True,
        )
        resources = resources_of([ex_state.info.resources])
        for task_cp in run.tasks.values():
            if task_cp.info is None:
                continue
            task = new_task(task_cp.info, info.id, ex)
            self.updates.recover_stream(info.id, task_cp.updates)
            for kind, value in task_cp.updates:
                if kind == "update" and not isinstance(value, bytes):
                    record_status(task, value)
            if not is_terminal(task.state):
                ex.launched[task.task_id] = task
                resources = resources + resources_of([task.resources])
                self.task_index[task.task_id] = ex
            elif self.updates.has_stream(task.task_id):
                ex.terminated[task.task_id] = task
                self.task_index[task.task_id] = ex
            else:
                ex.completed.append(task)
        self.set_resources(ex, resources)
        fw.executors[ex_id] = ex
        self.containers[ex.container_id] = ex
        return ex

    def maybe_finish_recovery(self, *, timed_out: bool) -> None:
        waiting = [
            ex
            for fw in self.frameworks.values()
            for ex in fw.executors.values()
            if ex.recovered and ex.phase == ExecutorPhase.REGISTERING
        ]
        if waiting and not timed_out:
            return
        for ex in waiting:
            log.warning("executor %s did not re-subscribe in time; shutting it down", ex.id)
            ex.recovered = False
            self.shutdown_executor(
                ex,
                PendingTermination(
                    TaskState.TASK_LOST, Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                    "Executor did not re-register after the agent restarted",
                ),
            )
        self.finish_recovery()

    def finish_recovery(self) -> None:
        self.recovery_deadline = None
        self.recovering = False
        log.info("recovery done")
        self.outbox.recovery_complete()
