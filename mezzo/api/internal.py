"""The master <-> agent protocol: mezzo's own, in the style of the v1 APIs.

Mesos uses internal libprocess messages here (spec §14), which travel on a persistent
connection; mezzo sends the same v1-style JSON records on one WebSocket per agent:

- The agent opens a WebSocket to `/api/v1/agent` (`GET` with `Upgrade: websocket`; `wss://`
  with TLS; its credential on the handshake). What would refuse a call before it is read
  refuses the handshake with the same status: 503 while the master recovers, 307/503 from a
  master that does not lead, 401 without a valid credential, 403 without `register_agents`.
- Its first message is an `AgentCall` of type SUBSCRIBE. A fresh agent sends its AgentInfo
  without an id (registration); an agent that already has an id sends it together with the
  frameworks, executors and tasks it runs (re-registration, after a master failover or an
  agent restart). The master's `AgentEvent`s then come down the socket, one JSON document per
  binary frame, the first being SUBSCRIBED (carrying the agent id), or a single ERROR/SHUTDOWN
  then the close.
- Everything else the agent says is an `AgentCall` carrying `agent_id`, one per frame, up the
  same socket, handled in the order sent. A call the master refuses (what a POST would have
  answered 400 or 403) gets an ERROR event with `refused_call` and `status` set; the socket
  stays open. A SUBSCRIBE the master refuses before the core sees it (not JSON, not a
  SUBSCRIBE) gets the same ERROR naming SUBSCRIBE, then the close.
- Health: the master sends PING every `agent_ping_timeout`; the agent answers with a PONG call.
  `max_agent_ping_timeouts` pings without a PONG make the agent unreachable. A socket that
  closes or breaks makes the agent disconnected at once.

The earlier transport is still served for older agents and tools: SUBSCRIBE as `POST
/api/v1/agent` answered with a 200 RecordIO stream of the same events, and each other call a
separate POST answered 202 (400 for malformed calls; 403 when that agent is not subscribed).
The socket costs the master one connection per agent instead of two and about a third of the
CPU per call (docs/benchmarks.md, "Agent transport (issue 11)").

Status updates flow agent -> master as STATUS_UPDATE calls (with the 16-byte uuid of the
executor's update and the task's latest state; a busy agent sends many in one call, in order,
in `status_updates`); the scheduler's acknowledgement flows back as
an ACKNOWLEDGE event. The agent resends the head update of each task until it is acknowledged.
"""

from __future__ import annotations

from enum import StrEnum

from mezzo.api.base import Message
from mezzo.api.common import UUID as UUIDRecord
from mezzo.api.common import (
    AgentID,
    AgentInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    OfferOperation,
    Operation,
    OperationStatus,
    Resource,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)

AGENT_API_PATH = "/api/v1/agent"


class AgentTask(Message):
    """A task as the agent reports it when re-registering (a subset of Mesos's `Task`)."""

    task_id: TaskID
    framework_id: FrameworkID
    executor_id: ExecutorID | None = None
    name: str = ""
    state: TaskState
    resources: list[Resource] = []
    statuses: list[TaskStatus] = []
    # The state of the oldest update not yet acknowledged, if any (Mesos `status_update_state`).
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None


class AgentExecutor(Message):
    """An executor running on the agent, reported at re-registration."""

    framework_id: FrameworkID
    executor_info: ExecutorInfo


class AgentCallType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBE = "SUBSCRIBE"
    STATUS_UPDATE = "STATUS_UPDATE"
    PONG = "PONG"
    FRAMEWORK_MESSAGE = "FRAMEWORK_MESSAGE"
    EXECUTOR_EXITED = "EXECUTOR_EXITED"
    UNREGISTER = "UNREGISTER"
    UPDATE_OPERATION_STATUS = "UPDATE_OPERATION_STATUS"


