"""The master's state records: frameworks, agents, tasks and offers.

Plain mutable records owned by the decision core (`mezzo.master.core.Master`). Which lifecycle
collection a record sits in (registered / disconnected / completed frameworks; registered /
recovered / unreachable / gone agents) is decided by the core; the records only carry what
the master knows about one entity. Resources are kept as `Resources` values tagged with the
allocation role (`allocation_info`), which is what the allocator and the offers account in.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mezzo.api.codec import decode, encode
from mezzo.api.common import (
    AgentInfo,
    ExecutorInfo,
    FrameworkCapabilityType,
    FrameworkInfo,
    Offer,
    OfferOperation,
    Operation,
    OperationStatus,
    Task,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    TimeInfo,
)
from mezzo.api.internal import AgentSubscribe
from mezzo.master.completed import CompletedTask
from mezzo.master.gauges import TaskIndex
from mezzo.master.registry import AdmitAgent, MarkReachable
from mezzo.resources import Resources

_CAP = FrameworkCapabilityType


def framework_roles(info: FrameworkInfo) -> list[str]:
    """The roles a framework subscribes to: `roles` (MULTI_ROLE) or the single `role`."""
    if has_capability(info, _CAP.MULTI_ROLE):
        return list(info.roles)
    return [info.role or "*"]


def has_capability(info: FrameworkInfo, cap: FrameworkCapabilityType) -> bool:
    return any(c.type == cap for c in info.capabilities)


# One `Resources` per resource shape for the master's tasks: thousands of tasks of the same
# size share one value (Resources is immutable). Bounded: beyond it, a shape is not shared.
_SHAPES: dict[Any, Resources] = {}
_MAX_SHAPES = 4096


def shared_resources(resources: Resources) -> Resources:
    """An equal `Resources`, the one already held for that shape when there is one."""
    shape = resources.shape()
    if shape is None:
        return resources
    held = _SHAPES.get(shape)
    if held is not None:
        return held
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[shape] = resources
    return resources


def resources_from_wire(wire: list[Any]) -> Resources:
    """`Resources.from_wire`, remembered by the wire form's JSON. A re-registering agent
    reports every task it runs, and after a failover thousands of agents report tens of
    thousands of tasks of a few shapes: converting and validating each one again was a third
    of a re-registration's cost. Invalid resources raise as `from_wire` does (and are not
    remembered)."""
    key = msgspec.json.encode(wire)
    held = _FROM_WIRE.get(key)
    if held is None:
        held = Resources.from_wire(wire)
        if len(_FROM_WIRE) >= _MAX_SHAPES:
            _FROM_WIRE.clear()
        _FROM_WIRE[key] = held
    return held


_FROM_WIRE: dict[bytes, Resources] = {}


def allocated_from_wire(wire: list[Any], role: str, *, reported_role: bool = True) -> tuple[str, Resources]:
    """What a re-registering agent reports a task or executor holding, allocated to one role:
    with `reported_role`, the role the wire resources carry (their first allocation role),
    else `role`; returns that role and the resources re-tagged with it, shared per wire JSON
    and arguments as `resources_from_wire` is. Re-tagging each of tens of thousands of tasks
    and executors after a failover was a fifth of the core's work per agent (issue 12)."""
    key = (msgspec.json.encode(wire), role, reported_role)
    held = _ALLOCATED.get(key)
    if held is None:
        resources = resources_from_wire(wire)
        roles = list(resources.allocations()) if reported_role else []
        chosen = roles[0] if roles else role
        held = (chosen, shared_resources(resources.unallocate().allocate(chosen)))
        if len(_ALLOCATED) >= _MAX_SHAPES:
            _ALLOCATED.clear()
        _ALLOCATED[key] = held
    return held


_ALLOCATED: dict[tuple[bytes, str, bool], tuple[str, Resources]] = {}


def share_agent_info(info: AgentInfo) -> AgentInfo:
    """`info`, its `resources` and `attributes` lists replaced by equal ones shared with the
    agents that reported the same (kept per JSON, bounded as `shared_resources`).

    Issue 12: an agent's wire resources were 12 objects the garbage collector tracks (the
    list, each `Resource`, its empty `reservations` list, the ports' `Ranges` and their list),
    walked by every full collection, for each of thousands of agents of a few shapes. The
    shared lists are never changed in place (the master replaces an agent's info whole)."""
    info.resources = _shared_list(info.resources)
    info.attributes = _shared_list(info.attributes)
    return info


