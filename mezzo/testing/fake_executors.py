"""Executors that "run" every task at once: the outbox of an agent core without processes.

`FakeExecutors` is an `AgentOutbox` (`mezzo.agent.outbox`) for agent cores that stand in for
real agents — the emulated agent of the benchmarks (`mezzo.testing.emulated_agent`) and the
in-process cluster (`mezzo.testing.sim_cluster`). A container "launches" at once and its
executor subscribes at once; each task it is given reports TASK_RUNNING (and, with
`host.finish`, TASK_FINISHED) straight away; KILL answers TASK_KILLED; SHUTDOWN or a destroy
ends the container; a command executor exits once its task is terminal, as the real one does.
Tasks can also be ended by hand (`finish_task`). Checkpoints and container limits are
ignored (nothing to recover), calls to the master go to `host.post`.

Everything the fake executors do in response to an effect is *queued* on the host
(`host.later(event)`) and handed to the core after the event that caused it, never from inside
the core's `handle`.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from mezzo.agent.containerizer.records import Termination
from mezzo.agent.events import (
    AgentInput,
    ContainerExited,
    ContainerLaunched,
    ExecutorSubscribed,
    ExecutorUpdate,
    TasksFetched,
)
from mezzo.agent.outbox import CheckpointRecord, ContainerLaunch, TaskFetch
from mezzo.api import executor as exe
from mezzo.api.common import ExecutorID, FrameworkID, TaskID, TaskState, TaskStatus
from mezzo.api.internal import AgentCall
from mezzo.resources import Resources

# What a fake executor subscribes with: nothing unacknowledged (one shared value; the core only
# reads it).
_FIRST_SUBSCRIBE = exe.Subscribe()


class FakeExecutorHost(Protocol):
    """What the fake executors need from the agent they belong to."""

    finish: bool  # tasks finish right after they start

    def later(self, event: AgentInput) -> None:
        """Hand `event` to the core once the current event is done."""

    def new_uuid(self) -> bytes:
        """A fresh status update uuid."""

    def post(self, call: AgentCall) -> None:
        """Send a call to the master."""

    def shutdown_requested(self) -> None:
        """The master asked the agent to shut down (every executor was told to end)."""


class _FakeExecutor:
    """The executor of one emulated container: its stream handle and its live tasks."""

    def __init__(self, launch: ContainerLaunch) -> None:
        assert launch.framework.id is not None
        self.container_id = launch.container_id
        self.framework_id: FrameworkID = launch.framework.id
        self.executor_id: ExecutorID = launch.executor.executor_id
        self.command = launch.command
        self.live: set[TaskID] = set()


class FakeExecutors:
    """An AgentOutbox whose containers and executors run nothing (see the module docstring)."""

    def __init__(self, host: FakeExecutorHost) -> None:
        self.agent = host
        self.executors: dict[str, _FakeExecutor] = {}
        self._pids = itertools.count(100_000)

    def launch_container(self, launch: ContainerLaunch) -> None:
        fake = self.executors[launch.container_id] = _FakeExecutor(launch)
        self.agent.later(ContainerLaunched(launch.container_id, next(self._pids)))
        self.agent.later(
            ExecutorSubscribed(fake.framework_id, fake.executor_id, _FIRST_SUBSCRIBE, fake)
        )

    def destroy_container(self, container_id: str) -> None:
        if self.executors.pop(container_id, None) is not None:
            self.agent.later(ContainerExited(container_id, Termination(9, None, "destroyed")))

    def update_container(self, container_id: str, resources: Resources) -> None:
        pass

    def fetch_task_uris(self, fetch: TaskFetch) -> None:
        # an emulated agent fetches nothing: the group's URIs are "fetched" at once
        self.agent.later(TasksFetched(fetch.container_id, fetch.key))

    def adopt_containers(self, containers: list[tuple[str, int]]) -> None:
        pass  # an emulated agent does not recover

    def send_executor(self, stream: Any, event: exe.Event) -> None:
        fake: _FakeExecutor = stream
        match event.type:
            case exe.EventType.LAUNCH if event.launch is not None:
                self._run(fake, [event.launch.task.task_id])
            case exe.EventType.LAUNCH_GROUP if event.launch_group is not None:
                self._run(fake, [t.task_id for t in event.launch_group.task_group.tasks])
            case exe.EventType.KILL if event.kill is not None:
                if event.kill.task_id in fake.live:
                    self._update(fake, event.kill.task_id, TaskState.TASK_KILLED)
            case exe.EventType.SHUTDOWN:
                self.destroy_container(fake.container_id)
            case _:
                pass  # SUBSCRIBED, ACKNOWLEDGED, MESSAGE

    def _run(self, fake: _FakeExecutor, task_ids: list[TaskID]) -> None:
        for task_id in task_ids:
            fake.live.add(task_id)
            self._update(fake, task_id, TaskState.TASK_RUNNING)
            if self.agent.finish:
                self._update(fake, task_id, TaskState.TASK_FINISHED)

    def finish_task(self, task_id: TaskID, state: TaskState = TaskState.TASK_FINISHED) -> bool:
        """End a running task by hand (its executor reports `state`); False if no live task
        has that id."""
        for fake in self.executors.values():
            if task_id in fake.live:
                self._update(fake, task_id, state)
                return True
        return False

    def _update(self, fake: _FakeExecutor, task_id: TaskID, state: TaskState) -> None:
        status = TaskStatus(task_id=task_id, state=state, uuid=self.agent.new_uuid())
        self.agent.later(ExecutorUpdate(fake.framework_id, fake.executor_id, status))
        if state != TaskState.TASK_RUNNING:
            fake.live.discard(task_id)
            if fake.command and not fake.live:  # the command executor exits after its task
                self.executors.pop(fake.container_id, None)
                self.agent.later(ContainerExited(fake.container_id, Termination(0, None, "exited")))

    def close_executor(self, stream: Any, reason: str) -> None:
        pass

    def send_master(self, call: AgentCall) -> None:
        self.agent.post(call)

    def checkpoint(self, record: CheckpointRecord) -> None:
        pass  # nothing to recover from

    def recovery_complete(self) -> None:
        pass

    def schedule_gc(self, paths: list[str]) -> None:
        pass  # no sandboxes on disk

    def stop_agent(self, forget: bool) -> None:
        self.agent.shutdown_requested()
