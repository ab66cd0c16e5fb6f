"""Running tasks: RUN_TASK / RUN_TASK_GROUP, executor containers, delivery to executors.

A handler family of the agent core (`mezzo.agent.core.AgentCore`). What happens when:

- RUN_TASK(_GROUP) is checked (framework terminating, duplicate task id, executor ending,
  command executor already there, resources of the agent): a refused launch ends at once with
  a terminal update from the agent (TASK_ERROR / TASK_LOST, Mesos's reasons). A container
  asking for what this agent cannot provide (Docker, an image, volumes, a named network, bad
  rlimits: `mezzo.agent.container_support`) ends TASK_FAILED / REASON_CONTAINER_LAUNCH_FAILED.
- A launch for a new executor creates it (REGISTERING, its tasks *queued*), checkpoints the
  tasks and asks for its container (`launch_container`). A launch for an executor that is
  already there joins it: delivered at once if it is subscribed, and its container's limits
  grow (`update_container`).
- `ContainerLaunched`: the pid is checkpointed and the executor must subscribe within
  `executor_registration_timeout` (else it is shut down, TASK_FAILED with
  REASON_EXECUTOR_REGISTRATION_TIMEOUT); an executor shut down while launching is destroyed.
  `ContainerLaunchFailed`: its tasks fail (REASON_CONTAINER_LAUNCH_FAILED).
- Queued launches are delivered (LAUNCH / LAUNCH_GROUP) when the executor subscribes; the
  tasks become *launched* (TASK_STAGING). A group for the default executor whose tasks have
  URIs waits until they are fetched into the tasks' own sandboxes (`fetch_task_uris` once the
  executor's container runs, answered by `TasksFetched`); a failed fetch fails the group's
  tasks (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED).
"""

from __future__ import annotations

from mezzo.agent import launch as launching
from mezzo.agent.base import log
from mezzo.agent.container_support import unsupported_container
from mezzo.agent.containerizer import paths as layout
from mezzo.agent.containerizer.records import Termination
from mezzo.agent.endings import EndingHandlers
from mezzo.agent.outbox import (
    ContainerLaunch,
    ContainerPidRecord,
    ExecutorRecord,
    TaskFetch,
    TaskRecord,
)
from mezzo.agent.state import (
    Executor,
    ExecutorPhase,
    Framework,
    Launch,
    PendingTermination,
    accounted,
    new_task,
    resources_of,
)
from mezzo.api import executor as exe
from mezzo.api.common import (
    URI,
    ExecutorInfo,
    FrameworkInfo,
    Reason,
    TaskGroupInfo,
    TaskInfo,
    TaskState,
)
from mezzo.core.durations import format_duration
from mezzo.core.errors import ValidationError
from mezzo.resources import Resources


def fetched_uris(task: TaskInfo, executor: ExecutorInfo, command: bool) -> tuple[URI, ...]:
    """What the fetcher brings into a new executor's sandbox: a command task's `uris`, else
    its executor's (Mesos fetches the executor's CommandInfo; the command executor's is the
    task's)."""
    info = task.command if command else executor.command
    return tuple(info.uris) if info is not None else ()