def _shared_list(items: list[Any]) -> list[Any]:
    key = msgspec.json.encode(items)
    held = _AGENT_LISTS.get(key)
    if held is None:
        if len(_AGENT_LISTS) >= _MAX_SHAPES:
            _AGENT_LISTS.clear()
        held = _AGENT_LISTS[key] = items
    return held


_AGENT_LISTS: dict[bytes, list[Any]] = {}


# Kept as attributes (`data` is not kept at all: Mesos's master drops it from its tasks too).
# The wire form (with allocation info) of recent shared task resources: views render each
# shape once, not once per task. Callers get their own list of the shared records.
_WIRE: dict[int, tuple[Resources, list[Any]]] = {}


def _resources_wire(resources: Resources) -> list[Any]:
    held = _WIRE.get(id(resources))
    if held is None or held[0] is not resources:
        if len(_WIRE) >= _MAX_SHAPES:
            _WIRE.clear()
        held = _WIRE[id(resources)] = (resources, resources.to_wire(with_allocation=True))
    return list(held[1])


_INFO_KEPT_APART = ("name", "task_id", "agent_id", "resources", "data")


class TaskRecord(msgspec.Struct, kw_only=True, gc=False, eq=False):
    """A task the master knows: launched (STAGING) until its terminal update is acknowledged.

    Compact, since a master holds every running task (issue 12: ≤ 2 KB each): the ids, state
    and times are plain attributes; the resources are shared per shape (`shared_resources`);
    the `TaskInfo` is kept as the JSON of its fields other than name, id, agent and resources
    (typically just the command) and rebuilt by `info` when a view asks; the statuses are kept
    as a tuple of JSON (without `data`) and decoded by `statuses` / `latest_status()`. Add a
    status with `add_status`: `statuses` returns a new list each time. Make one with `create`.

    Not tracked by the garbage collector (`gc=False`; issue 12: a full collection at 100,000
    tasks walked 200,000 task objects, a record and its list of statuses, in a loop pause of
    250 ms at 9,000 agents). Sound because a record can never be part of a reference cycle:
    it holds only strings, numbers, bytes, enums, a tuple of bytes, a shared `Resources`
    (which holds no records) and a *weak* reference to its framework's `TaskIndex` (a strong
    one made a cycle record -> index -> record). Anything added here must keep it so: an
    untracked object in a cycle makes the whole cycle uncollectable.
    """

    task_id: str
    name: str
    framework_id: str
    agent_id: str
    executor_id: str | None
    role: str
    resources: Resources  # shared per shape, tagged with `role`
    # `weakref.ref` to the framework's `TaskIndex` this task is in (told of state changes).
    _index: Any = None
    _state: TaskState = TaskState.TASK_STAGING
    # State and uuid of the last reliable update forwarded to the scheduler (spec §5.4).
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None
    user: str | None = None
    unreachable_time: float | None = None
    # True once the resources went back to the allocator (latest state terminal).
    _recovered: bool = False
    # When the update awaiting acknowledgement was forwarded (status update round trip).
    update_sent_at: float | None = None
    # The info's other fields: `{...}` without its braces (b"" when nothing else is set),
    # spliced into `info`.
    _info: bytes = b""
    # A tuple (not a list): the collector untracks a tuple of bytes, never a list.
    _statuses: tuple[bytes, ...] = ()
    # The uuid of the last status kept: each status update asks for it (a retried update
    # is kept once), and decoding the last status for it cost more than keeping it.
    _latest_uuid: bytes | None = None

    @classmethod
    def create(
        cls,
        info: TaskInfo,
        framework_id: str,
        agent_id: str,
        executor_id: str | None,
        role: str,
        resources: Resources,  # tagged with `role`
        state: TaskState = TaskState.TASK_STAGING,
        statuses: list[TaskStatus] | None = None,
        status_update_state: TaskState | None = None,
        status_update_uuid: bytes | None = None,
        user: str | None = None,
        unreachable_time: float | None = None,
        recovered: bool = False,
        update_sent_at: float | None = None,
    ) -> TaskRecord:
        """The record of the task `info` (its `data` is not kept: Mesos's master drops it too)."""
        task_id = info.task_id.value
        rest = msgspec.to_builtins(info)
        for key in _INFO_KEPT_APART:
            rest.pop(key, None)
        record = cls(
            task_id=task_id,
            name=task_id if info.name == task_id else info.name,
            framework_id=framework_id,
            agent_id=agent_id,
            executor_id=executor_id,
            role=role,
            resources=shared_resources(resources),
            _state=state,
            status_update_state=status_update_state,
            status_update_uuid=status_update_uuid,
            user=user,
            unreachable_time=unreachable_time,
            _recovered=recovered,
            update_sent_at=update_sent_at,
            _info=msgspec.json.encode(rest)[1:-1],
        )
        for status in statuses or ():
            record.add_status(status)
        return record

    @property
    def state(self) -> TaskState:
        return self._state

    @state.setter
    def state(self, state: TaskState) -> None:
        index = self._index() if self._index is not None else None
        if index is not None:
            index.moved(self, state, self._recovered)
        self._state = state

    @property
    def recovered(self) -> bool:
        """True once the resources went back to the allocator (latest state terminal)."""
        return self._recovered

    @recovered.setter
    def recovered(self, recovered: bool) -> None:
        index = self._index() if self._index is not None else None
        if index is not None:
            index.moved(self, self._state, recovered)
        self._recovered = recovered

    @property
    def info(self) -> TaskInfo:
        """The task's `TaskInfo` (rebuilt: its resources are the task's, with their
        allocation role)."""
        ids = {"name": self.name, "task_id": {"value": self.task_id},
               "agent_id": {"value": self.agent_id}}
        head = msgspec.json.encode(ids)
        info = _INFO_DECODER.decode(head[:-1] + b"," + self._info + b"}" if self._info else head)
        info.resources = _resources_wire(self.resources)
        return info

    def info_fields(self) -> dict[str, Any]:
        """The kept `TaskInfo` fields other than name, id, agent and resources, as JSON
        builtins (what `to_builtins` of each gives), without building the `TaskInfo`."""
        return msgspec.json.decode(b"{" + self._info + b"}") if self._info else {}

    def info_json(self) -> bytes:
        """The kept `TaskInfo` fields (see `info_fields`) as JSON object members without the
        braces (b"" when none): what views splice or decode without building a `TaskInfo`."""
        return self._info

    def status_json(self) -> tuple[bytes, ...]:
        """The statuses as the JSON of each `TaskStatus` (without `data`), oldest first."""
        return self._statuses

    def status_dicts(self) -> list[dict[str, Any]]:
        """The statuses as JSON builtins (what `to_builtins` of each gives), oldest first."""
        return [msgspec.json.decode(s) for s in self._statuses]

    @property
    def statuses(self) -> list[TaskStatus]:
        """The task's status updates, oldest first (a new list: see `add_status`)."""
        return [_STATUS_DECODER.decode(s) for s in self._statuses]

    @statuses.setter
    def statuses(self, statuses: list[TaskStatus]) -> None:
        self._statuses = ()
        self._latest_uuid = None
        for status in statuses:
            self.add_status(status)

    def add_status(self, status: TaskStatus) -> None:
        """Keep `status` (without its `data`, as Mesos's master keeps them)."""
        if status.data is not None:
            status = msgspec.structs.replace(status, data=None)
        self._statuses = (*self._statuses, msgspec.json.encode(status))
        self._latest_uuid = status.uuid

    def status_count(self) -> int:
        return len(self._statuses)

    def latest_uuid(self) -> bytes | None:
        """The uuid of the latest status (None when there is none or it has no uuid)."""
        return self._latest_uuid

    def latest_status(self) -> TaskStatus | None:
        return _STATUS_DECODER.decode(self._statuses[-1]) if self._statuses else None

    def first_status(self) -> TaskStatus | None:
        return _STATUS_DECODER.decode(self._statuses[0]) if self._statuses else None

    def to_wire(self, framework_id: Any) -> Task:
        """The operator/registry `Task` shape (statuses without `data`)."""
        from mezzo.api.common import AgentID, ExecutorID

        info = self.info
        return Task(
            name=info.name,
            task_id=info.task_id,
            framework_id=framework_id,
            executor_id=ExecutorID(value=self.executor_id) if self.executor_id else None,
            agent_id=AgentID(value=self.agent_id),
            state=self.state,
            resources=info.resources,
            statuses=self.statuses,
            status_update_state=self.status_update_state,
            status_update_uuid=self.status_update_uuid,
            labels=info.labels,
            discovery=info.discovery,
            container=info.container,
            health_check=info.health_check,
            check=info.check,
            kill_policy=info.kill_policy,
            user=self.user,
            limits=info.limits,
        )


