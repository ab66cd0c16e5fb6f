"""The operator event stream, core side: its subscribers and the events they are sent.

`OperatorEvents` is held by the master core (`MasterBase.events`). It owns

- the subscribers of `POST /api/v1 {"type":"SUBSCRIBE"}` (opaque stream handles from the
  shell, oldest first). Past `--max_operator_event_stream_subscribers` the oldest one is closed,
  as Mesos does;
- their heartbeats: a HEARTBEAT every `heartbeat_interval` seconds, the first one an interval
  after subscribing (Mesos's `ResponseHeartbeater` with a delay); `tick(now)` sends what is
  due and `next_deadline()` says when, so the master's timer loop drives them;
- the v1 shapes of the events (spec §7.3; Mesos's `include/mesos/v1/master/master.proto`):
  SUBSCRIBED, TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED, FRAMEWORK_ADDED,
  FRAMEWORK_UPDATED, FRAMEWORK_REMOVED, HEARTBEAT. As in Mesos, offers and allocated/offered
  resources are not carried by framework and agent events.

Every event leaves through the core's `Outbox.send_operator(streams, event)` (one encoding
for all subscribers, in the shell).

Filtered per subscriber (issue 15, as Mesos's `Subscribers::send`): a subscriber may come with
a `Viewer`, `(action, user) -> bool`, the authorizer bound to its principal. It then gets
TASK_ADDED / TASK_UPDATED only for tasks it may view (`view_tasks` on the task's user, else
its framework's) and FRAMEWORK_ADDED / _UPDATED / _REMOVED only for frameworks it may view
(`view_frameworks` on the framework's user); AGENT_* and HEARTBEAT go to everyone, and its
SUBSCRIBED carries the state filtered the same way (the caller passes that state). Events are built only while someone subscribes, so a
master nobody watches pays one truth test per change.

When the core emits what (the handler families call these hooks):
- `framework_added`: a new framework subscribed, or an agent reported one this master did not
  know (after a failover); `framework_updated`: re-subscription, UPDATE_FRAMEWORK, and (beyond
  Mesos, so that a UI can show it) disconnection; `framework_removed`: teardown, failover
  timeout, operator teardown.
- `agent_added`: registration and re-registration; `agent_removed`: unreachable or gone.
- `task_added`: a task launched, or first reported by a re-registering agent;
  `task_updated`: whenever a task's latest state changes (status updates, and the states the
  master decides: lost, unreachable, killed with its framework...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from mezzo.api import operator as op
from mezzo.api.common import AgentID, FrameworkID, TaskID, TaskStatus
from mezzo.master.records import AgentRecord, FrameworkRecord, TaskRecord, time_info

log = logging.getLogger("mezzo.master.events")

DEFAULT_MAX_SUBSCRIBERS = 1000  # Mesos's --max_operator_event_stream_subscribers

_HEARTBEAT = op.Event(type=op.EventType.HEARTBEAT)

# May this subscriber see it? (ACL action, the object's user) -> bool.
Viewer = Callable[[str, "str | None"], bool]


class OperatorOutbox(Protocol):
    def send_operator(self, streams: list[Any], event: op.Event) -> None:
        """Queue one event on each of these operator streams."""

    def close_operator(self, stream: Any) -> None:
        """End an operator stream."""


class OperatorEvents:
    def __init__(
        self,
        outbox: OperatorOutbox,
        *,
        heartbeat_interval: float = op.HEARTBEAT_INTERVAL_SECONDS,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        version: str = "",
    ) -> None:
        self.outbox = outbox
        self.heartbeat_interval = heartbeat_interval
        self.max_subscribers = max_subscribers
        self.version = version
        # stream -> when its next HEARTBEAT is due; insertion order = oldest first.
        self.subscribers: dict[Any, float] = {}
        # stream -> what it may view (only the filtered subscribers are here).
        self.viewers: dict[Any, Viewer] = {}
        # A framework's user, by id (set by the master core): task events are filtered by it.
        self.framework_user: Callable[[str], str | None] = lambda framework_id: None

    # ------------------------------------------------------------------ subscribers

    def __bool__(self) -> bool:
        """True while anyone subscribes (the hooks build nothing otherwise)."""
        return bool(self.subscribers)

    def subscribe(self, stream: Any, state: op.GetState | None, now: float,
                  viewer: Viewer | None = None) -> None:
        """A new subscriber: SUBSCRIBED (with the state it may view) first, then the live
        events it may view (all of them without a `viewer`). Without a `state`, the caller
        sends SUBSCRIBED ahead of the events (`Master.operator_subscribe`)."""
        while len(self.subscribers) >= self.max_subscribers:
            oldest = next(iter(self.subscribers))
            log.info("reached the maximum number of operator event stream subscribers (%d): "
                     "closing the oldest", self.max_subscribers)
            self.unsubscribe(oldest)
            self.outbox.close_operator(oldest)
        self.subscribers[stream] = now + self.heartbeat_interval
        if viewer is not None:
            self.viewers[stream] = viewer
        if state is not None:
            subscribed = op.Subscribed(get_state=state, heartbeat_interval_seconds=self.heartbeat_interval)
            self.outbox.send_operator([stream], op.Event(type=op.EventType.SUBSCRIBED, subscribed=subscribed))

    def unsubscribe(self, stream: Any) -> None:
        """The stream ended (client gone, overflow, shutdown); unknown streams are ignored."""
        self.subscribers.pop(stream, None)
        self.viewers.pop(stream, None)

    def close_all(self) -> None:
        for stream in list(self.subscribers):
            self.outbox.close_operator(stream)
        self.subscribers.clear()
        self.viewers.clear()

    def publish(self, event: op.Event, action: str | None = None, user: str | None = None) -> None:
        """Send to every subscriber that may view it (`action` on `user`; None: everyone)."""
        if not self.subscribers:
            return
        if action is None or not self.viewers:
            streams = list(self.subscribers)
        else:
            viewers = self.viewers
            streams = [s for s in self.subscribers
                       if (v := viewers.get(s)) is None or v(action, user)]
        if streams:
            self.outbox.send_operator(streams, event)

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> None:
        due = [s for s, at in self.subscribers.items() if now >= at]
        for stream in due:
            self.subscribers[stream] = now + self.heartbeat_interval
        if due:
            self.outbox.send_operator(due, _HEARTBEAT)

    def next_deadline(self) -> float | None:
        return min(self.subscribers.values()) if self.subscribers else None

    # ------------------------------------------------------------------ hooks

    def task_added(self, task: TaskRecord) -> None:
        if self.subscribers:
            wire = task.to_wire(FrameworkID(value=task.framework_id))
            self.publish(op.Event(type=op.EventType.TASK_ADDED, task_added=op.TaskAdded(task=wire)),
                         "view_tasks", self._task_user(task))

    def task_updated(self, task: TaskRecord) -> None:
        if not self.subscribers:
            return
        status = task.latest_status()
        if status is None or status.state != task.state:
            # A state the master set without a status of its own (e.g. TASK_LOST to a
            # disconnected agent's tasks): carry the state in a minimal status.
            status = TaskStatus(task_id=TaskID(value=task.task_id), state=task.state,
                                agent_id=AgentID(value=task.agent_id))
        elif status.data is not None:
            status = msgspec.structs.replace(status, data=None)
        self.publish(op.Event(type=op.EventType.TASK_UPDATED, task_updated=op.TaskUpdated(
            framework_id=FrameworkID(value=task.framework_id), status=status, state=task.state)),
            "view_tasks", self._task_user(task))

    def _task_user(self, task: TaskRecord) -> str | None:
        return task.user or self.framework_user(task.framework_id) or None

    def framework_added(self, framework: FrameworkRecord) -> None:
        if self.subscribers:
            self.publish(op.Event(type=op.EventType.FRAMEWORK_ADDED,
                                  framework_added=op.FrameworkAdded(framework=framework_entry(framework))),
                         "view_frameworks", framework.info.user or None)

    def framework_updated(self, framework: FrameworkRecord) -> None:
        if self.subscribers:
            self.publish(op.Event(type=op.EventType.FRAMEWORK_UPDATED,
                                  framework_updated=op.FrameworkUpdated(framework=framework_entry(framework))),
                         "view_frameworks", framework.info.user or None)

    def framework_removed(self, framework: FrameworkRecord) -> None:
        if self.subscribers:
            self.publish(op.Event(type=op.EventType.FRAMEWORK_REMOVED,
                                  framework_removed=op.FrameworkRemoved(framework_info=framework.info)),
                         "view_frameworks", framework.info.user or None)

    def agent_added(self, agent: AgentRecord) -> None:
        if self.subscribers:
            self.publish(op.Event(type=op.EventType.AGENT_ADDED,
                                  agent_added=op.AgentAdded(agent=agent_entry(agent, self.version))))

    def agent_removed(self, agent_id: str) -> None:
        if self.subscribers:
            self.publish(op.Event(type=op.EventType.AGENT_REMOVED,
                                  agent_removed=op.AgentRemoved(agent_id=AgentID(value=agent_id))))


# ---------------------------------------------------------------------------- shapes


def framework_entry(framework: FrameworkRecord) -> op.FrameworkEntry:
    """A framework as events show it (GET_FRAMEWORKS adds offers and resources)."""
    return op.FrameworkEntry(
        framework_info=framework.info,
        active=framework.active,
        connected=framework.connected,
        recovered=framework.recovered,
        registered_time=time_info(framework.registered_time),
        reregistered_time=time_info(framework.reregistered_time),
        unregistered_time=time_info(framework.unregistered_time),
        offer_constraints=framework.offer_constraints,
    )


def agent_entry(agent: AgentRecord, version: str) -> op.AgentEntry:
    """An agent as events show it (GET_AGENTS adds allocated and offered resources)."""
    return op.AgentEntry(
        agent_info=agent.info,
        active=agent.active,
        deactivated=not agent.active,
        version=agent.version or version,
        pid=agent.pid,
        registered_time=time_info(agent.registered_time),
        reregistered_time=time_info(agent.reregistered_time),
        total_resources=agent.total.to_wire(),
    )
