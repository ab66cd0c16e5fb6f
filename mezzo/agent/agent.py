"""The agent: frameworks, executors and tasks on one machine, driven by the master's events.

Owns the agent's behaviour (spec §5.4, §5.6, §6): running tasks in executors (the built-in
command executor or the framework's own), delivering queued launches after an executor
subscribes, kills and shutdowns with grace periods, turning executor exits and container
limitations into terminal status updates, resource checks on launch, and the bookkeeping that
moves tasks and executors between lifecycle stages (`mezzo.agent.state`).

Collaborators, all injected: the Containerizer (processes), the StatusUpdateManager (reliable
update delivery, a pure core), the Checkpointer (files), a MasterLink (calls out) and a Clock.
Kills, shutdowns and executor exits are in `lifecycle` (a mixin). The executor HTTP API
(`executor_api`), recovery (`recovery`) and the read endpoints (`http`)
are separate modules that call into this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuidlib
from collections import deque
from collections.abc import Callable

from mezzo.agent import launch as launching
from mezzo.agent.checkpoint import Checkpointer
from mezzo.agent.containerizer import Containerizer, LaunchError, Termination
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.flags import AgentFlags
from mezzo.agent.lifecycle import LifecycleMixin
from mezzo.agent.state import (
    MAX_COMPLETED_FRAMEWORKS,
    Executor,
    ExecutorPhase,
    Framework,
    Launch,
    PendingTermination,
    new_task,
    record_status,
    resources_of,
)
from mezzo.agent.updates import Forward, StatusUpdateManager
from mezzo.api import executor as exe
from mezzo.api.codec import encode
from mezzo.api.common import (
    AgentID,
    AgentInfo,
    ContainerID,
    ContainerStatus,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    Reason,
    Source,
    Task,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    is_terminal,
)
from mezzo.api.internal import (
    AgentCall,
    AgentCallType,
    AgentEvent,
    AgentEventType,
    AgentExecutor,
    AgentFrameworkMessage,
    AgentPong,
    AgentStatusUpdate,
    AgentSubscribe,
    AgentTask,
)
from mezzo.core.clock import Clock, RealClock
from mezzo.core.durations import format_duration
from mezzo.core.errors import ValidationError
from mezzo.resources import Resources

log = logging.getLogger(__name__)

VERSION = "1.11.0"


class Agent(LifecycleMixin):
    """One agent (see the module docstring)."""

    def __init__(
        self,
        flags: AgentFlags,
        containerizer: Containerizer,
        info: AgentInfo,
        *,
        clock: Clock | None = None,
        uuid_bytes: Callable[[], bytes] | None = None,
    ) -> None:
        self.flags = flags
        self.containerizer = containerizer
        self.info = info
        self.total = Resources.from_wire(info.resources)
        self.clock = clock or RealClock()
        self._uuid = uuid_bytes or (lambda: uuidlib.uuid4().bytes)
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        self.updates = StatusUpdateManager(
            flags.status_update_retry_interval, flags.status_update_retry_max
        )
        self.checkpointer = Checkpointer(flags.work_dir)
        # Set by the composition root once the HTTP server is bound.
        self.endpoint_ip = "127.0.0.1"
        self.endpoint_port = flags.port
        # Calls to the master go through this (MasterLink.send); None = not connected yet.
        self.send_call: Callable[[AgentCall], None] = lambda call: None
        self.recovering = True
        self.registered = False
        self.master_info: object | None = None
        self.start_time = self.clock.now()
        self.stopped = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[object]] = set()
        self.metrics: dict[str, int] = {
            "valid_status_updates": 0,
            "invalid_status_updates": 0,
            "valid_framework_messages": 0,
            "invalid_framework_messages": 0,
            "container_launch_errors": 0,
            "recovery_errors": 0,
            "executors_terminated": 0,
        }
        self.task_counts: dict[str, int] = {}

    # ================================================================= identity and master

    @property
    def agent_id(self) -> AgentID | None:
        return self.info.id

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.endpoint_ip}:{self.endpoint_port}"

    def subscribe_body(self) -> bytes:
        """The SUBSCRIBE call: registration, or re-registration with what runs here."""
        sub = AgentSubscribe(agent_info=self.info, version=VERSION, pid=self.pid)
        if self.info.id is not None:
            for fw in self.frameworks.values():
                if not fw.executors:
                    continue
                sub.frameworks.append(fw.info)
                for ex in fw.executors.values():
                    if ex.phase == ExecutorPhase.TERMINATED and not ex.terminated:
                        continue
                    sub.executors.append(AgentExecutor(framework_id=fw.id, executor_info=ex.info))
                    sub.tasks.extend(self._agent_tasks(fw, ex))
            sub.completed_framework_ids = [
                f.id for f in self.completed_frameworks if f.info.id is not None
            ]
        return encode(AgentCall(type=AgentCallType.SUBSCRIBE, subscribe=sub))

    def _agent_tasks(self, fw: Framework, ex: Executor) -> list[AgentTask]:
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

    def on_master_event(self, event: AgentEvent) -> None:
        """Dispatch one event of the master's stream."""
        match event.type:
            case AgentEventType.SUBSCRIBED if event.subscribed is not None:
                self._subscribed(event.subscribed.agent_id, event.subscribed.master_info)
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
                fw = self.frameworks.get(s.framework_id.value)
                ex = fw.executors.get(s.executor_id.value) if fw else None
                if ex is not None:
                    self.shutdown_executor(ex, None)
            case AgentEventType.FRAMEWORK_MESSAGE if event.framework_message is not None:
                self.message_to_executor(event.framework_message)
            case AgentEventType.UPDATE_FRAMEWORK if event.update_framework is not None:
                self.update_framework(event.update_framework.framework_info)
            case AgentEventType.RECONCILE_TASKS if event.reconcile_tasks is not None:
                r = event.reconcile_tasks
                self.reconcile_tasks(r.framework_id, r.task_ids, r.framework)
            case AgentEventType.PING:
                ping_id = event.ping.ping_id if event.ping is not None else 0
                self.send_call(
                    AgentCall(
                        type=AgentCallType.PONG, agent_id=self.info.id,
                        pong=AgentPong(ping_id=ping_id),
                    )
                )
            case AgentEventType.SHUTDOWN:
                message = event.shutdown.message if event.shutdown else ""
                log.warning("master asked this agent to shut down: %s", message)
                self.spawn(self.shutdown(remove_checkpoint=True))
            case AgentEventType.ERROR:
                log.error("master error: %s", event.error.message if event.error else "")
            case _:
                log.warning("ignoring master event %s", event.type)

    def _subscribed(self, agent_id: AgentID, master_info: object) -> None:
        first = self.info.id is None
        if self.info.id is not None and self.info.id != agent_id:
            log.warning("master assigned a new agent id %s (was %s)", agent_id, self.info.id)
        self.info.id = agent_id
        self.master_info = master_info
        self.registered = True
        self.checkpointer.agent(self.info)
        log.info("%s with master as %s", "registered" if first else "re-registered", agent_id)
        self.updates.connected = True
        self._send_forwards(self.updates.resend_all(self.clock.monotonic()))

    def on_master_disconnected(self) -> None:
        self.registered = False
        self.updates.connected = False
        log.info("disconnected from the master")

    # ================================================================= running tasks

    def run_task(
        self,
        framework_info: FrameworkInfo,
        tasks: list[TaskInfo],
        executor_info: ExecutorInfo | None,
        *,
        group: bool,
    ) -> None:
        if framework_info.id is None or not tasks:
            log.warning("RUN_TASK without a framework id or tasks; ignored")
            return
        fw = self._framework(framework_info)
        if fw.terminating:
            self._reject(fw, tasks, TaskState.TASK_LOST, Reason.REASON_FRAMEWORK_REMOVED,
                         "Framework is terminating", executor_info)
            return
        command = executor_info is None
        if executor_info is None:
            if tasks[0].command is None:
                self._reject(fw, tasks, TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID,
                             "Task has neither 'command' nor 'executor'", None)
                return
            executor_info = launching.command_executor_info(tasks[0], fw.id)
        elif executor_info.framework_id is None:
            executor_info.framework_id = fw.id
        error = self._validate_launch(fw, tasks, executor_info, command)
        if error is not None:
            state, reason, message = error
            self._reject(fw, tasks, state, reason, message, executor_info)
            return
        ex = fw.executors.get(executor_info.executor_id.value)
        needed = resources_of(t.resources for t in tasks)
        if ex is None:
            ex = self._new_executor(fw, executor_info, command)
            ex.resources = needed + resources_of([executor_info.resources])
            ex.queued.append(Launch(list(tasks), group))
            self._checkpoint_tasks(fw, ex, tasks)
            self.spawn(self._start_container(fw, ex, tasks[0]))
            return
        ex.resources = ex.resources + needed
        self._checkpoint_tasks(fw, ex, tasks)
        ex.queued.append(Launch(list(tasks), group))
        if ex.phase == ExecutorPhase.RUNNING and ex.stream is not None:
            self.deliver_queued(fw, ex)
        if ex.pid is not None:
            self.spawn(self._update_limits(ex))

    def _validate_launch(
        self, fw: Framework, tasks: list[TaskInfo], executor_info: ExecutorInfo, command: bool
    ) -> tuple[TaskState, Reason, str] | None:
        invalid = Reason.REASON_TASK_GROUP_INVALID if len(tasks) > 1 else Reason.REASON_TASK_INVALID
        for t in tasks:
            if self._find_task(t.task_id) is not None:
                return TaskState.TASK_ERROR, invalid, f"Task {t.task_id} already exists"
        ex = fw.executors.get(executor_info.executor_id.value)
        if ex is not None and ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            return TaskState.TASK_LOST, Reason.REASON_EXECUTOR_TERMINATED, "Executor terminating"
        if command and ex is not None:
            return TaskState.TASK_ERROR, invalid, f"Executor {ex.id} already exists"
        try:
            needed = resources_of(t.resources for t in tasks)
            if ex is None:
                needed = needed + resources_of([executor_info.resources])
        except ValidationError as e:
            return TaskState.TASK_ERROR, invalid, f"Invalid resources: {e}"
        available = self.total - self.used_resources()
        if not available.contains(needed):
            return (
                TaskState.TASK_LOST,
                Reason.REASON_RESOURCES_UNKNOWN,
                f"Agent does not have the resources the task needs: needs {needed}, "
                f"available {available}",
            )
        return None

    def used_resources(self) -> Resources:
        used = Resources()
        for fw in self.frameworks.values():
            for ex in fw.executors.values():
                if ex.phase != ExecutorPhase.TERMINATED:
                    used = used + ex.resources
        return used

    def _framework(self, info: FrameworkInfo) -> Framework:
        assert info.id is not None
        fw = self.frameworks.get(info.id.value)
        if fw is None:
            fw = self.frameworks[info.id.value] = Framework(info)
        else:
            fw.info = info
        if fw.checkpoint and self.info.id is not None:
            self.checkpointer.framework(info)
        return fw

    def _new_executor(self, fw: Framework, info: ExecutorInfo, command: bool) -> Executor:
        assert self.info.id is not None
        container_id = str(uuidlib.UUID(bytes=self._uuid()))
        sandbox = layout.create_sandbox(
            self.flags.work_dir, self.info.id.value, fw.id.value, info.executor_id.value,
            container_id,
        )
        ex = Executor(
            framework_id=fw.id, info=info, container_id=container_id, sandbox=sandbox,
            command=command, checkpoint=fw.checkpoint,
        )
        fw.executors[info.executor_id.value] = ex
        return ex

    def _checkpoint_tasks(self, fw: Framework, ex: Executor, tasks: list[TaskInfo]) -> None:
        if ex.checkpoint:
            for t in tasks:
                self.checkpointer.task(fw.id.value, ex.id.value, ex.container_id, t)

    async def _start_container(self, fw: Framework, ex: Executor, first: TaskInfo) -> None:
        assert self.info.id is not None
        endpoint = launching.AgentEndpoint(
            self.info.id.value, self.endpoint_ip, self.endpoint_port, self.flags.work_dir
        )
        grace = self.shutdown_grace(ex)
        env = launching.executor_environment(
            framework=fw.info, executor=ex.info, sandbox=ex.sandbox, agent=endpoint,
            shutdown_grace_period=grace, recovery_timeout=self.flags.recovery_timeout,
            reregistration_timeout=self.flags.executor_reregistration_timeout,
            http_command_executor=self.flags.http_command_executor,
            base=self.flags.executor_environment_variables, command=ex.command,
        )
        try:
            config = launching.container_config(
                executor=ex.info, command=ex.command,
                command_executor_argv=self.flags.command_executor, sandbox=ex.sandbox, env=env,
                user=launching.executor_user(fw.info, ex.info, first, self.flags.switch_user),
                resources=ex.resources, pids_max=self.flags.pids_max,
            )
            pid = await self.containerizer.launch(ex.container_id, config)
        except LaunchError as e:
            self.metrics["container_launch_errors"] += 1
            log.warning("launching executor %s failed: %s", ex.id, e)
            ex.pending_termination = PendingTermination(
                TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED, str(e)
            )
            self.executor_terminated(ex, Termination(None, None, str(e)))
            return
        ex.pid = pid
        self.checkpointer.container_pid(ex.container_id, pid)
        if ex.checkpoint:
            self.checkpointer.executor(fw.id.value, ex.info, ex.container_id, pid, ex.command)
        self.spawn(self.watch_container(ex))
        if ex.phase == ExecutorPhase.TERMINATING:
            self.spawn(self._destroy(ex))  # shut down while launching
            return
        loop = asyncio.get_running_loop()
        ex.registration_timer = loop.call_later(
            self.flags.executor_registration_timeout, self._registration_timeout, ex
        )

    async def watch_container(self, ex: Executor) -> None:
        termination = await self.containerizer.wait(ex.container_id)
        self.executor_terminated(ex, termination)

    async def _update_limits(self, ex: Executor) -> None:
        with contextlib.suppress(Exception):
            await self.containerizer.update(
                ex.container_id, cpus=ex.resources.cpus() or None, mem_mb=ex.resources.mem() or None
            )

    def _registration_timeout(self, ex: Executor) -> None:
        if ex.phase != ExecutorPhase.REGISTERING:
            return
        timeout = format_duration(self.flags.executor_registration_timeout)
        log.warning("executor %s did not register within %s", ex.id, timeout)
        self.shutdown_executor(
            ex,
            PendingTermination(
                TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                f"Executor did not register within {timeout}",
            ),
        )

    def _reject(
        self,
        fw: Framework,
        tasks: list[TaskInfo],
        state: TaskState,
        reason: Reason,
        message: str,
        executor_info: ExecutorInfo | None,
    ) -> None:
        """Terminal updates for tasks that never reach an executor (the agent keeps going)."""
        log.warning("rejecting tasks %s: %s", [t.task_id.value for t in tasks], message)
        executor_id = executor_info.executor_id if executor_info else None
        for t in tasks:
            status = self.agent_status(t.task_id, state, reason, message, executor_id)
            self._accept_update(fw.id, status)

    # ================================================================= delivering to executors

    def deliver_queued(self, fw: Framework, ex: Executor) -> None:
        """Send queued launches to a subscribed executor; tasks become launched (STAGING)."""
        assert ex.stream is not None
        for launch in ex.queued:
            for info in launch.tasks:
                ex.launched[info.task_id] = new_task(info, fw.id, ex)
            if launch.group:
                event = exe.Event(
                    type=exe.EventType.LAUNCH_GROUP,
                    launch_group=exe.LaunchGroup(task_group=TaskGroupInfo(tasks=launch.tasks)),
                )
            else:
                event = exe.Event(type=exe.EventType.LAUNCH, launch=exe.Launch(task=launch.tasks[0]))
            ex.stream.send(encode(event))
        ex.queued.clear()

    def send_to_executor(self, ex: Executor, event: exe.Event) -> bool:
        if ex.stream is None or ex.stream.is_closed:
            return False
        return ex.stream.send(encode(event))

    def message_to_framework(self, fw: Framework, ex: Executor, data: bytes) -> None:
        """An executor's MESSAGE, relayed to the scheduler through the master."""
        self.send_call(
            AgentCall(
                type=AgentCallType.FRAMEWORK_MESSAGE, agent_id=self.info.id,
                framework_message=AgentFrameworkMessage(
                    framework_id=fw.id, executor_id=ex.id, data=data
                ),
            )
        )

    def message_to_executor(self, msg: AgentFrameworkMessage) -> None:
        fw = self.frameworks.get(msg.framework_id.value)
        ex = fw.executors.get(msg.executor_id.value) if fw else None
        if ex is None or not self.send_to_executor(
            ex, exe.Event(type=exe.EventType.MESSAGE, message=exe.EventMessage(data=msg.data))
        ):
            self.metrics["invalid_framework_messages"] += 1
            log.info("dropping framework message for executor %s", msg.executor_id)
            return
        self.metrics["valid_framework_messages"] += 1

    # ================================================================= status updates

    def agent_status(
        self,
        task_id: TaskID,
        state: TaskState,
        reason: Reason | None,
        message: str,
        executor_id: ExecutorID | None,
    ) -> TaskStatus:
        """An update generated by the agent itself (reliable: it carries a uuid)."""
        return TaskStatus(
            task_id=task_id, state=state, message=message, source=Source.SOURCE_AGENT,
            reason=reason, agent_id=self.info.id, executor_id=executor_id,
            timestamp=self.clock.now(), uuid=self._uuid(),
        )

    def executor_status(self, fw: Framework, ex: Executor, status: TaskStatus) -> bool:
        """Record an update of one of the executor's tasks; returns False for a duplicate.
        Raises ValueError when the task already had its terminal update."""
        if status.agent_id is None:
            status.agent_id = self.info.id
        if status.executor_id is None:
            status.executor_id = ex.id
        if status.container_status is None:
            status.container_status = ContainerStatus(
                container_id=ContainerID(value=ex.container_id), executor_pid=ex.pid
            )
        new, forwards = self.updates.update(fw.id, status, self.clock.monotonic())
        if not new:
            return False
        if ex.checkpoint and fw.checkpoint and not fw.terminating:
            self.checkpointer.update(fw.id.value, ex.id.value, ex.container_id, status)
        task = ex.launched.get(status.task_id)
        if task is not None:
            record_status(task, status)
            if is_terminal(status.state):
                del ex.launched[status.task_id]
                ex.terminated[status.task_id] = task
                ex.resources = ex.resources - resources_of([task.resources])
                self.task_counts[status.state.value] = self.task_counts.get(status.state.value, 0) + 1
        elif (task := ex.terminated.get(status.task_id)) is not None:
            record_status(task, status)
        self.metrics["valid_status_updates"] += 1
        self._send_forwards(forwards)
        return True

    def _accept_update(self, framework_id: FrameworkID, status: TaskStatus) -> None:
        """An update for a task that has no executor here (rejected launch, unknown task)."""
        with contextlib.suppress(ValueError):
            _, forwards = self.updates.update(framework_id, status, self.clock.monotonic())
            self._send_forwards(forwards)
            self.task_counts[status.state.value] = self.task_counts.get(status.state.value, 0) + 1

    def acknowledge(self, framework_id: FrameworkID, task_id: TaskID, uuid: bytes) -> None:
        acked, forwards = self.updates.acknowledge(task_id, uuid, self.clock.monotonic())
        if acked is None:
            log.debug("ignoring acknowledgement of an unknown update of task %s", task_id)
            return
        fw = self.frameworks.get(framework_id.value)
        found = self._find_task(task_id)
        if fw is not None and found is not None:
            ex, _task = found
            if ex.checkpoint:
                self.checkpointer.ack(fw.id.value, ex.id.value, ex.container_id, task_id.value, uuid)
            if is_terminal(acked.state) and task_id in ex.terminated:
                ex.completed.append(ex.terminated.pop(task_id))
                self._maybe_complete_executor(fw, ex)
        self._send_forwards(forwards)

    def _send_forwards(self, forwards: list[Forward]) -> None:
        for f in forwards:
            self.send_call(
                AgentCall(
                    type=AgentCallType.STATUS_UPDATE, agent_id=self.info.id,
                    status_update=AgentStatusUpdate(
                        framework_id=f.framework_id, status=f.status, latest_state=f.latest_state
                    ),
                )
            )
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.updates.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is None:
            return
        delay = max(0.0, deadline - self.clock.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._retry_due)

    def _retry_due(self) -> None:
        self._timer = None
        self._send_forwards(self.updates.due(self.clock.monotonic()))

    # ================================================================= helpers

    def _find_task(self, task_id: TaskID) -> tuple[Executor, Task] | None:
        for fw in self.frameworks.values():
            for ex in fw.executors.values():
                task = ex.find_task(task_id)
                if task is not None:
                    return ex, task
                for info in ex.queued_tasks():
                    if info.task_id == task_id:
                        return ex, new_task(info, fw.id, ex)
        return None

    def spawn(self, coro: object) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