_STATUS_DECODER = msgspec.json.Decoder(TaskStatus)
_INFO_DECODER = msgspec.json.Decoder(TaskInfo)


@dataclass(slots=True, eq=False)
class OperationRecord:
    """An offer operation the master applied to an agent's default resources (RESERVE,
    UNRESERVE, CREATE, DESTROY), from its ACCEPT or operator call until its terminal status is
    acknowledged (by the framework if it gave an id, else by the master itself), or until its
    agent is removed. Kept by the agent (`operations`) and, with an id, by its framework."""

    uuid: bytes
    info: OfferOperation
    agent_id: str
    framework_id: str | None
    latest_status: OperationStatus
    statuses: list[OperationStatus] = field(default_factory=list)

    @property
    def operation_id(self) -> str | None:
        return self.info.id.value if self.info.id is not None else None

    def to_wire(self) -> Operation:
        from mezzo.api.common import UUID, AgentID, FrameworkID

        return Operation(
            framework_id=FrameworkID(value=self.framework_id) if self.framework_id else None,
            agent_id=AgentID(value=self.agent_id),
            info=self.info,
            latest_status=self.latest_status,
            statuses=list(self.statuses),
            uuid=UUID(value=self.uuid),
        )


class ExecutorRecord(msgspec.Struct, kw_only=True, gc=False, eq=False):
    """An executor the master knows on an agent. Its `ExecutorInfo` is kept as the JSON it
    encodes to and decoded when asked for (`info`): after a failover the agents report every
    task's command executor (72,000 at 9,000 agents), and each kept decoded was six objects the
    garbage collector tracks (the record, the info, its command, their default empty lists),
    which a new leader paid for in 0.3-0.5 s collections (docs/benchmarks.md, "Ninth pass").
    Not tracked itself (`gc=False`): it holds bytes and a `Resources`, no cycle."""

    info_json: bytes
    resources: Resources  # tagged with the role of the task that started it

    @classmethod
    def of(cls, info: ExecutorInfo, resources: Resources) -> ExecutorRecord:
        return cls(info_json=encode(info), resources=resources)

    @property
    def info(self) -> ExecutorInfo:
        return decode(self.info_json, ExecutorInfo)

    def command_user(self) -> str | None:
        """The info's `command.user`, decoded alone (what authorization's views ask of every
        executor: after a failover 72,000 of them at 9,000 agents)."""
        command = _EXECUTOR_USER.decode(self.info_json).command
        return None if command is None else command.user