class AgentSubscribe(Message):
    agent_info: AgentInfo
    # Present on re-registration (agent_info.id set).
    frameworks: list[FrameworkInfo] = []
    executors: list[AgentExecutor] = []
    tasks: list[AgentTask] = []
    # Frameworks the agent has finished with since it last talked to a master.
    completed_framework_ids: list[FrameworkID] = []
    # The agent's software version and capabilities (strings), shown in state endpoints.
    version: str | None = None
    capabilities: list[str] = []
    # `slave(1)@IP:PORT`: where the agent serves HTTP, by IP (a host name may not resolve).
    pid: str | None = None
    # Dynamically reserved (and persistent) resources the agent checkpointed (Mesos's
    # `checkpointed_resources`): the master's view of the agent's total is `agent_info.resources`
    # with these carved out of it (`mezzo.resources.conversions.apply_checkpointed`).
    checkpointed_resources: list[Resource] = []
    # Operations the agent knows and has not had acknowledged (Mesos's UpdateSlaveMessage).
    operations: list[Operation] = []


class AgentStatusUpdate(Message):
    framework_id: FrameworkID
    status: TaskStatus
    # The task's most recent state at the agent, which may be ahead of `status.state`
    # because updates are delivered one at a time (spec §5.4).
    latest_state: TaskState | None = None


class AgentPong(Message):
    ping_id: int = 0


class AgentFrameworkMessage(Message):
    framework_id: FrameworkID
    executor_id: ExecutorID
    data: bytes


class AgentExecutorExited(Message):
    framework_id: FrameworkID
    executor_id: ExecutorID
    # Wait status of the executor process (as in the FAILURE event); None if unknown.
    status: int | None = None
    # Command executors generate no FAILURE event for the scheduler (spec §6.3).
    command_executor: bool = False


class AgentUpdateOperationStatus(Message):
    """An operation's status, sent reliably (retried until the master acknowledges it, as
    Mesos's UpdateOperationStatusMessage); `status.uuid` identifies this status."""

    framework_id: FrameworkID | None = None
    status: OperationStatus
    latest_status: OperationStatus | None = None
    operation_uuid: UUIDRecord


class AgentCall(Message):
    type: AgentCallType
    agent_id: AgentID | None = None
    subscribe: AgentSubscribe | None = None
    status_update: AgentStatusUpdate | None = None
    # STATUS_UPDATE may carry several updates at once (in order, each handled as if sent
    # alone), so that a busy agent sends one request for many updates.
    status_updates: list[AgentStatusUpdate] = []
    pong: AgentPong | None = None
    framework_message: AgentFrameworkMessage | None = None
    executor_exited: AgentExecutorExited | None = None
    update_operation_status: AgentUpdateOperationStatus | None = None


class AgentEventType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBED = "SUBSCRIBED"
    RUN_TASK = "RUN_TASK"
    RUN_TASK_GROUP = "RUN_TASK_GROUP"
    KILL_TASK = "KILL_TASK"
    ACKNOWLEDGE = "ACKNOWLEDGE"
    SHUTDOWN_FRAMEWORK = "SHUTDOWN_FRAMEWORK"
    SHUTDOWN_EXECUTOR = "SHUTDOWN_EXECUTOR"
    FRAMEWORK_MESSAGE = "FRAMEWORK_MESSAGE"
    UPDATE_FRAMEWORK = "UPDATE_FRAMEWORK"
    RECONCILE_TASKS = "RECONCILE_TASKS"
    PING = "PING"
    SHUTDOWN = "SHUTDOWN"
    ERROR = "ERROR"
    APPLY_OPERATION = "APPLY_OPERATION"
    ACKNOWLEDGE_OPERATION_STATUS = "ACKNOWLEDGE_OPERATION_STATUS"


class AgentSubscribed(Message):
    agent_id: AgentID
    master_info: MasterInfo
    # How often the master pings; the agent may use it to detect a silent master.
    ping_interval_seconds: float = 15.0


class AgentRunTask(Message):
    framework_info: FrameworkInfo
    task: TaskInfo
    # Set for custom executors; command tasks carry `task.command` and no executor.
    executor_info: ExecutorInfo | None = None


class AgentRunTaskGroup(Message):
    framework_info: FrameworkInfo
    executor_info: ExecutorInfo
    task_group: TaskGroupInfo