class LaunchHandlers(EndingHandlers):
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
        fw = self.framework(framework_info)
        if fw.terminating or self.stopping:
            self.reject(fw, tasks, TaskState.TASK_LOST, Reason.REASON_FRAMEWORK_REMOVED,
                        "Framework is terminating", executor_info)
            return
        command = executor_info is None
        if executor_info is None:
            if tasks[0].command is None:
                self.reject(fw, tasks, TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID,
                            "Task has neither 'command' nor 'executor'", None)
                return
            executor_info = launching.command_executor_info(tasks[0], fw.id)
        elif executor_info.framework_id is None:
            executor_info.framework_id = fw.id
        checked = self.validate_launch(fw, tasks, executor_info, command)
        if not isinstance(checked, Resources):
            state, reason, message = checked
            self.reject(fw, tasks, state, reason, message, executor_info)
            return
        # What the containers ask for must exist here: never run them on the bare host instead.
        unsupported = unsupported_container([executor_info.container, *(t.container for t in tasks)])
        if unsupported is not None:
            self.metrics["container_launch_errors"] += 1
            self.reject(fw, tasks, TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                        f"Failed to launch container: {unsupported}", executor_info)
            return
        ex = fw.executors.get(executor_info.executor_id.value)
        if ex is None:
            ex = self.new_executor(fw, executor_info, command)
            self.set_resources(ex, checked)
            self.queue(fw, ex, tasks, group)
            self.outbox.launch_container(
                ContainerLaunch(
                    container_id=ex.container_id, framework=fw.info, executor=ex.info,
                    sandbox=ex.directory, command=ex.command, resources=ex.resources,
                    first_task=tasks[0], uris=fetched_uris(tasks[0], ex.info, command),
                )
            )
            return
        self.set_resources(ex, ex.resources + checked)
        launch = self.queue(fw, ex, tasks, group)
        if ex.pid is not None:
            self.outbox.update_container(ex.container_id, ex.resources)
            if launch.fetching:
                self.fetch_group(fw, ex, launch)
        if ex.phase == ExecutorPhase.RUNNING and ex.stream is not None:
            self.deliver_queued(fw, ex)

    def queue(self, fw: Framework, ex: Executor, tasks: list[TaskInfo], group: bool) -> Launch:
        if ex.checkpoint:
            for t in tasks:
                self.outbox.checkpoint(TaskRecord(fw.id.value, ex.id.value, ex.container_id, t))
        # The default executor's tasks are nested containers: their URIs are fetched into their
        # own sandboxes before the group is delivered (once the executor's container runs).
        fetching = (
            group
            and launching.is_default_executor(ex.info, ex.command)
            and any(t.command is not None and t.command.uris for t in tasks)
        )
        launch = Launch(list(tasks), group, fetching=fetching)
        ex.queued.append(launch)
        for t in tasks:
            self.task_index[t.task_id] = ex
        return launch

    def fetch_group(self, fw: Framework, ex: Executor, launch: Launch) -> None:
        fetches = tuple(
            (
                layout.task_sandbox(ex.directory, t.task_id.value),
                tuple(t.command.uris if t.command is not None else ()),
            )
            for t in launch.tasks
        )
        self.outbox.fetch_task_uris(
            TaskFetch(
                container_id=ex.container_id, key=launch.tasks[0].task_id.value,
                framework=fw.info, executor=ex.info, fetches=fetches,
            )
        )

    def tasks_fetched(self, container_id: str, key: str, error: str | None) -> None:
        """A group's URIs are in its tasks' sandboxes: deliver it; or they could not be
        fetched: its tasks fail (REASON_CONTAINER_LAUNCH_FAILED), as a nested container whose
        fetch failed does in Mesos."""
        ex = self.containers.get(container_id)
        fw = self.frameworks.get(ex.framework_id.value) if ex is not None else None
        if ex is None or fw is None:
            return
        launch = next(
            (q for q in ex.queued if q.fetching and q.tasks[0].task_id.value == key), None
        )
        if launch is None:
            return  # killed, or the executor ended, meanwhile
        launch.fetching = False
        if error is not None:
            self.metrics["container_launch_errors"] += 1
            self.fail_queued(fw, ex, launch, f"Failed to launch container: {error}")
            return
        if ex.phase == ExecutorPhase.RUNNING and ex.stream is not None:
            self.deliver_queued(fw, ex)

    def fail_queued(self, fw: Framework, ex: Executor, launch: Launch, message: str) -> None:
        ex.queued.remove(launch)
        for info in launch.tasks:
            self.set_resources(ex, ex.resources - resources_of([info.resources]))
            ex.launched[info.task_id] = new_task(info, fw.id, ex)
            status = self.agent_status(
                info.task_id, TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                message, ex.id,
            )
            self.executor_status(fw, ex, status)
        if not ex.has_live_work():
            self.shutdown_executor(ex, None)

    def validate_launch(
        self, fw: Framework, tasks: list[TaskInfo], executor_info: ExecutorInfo, command: bool
    ) -> Resources | tuple[TaskState, Reason, str]:
        """What the launch adds to its executor's resources, or why it is refused (the state,
        reason and message of its tasks' terminal update)."""
        invalid = Reason.REASON_TASK_GROUP_INVALID if len(tasks) > 1 else Reason.REASON_TASK_INVALID
        for t in tasks:
            if t.task_id in self.task_index:
                return TaskState.TASK_ERROR, invalid, f"Task {t.task_id} already exists"
        ex = fw.executors.get(executor_info.executor_id.value)
        if ex is not None and ex.phase in (ExecutorPhase.TERMINATING, ExecutorPhase.TERMINATED):
            return TaskState.TASK_LOST, Reason.REASON_EXECUTOR_TERMINATED, "Executor terminating"
        if command and ex is not None:
            return TaskState.TASK_ERROR, invalid, f"Executor {ex.id} already exists"
        try:
            needed = resources_of([t.resources for t in tasks])
            if ex is None:
                if executor_info.resources:
                    needed = needed + accounted(executor_info.resources)
                # Its ids name its sandbox directory: each must be one path segment.
                layout.segment("framework id", fw.id.value)
                layout.segment("executor id", executor_info.executor_id.value)
        except ValidationError as e:
            return TaskState.TASK_ERROR, invalid, f"Invalid {'resources' if 'resource' in str(e) else 'task'}: {e}"
        available = self.total - self.used
        if needed.shared():
            # A shared volume may be used by any number of tasks at once: it need only be
            # one of this agent's resources.
            total = self.total
            fits = available.contains(needed.non_shared()) and all(
                total.contains(Resources([item])) for item in needed.shared())
        else:
            fits = available.contains(needed)
        if not fits:
            return (
                TaskState.TASK_LOST,
                Reason.REASON_RESOURCES_UNKNOWN,
                f"Agent does not have the resources the task needs: needs {needed}, "
                f"available {available}",
            )
        return needed

    def new_executor(self, fw: Framework, info: ExecutorInfo, command: bool) -> Executor:
        assert self.info.id is not None
        h = self.uuid_bytes().hex()  # formatted as str(uuid.UUID(bytes=...)), only faster
        container_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        directory = layout.sandbox_path(
            self.options.work_dir, self.info.id.value, fw.id.value, info.executor_id.value,
            container_id,
        )
        ex = Executor(
            framework_id=fw.id, info=info, container_id=container_id, directory=directory,
            command=command, checkpoint=fw.checkpoint,
        )
        fw.executors[info.executor_id.value] = ex
        self.containers[container_id] = ex
        return ex

    def reject(
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
            self.accept_update(fw.id, status)

    # ----------------------------------------------------------------- containers

    def container_launched(self, container_id: str, pid: int) -> None:
        ex = self.containers.get(container_id)
        if ex is None or ex.phase == ExecutorPhase.TERMINATED:
            return
        ex.pid = pid
        self.outbox.checkpoint(ContainerPidRecord(container_id, pid))
        if ex.checkpoint:
            self.outbox.checkpoint(
                ExecutorRecord(ex.framework_id.value, ex.info, container_id, pid, ex.command)
            )
        if ex.phase == ExecutorPhase.TERMINATING:
            self.outbox.destroy_container(container_id)  # shut down while launching
            return
        fw = self.frameworks.get(ex.framework_id.value)
        for launch in ex.queued:
            if launch.fetching and fw is not None:
                self.fetch_group(fw, ex, launch)
        if ex.phase == ExecutorPhase.REGISTERING:
            when = self.monotonic() + self.options.executor_registration_timeout
            ex.registration_deadline = when
            self.wake_at(ex, when)

    def container_launch_failed(self, container_id: str, message: str) -> None:
        ex = self.containers.get(container_id)
        if ex is None or ex.phase == ExecutorPhase.TERMINATED:
            return
        self.metrics["container_launch_errors"] += 1
        log.warning("launching executor %s failed: %s", ex.id, message)
        ex.pending_termination = PendingTermination(
            TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED, message
        )
        self.executor_terminated(ex, Termination(None, None, message))

    def registration_timed_out(self, ex: Executor) -> None:
        ex.registration_deadline = None
        if ex.phase != ExecutorPhase.REGISTERING:
            return
        timeout = format_duration(self.options.executor_registration_timeout)
        log.warning("executor %s did not register within %s", ex.id, timeout)
        self.shutdown_executor(
            ex,
            PendingTermination(
                TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                f"Executor did not register within {timeout}",
            ),
        )

    # ----------------------------------------------------------------- delivery

    def deliver_queued(self, fw: Framework, ex: Executor) -> None:
        """Send queued launches to a subscribed executor; tasks become launched (STAGING)."""
        assert ex.stream is not None
        waiting = [launch for launch in ex.queued if launch.fetching]
        for launch in ex.queued:
            if launch.fetching:
                continue  # its tasks' URIs are still being fetched
            for info in launch.tasks:
                ex.launched[info.task_id] = new_task(info, fw.id, ex)
            if launch.group:
                event = exe.Event(
                    type=exe.EventType.LAUNCH_GROUP,
                    launch_group=exe.LaunchGroup(task_group=TaskGroupInfo(tasks=launch.tasks)),
                )
            else:
                event = exe.Event(type=exe.EventType.LAUNCH, launch=exe.Launch(task=launch.tasks[0]))
            self.outbox.send_executor(ex.stream, event)
        ex.queued[:] = waiting