class _CommandUser(msgspec.Struct, gc=False):
    user: str | None = None


class _ExecutorUser(msgspec.Struct, gc=False):
    command: _CommandUser | None = None


_EXECUTOR_USER = msgspec.json.Decoder(_ExecutorUser)


@dataclass(slots=True, eq=False)
class FrameworkRecord:
    """A framework from its first SUBSCRIBE until it is removed (then it is 'completed')."""

    id: str
    info: FrameworkInfo
    roles: list[str]
    registered_time: float
    # Opaque handle of the current subscription stream (owned by the shell); None when
    # disconnected or recovered from an agent's report.
    stream: Any = None
    stream_id: str | None = None
    connected: bool = False
    active: bool = False
    recovered: bool = False
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    # When the failover timer fires (disconnected frameworks only).
    failover_deadline: float | None = None
    next_heartbeat: float = 0.0
    suppressed_roles: set[str] = field(default_factory=set)
    offer_constraints: dict[str, Any] | None = None
    # task id -> record, for tasks that are not yet completed (including unreachable ones);
    # a `TaskIndex` counting them per state and summing their resources (`mezzo.master.gauges`).
    tasks: dict[str, TaskRecord] = field(default_factory=TaskIndex)
    # Tasks on unreachable agents (PARTITION_AWARE frameworks), may come back.
    unreachable_tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # Ended tasks, as the documents show them (`mezzo.master.completed`).
    completed_tasks: deque[CompletedTask] = field(default_factory=deque)
    # The ids of its outstanding offers (see `AgentRecord.offers`).
    offers: dict[str, None] = field(default_factory=dict)
    # agent id -> executor id -> record
    executors: dict[str, dict[str, ExecutorRecord]] = field(default_factory=dict)
    # Mesos's per-framework counters (`master/frameworks/<name>/<id>/<key>`): calls,
    # calls/<type>, events, events/<type>, offers/sent|accepted|declined|rescinded,
    # tasks/terminal/<state>.
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def partition_aware(self) -> bool:
        return has_capability(self.info, _CAP.PARTITION_AWARE)

    @property
    def multi_role(self) -> bool:
        return has_capability(self.info, _CAP.MULTI_ROLE)

    @property
    def refinement(self) -> bool:
        return has_capability(self.info, _CAP.RESERVATION_REFINEMENT)

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.checkpoint)

    def used_resources(self) -> Resources:
        total = Resources()
        for task in self.tasks.values():
            if not task.recovered:
                total = total + task.resources
        for per_agent in self.executors.values():
            for executor in per_agent.values():
                total = total + executor.resources
        return total