class AgentKillTask(Message):
    framework_id: FrameworkID
    task_id: TaskID
    kill_policy: KillPolicy | None = None


class AgentAcknowledge(Message):
    framework_id: FrameworkID
    task_id: TaskID
    uuid: bytes


class AgentShutdownFramework(Message):
    framework_id: FrameworkID


class AgentShutdownExecutor(Message):
    framework_id: FrameworkID
    executor_id: ExecutorID


class AgentUpdateFramework(Message):
    framework_info: FrameworkInfo


class AgentReconcileTasks(Message):
    """Tasks the master believes run on this agent (sent after SUBSCRIBED to a re-registering
    agent that did not report them); the agent answers each one it does not know with a
    reliable TASK_DROPPED (PARTITION_AWARE `framework`) or TASK_LOST update, as Mesos's
    ReconcileTasksMessage."""

    framework_id: FrameworkID
    task_ids: list[TaskID] = []
    # The framework's info, for its PARTITION_AWARE capability (the agent may not know it).
    framework: FrameworkInfo | None = None


class AgentPing(Message):
    ping_id: int = 0


class AgentShutdown(Message):
    message: str = ""


class AgentError(Message):
    message: str
    # Set when the error refuses one call that came on the agent's socket (where there is no
    # HTTP answer to carry it): which call, and the status a POST of it would have got. The
    # socket stays open; the agent logs the refusal, as it logs a POST's 4xx.
    refused_call: AgentCallType | None = None
    status: int | None = None


class AgentApplyOperation(Message):
    """Apply an offer operation on the agent's default resources (Mesos's
    ApplyOperationMessage): RESERVE, UNRESERVE (and the volume operations). The master has
    applied it to its view already; the agent checkpoints the result and answers with an
    UPDATE_OPERATION_STATUS call."""

    framework_id: FrameworkID | None = None
    operation_info: OfferOperation
    operation_uuid: UUIDRecord


class AgentAcknowledgeOperationStatus(Message):
    """The status `status_uuid` of operation `operation_uuid` reached its destination."""

    status_uuid: UUIDRecord
    operation_uuid: UUIDRecord


class AgentEvent(Message):
    type: AgentEventType
    subscribed: AgentSubscribed | None = None
    run_task: AgentRunTask | None = None
    run_task_group: AgentRunTaskGroup | None = None
    kill_task: AgentKillTask | None = None
    acknowledge: AgentAcknowledge | None = None
    shutdown_framework: AgentShutdownFramework | None = None
    shutdown_executor: AgentShutdownExecutor | None = None
    framework_message: AgentFrameworkMessage | None = None
    update_framework: AgentUpdateFramework | None = None
    reconcile_tasks: AgentReconcileTasks | None = None
    ping: AgentPing | None = None
    shutdown: AgentShutdown | None = None
    error: AgentError | None = None
    apply_operation: AgentApplyOperation | None = None
    acknowledge_operation_status: AgentAcknowledgeOperationStatus | None = None


def merge_status_updates(calls: list[AgentCall]) -> list[AgentCall]:
    """Merge each run of consecutive STATUS_UPDATE calls into one call carrying them all in
    `status_updates`, keeping the order of everything; other calls pass through unchanged."""
    out: list[AgentCall] = []
    for call in calls:
        if call.type != AgentCallType.STATUS_UPDATE:
            out.append(call)
            continue
        updates = ([call.status_update] if call.status_update is not None else []) + call.status_updates
        last = out[-1] if out else None
        if last is not None and last.type == AgentCallType.STATUS_UPDATE and last.agent_id == call.agent_id:
            last.status_updates.extend(updates)
        else:
            out.append(AgentCall(type=AgentCallType.STATUS_UPDATE, agent_id=call.agent_id,
                                 status_updates=updates))
    for call in out:  # a single update travels in the classic field
        if call.type == AgentCallType.STATUS_UPDATE and len(call.status_updates) == 1:
            call.status_update, call.status_updates = call.status_updates[0], []
    return out
