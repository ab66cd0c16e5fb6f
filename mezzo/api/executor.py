"""The v1 executor API: the `Call` an executor POSTs to its agent and the `Event`s of its stream
(spec §6).

Owns the shapes and `check_call` (type and payload present). Unlike scheduler calls, every
executor call carries both `framework_id` and `executor_id` at the top level; they are required
fields, so a call without them fails to decode ("missing required field $.executor_id").
The agent's lookups (unknown framework/executor → 400, not subscribed → 403) are the agent's.
"""

from __future__ import annotations

from enum import StrEnum

from mezzo.api.base import Message, union_payload
from mezzo.api.codec import decode
from mezzo.api.common import (
    AgentInfo,
    ContainerID,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskStatus,
)
from mezzo.core.errors import ValidationError

# --------------------------------------------------------------------------- calls


class CallType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBE = "SUBSCRIBE"
    UPDATE = "UPDATE"
    MESSAGE = "MESSAGE"
    HEARTBEAT = "HEARTBEAT"


class UnacknowledgedUpdate(Message):
    # Mesos docs show a `framework_id` here too; the proto has only `status` (extra key ignored).
    status: TaskStatus


class Subscribe(Message):
    """What a re-subscribing executor still holds: tasks without an ACKNOWLEDGED update and
    updates the agent has not acknowledged; both empty on a first subscription."""

    unacknowledged_tasks: list[TaskInfo] = []
    unacknowledged_updates: list[UnacknowledgedUpdate] = []


class Update(Message):
    status: TaskStatus


class CallMessage(Message):
    data: bytes


class Call(Message):
    executor_id: ExecutorID
    framework_id: FrameworkID
    type: CallType | None = None
    subscribe: Subscribe | None = None
    update: Update | None = None
    message: CallMessage | None = None


def check_call(call: Call) -> Call:
    """Request-level validation: type and payload present; an UPDATE carries a 16-byte uuid
    (the agent acknowledges updates by it). Type UNKNOWN passes (the server answers 501)."""
    union_payload(call, no_payload=frozenset({CallType.HEARTBEAT}))
    if call.type == CallType.UPDATE:
        assert call.update is not None
        uuid = call.update.status.uuid
        if uuid is None or len(uuid) != 16:
            raise ValidationError("'update.status.uuid' must be present and 16 bytes")
    return call


def decode_call(data: bytes | str) -> Call:
    """Decode and check an executor call body (see `check_call`)."""
    return check_call(decode(data, Call))


# --------------------------------------------------------------------------- events


class EventType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBED = "SUBSCRIBED"
    LAUNCH = "LAUNCH"
    LAUNCH_GROUP = "LAUNCH_GROUP"
    KILL = "KILL"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    MESSAGE = "MESSAGE"
    ERROR = "ERROR"
    SHUTDOWN = "SHUTDOWN"
    HEARTBEAT = "HEARTBEAT"


# The agent sends a HEARTBEAT event this often (the first one after one interval).
HEARTBEAT_INTERVAL_SECONDS = 30 * 60.0


class Subscribed(Message):
    executor_info: ExecutorInfo
    framework_info: FrameworkInfo  # with `id`: pymesos asserts it equals MESOS_FRAMEWORK_ID
    agent_info: AgentInfo  # with `id`
    container_id: ContainerID | None = None


class Launch(Message):
    task: TaskInfo


class LaunchGroup(Message):
    task_group: TaskGroupInfo


class Kill(Message):
    task_id: TaskID
    kill_policy: KillPolicy | None = None


class Acknowledged(Message):
    task_id: TaskID
    uuid: bytes  # the executor's own uuid, echoed: pymesos requires exactly 16 bytes


class EventMessage(Message):
    data: bytes


class Error(Message):
    message: str


class Event(Message):
    type: EventType | None = None
    subscribed: Subscribed | None = None
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    kill: Kill | None = None
    acknowledged: Acknowledged | None = None
    message: EventMessage | None = None
    error: Error | None = None


def check_event(event: Event) -> Event:
    """Check that a decoded event carries the payload of its type (used by the executor SDK)."""
    union_payload(event, no_payload=frozenset({EventType.SHUTDOWN, EventType.HEARTBEAT}))
    return event