@dataclass(slots=True, eq=False)
class AgentRecord:
    """A registered agent (connected or not)."""

    id: str
    info: AgentInfo
    total: Resources
    registered_time: float
    stream: Any = None
    connected: bool = True
    active: bool = True
    reregistered_time: float | None = None
    version: str | None = None
    # A tuple: the garbage collector untracks a tuple of strings, never a list (issue 12:
    # every tracked object per agent is walked by each full collection, 9,000 agents).
    capabilities: tuple[str, ...] = ()
    pid: str | None = None
    # (framework id, task id) -> task record (untracked by the collector: its keys are
    # tuples of strings and its records are not tracked).
    tasks: dict[tuple[str, str], TaskRecord] = field(default_factory=dict)
    # The ids of its outstanding offers, as a dict used as an ordered set: a dict of strings
    # is never tracked by the collector, a set always is.
    offers: dict[str, None] = field(default_factory=dict)
    # Operation uuid -> the operations applied here and not yet acknowledged terminal.
    operations: dict[bytes, OperationRecord] = field(default_factory=dict)
    # The dynamically reserved and persistent resources (unallocated), as the agent
    # checkpoints them: `total` is `info.resources` with these carved out.
    checkpointed: Resources = field(default_factory=Resources)
    # Health checking (spec §5.7): pings sent on the stream, answered by PONG calls.
    ping_id: int = 0
    pong_pending: bool = False
    missed_pings: int = 0
    next_ping: float = 0.0
    # When a disconnected agent is marked unreachable if it has not re-registered.
    reregister_deadline: float | None = None

    @property
    def hostname(self) -> str:
        return self.info.hostname


class OfferRecord(msgspec.Struct, kw_only=True, gc=False, eq=False):
    """An outstanding offer. Not tracked by the garbage collector (`gc=False`, as a
    `TaskRecord`): sound because it holds ids, times, a `Resources` and its wire `Offer`, none
    of which can lead back to it."""

    id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources  # tagged with `role`
    wire: Offer
    expires_at: float | None = None
    created_at: float = 0.0


def time_info(seconds: float | None) -> TimeInfo | None:
    return None if seconds is None else TimeInfo(nanoseconds=int(seconds * 1e9))


def task_id(value: str) -> TaskID:
    return TaskID(value=value)


@dataclass(slots=True)
class RegisteringAgent:
    """An agent whose SUBSCRIBE waits for its registry operation (see `agent_subscribe`)."""

    sub: AgentSubscribe
    stream: object
    total: Resources
    operation: AdmitAgent | MarkReachable | None
    reregistered: bool
    previously_unreachable: bool
