"""The callback-style `Executor` base class and the mapping from v1 executor events to it.

Subclass `Executor` and override what you need; every callback is a no-op by default (`error`
logs). Each callback gets the *driver* first: the object whose methods the executor uses to talk
back (`ExecutorClient` in asyncio code, `ExecutorDriver` in plain scripts), e.g.
`driver.send_status(task.task_id, TaskState.TASK_RUNNING)`.

With `ExecutorClient` a callback may be a plain method or an `async def` (it is awaited); with
the thread-based `ExecutorDriver` callbacks are plain methods run on one callback thread.
Callbacks run one at a time, in event order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mezzo.api.common import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskID,
    TaskInfo,
)
from mezzo.api.executor import Event, EventType

log = logging.getLogger(__name__)

MaybeAwaitable = Awaitable[None] | None


class Executor:
    """Override what you need. `driver` is the client or driver that delivered the event."""

    def registered(
        self,
        driver: Any,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
    ) -> MaybeAwaitable:
        """First SUBSCRIBED: the agent accepted this executor."""

    def reregistered(self, driver: Any, agent_info: AgentInfo) -> MaybeAwaitable:
        """SUBSCRIBED again after the agent came back (checkpointing frameworks only)."""

    def disconnected(self, driver: Any) -> MaybeAwaitable:
        """The stream to the agent ended. With checkpointing the client re-subscribes; without,
        `shutdown` follows."""

    def launch_task(self, driver: Any, task: TaskInfo) -> MaybeAwaitable:
        """Run this task; report its progress with `driver.send_status`."""

    def launch_task_group(self, driver: Any, tasks: list[TaskInfo]) -> MaybeAwaitable:
        """Run these tasks together (LAUNCH_GROUP)."""

    def kill_task(
        self, driver: Any, task_id: TaskID, kill_policy: KillPolicy | None
    ) -> MaybeAwaitable:
        """Kill the task and send a terminal update (TASK_KILLED) for it."""

    def acknowledged(self, driver: Any, task_id: TaskID, uuid: bytes) -> MaybeAwaitable:
        """The agent has durably received the update with this uuid."""

    def framework_message(self, driver: Any, data: bytes) -> MaybeAwaitable:
        """A message from the scheduler (best effort)."""

    def shutdown(self, driver: Any) -> MaybeAwaitable:
        """Kill every task, send their terminal updates; the client stops after this returns."""

    def error(self, driver: Any, message: str) -> MaybeAwaitable:
        """The agent reported an error."""
        log.error("executor error from the agent: %s", message)


def callback_for(
    executor: Executor, driver: Any, event: Event, *, first_subscription: bool
) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
    """The callback and its arguments for one event, or None (HEARTBEAT, UNKNOWN)."""
    kind = event.type
    if kind == EventType.SUBSCRIBED:
        sub = event.subscribed
        assert sub is not None
        if first_subscription:
            args = (driver, sub.executor_info, sub.framework_info, sub.agent_info)
            return executor.registered, args
        return executor.reregistered, (driver, sub.agent_info)
    if kind == EventType.LAUNCH:
        assert event.launch is not None
        return executor.launch_task, (driver, event.launch.task)
    if kind == EventType.LAUNCH_GROUP:
        assert event.launch_group is not None
        return executor.launch_task_group, (driver, list(event.launch_group.task_group.tasks))
    if kind == EventType.KILL:
        assert event.kill is not None
        return executor.kill_task, (driver, event.kill.task_id, event.kill.kill_policy)
    if kind == EventType.ACKNOWLEDGED:
        assert event.acknowledged is not None
        ack = event.acknowledged
        return executor.acknowledged, (driver, ack.task_id, ack.uuid)
    if kind == EventType.MESSAGE:
        assert event.message is not None
        return executor.framework_message, (driver, event.message.data)
    if kind == EventType.ERROR:
        assert event.error is not None
        return executor.error, (driver, event.error.message)
    if kind == EventType.SHUTDOWN:
        return executor.shutdown, (driver,)
    return None
