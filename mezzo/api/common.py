"""Records shared by the scheduler, executor and operator APIs (Mesos `mesos.proto`, v1).

Owns: the id records, time/duration, resources and attributes, framework/master/agent infos,
offers and filters, task/command/executor/container descriptions, offer operations, task and
operation statuses with their enums, and the terminal-state rule. Shapes follow spec §3; the
conventions (None = unset, proto defaults, enums as strings) are in `mezzo.api.base`.
Loosely typed `dict` fields are deep sub-objects mezzo passes through without interpreting.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mezzo.api.base import IdMessage, Message, WithProtoDefaults

# --------------------------------------------------------------------------- ids, time


class FrameworkID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class OfferID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class AgentID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class TaskID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class ExecutorID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class OperationID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class ResourceProviderID(IdMessage, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    pass


class ContainerID(Message, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    """A container id; nested containers name their parent."""

    value: str
    parent: ContainerID | None = None


class UUID(Message, frozen=True):  # type: ignore[misc]  # see mezzo.api.base.Message
    """The `UUID` message (`{"value": <base64 of 16 bytes>}`), used by operation feedback."""

    value: bytes


class TimeInfo(Message):
    nanoseconds: int

    @classmethod
    def from_seconds(cls, seconds: float) -> TimeInfo:
        return cls(nanoseconds=int(seconds * 1e9))

    @property
    def seconds(self) -> float:
        return self.nanoseconds / 1e9


class DurationInfo(Message):
    nanoseconds: int

    @classmethod
    def from_seconds(cls, seconds: float) -> DurationInfo:
        return cls(nanoseconds=int(seconds * 1e9))

    @property
    def seconds(self) -> float:
        return self.nanoseconds / 1e9


class Parameter(Message):
    key: str
    value: str


class Parameters(Message):
    parameter: list[Parameter] = []


# --------------------------------------------------------------------------- values, resources


class ValueType(StrEnum):
    SCALAR = "SCALAR"
    RANGES = "RANGES"
    SET = "SET"
    TEXT = "TEXT"


class Scalar(Message):
    value: float


class Range(Message):
    begin: int
    end: int


class Ranges(Message):
    range: list[Range] = []


class ValueSet(Message):
    item: list[str] = []


class Text(Message):
    value: str


class Label(Message):
    key: str
    value: str | None = None


class Labels(Message):
    labels: list[Label] = []


class ReservationType(StrEnum):
    UNKNOWN = "UNKNOWN"
    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"


class ReservationInfo(Message):
    """One entry of a resource's reservation stack (or the pre-refinement `reservation`)."""

    type: ReservationType | None = None
    role: str | None = None
    principal: str | None = None
    labels: Labels | None = None


class AllocationInfo(Message):
    role: str | None = None


class Persistence(Message):
    id: str
    principal: str | None = None


class Volume(Message):
    """A volume: of a persistent disk (`DiskInfo.volume`) or mounted into a container."""

    container_path: str
    mode: str | None = None  # "RW" | "RO"
    host_path: str | None = None
    image: dict[str, Any] | None = None
    source: dict[str, Any] | None = None


class DiskSource(Message):
    type: str | None = None
    path: dict[str, Any] | None = None
    mount: dict[str, Any] | None = None
    id: str | None = None
    profile: str | None = None


class DiskInfo(Message):
    persistence: Persistence | None = None
    volume: Volume | None = None
    source: DiskSource | None = None


class RevocableInfo(Message):
    pass


class SharedInfo(Message):
    pass


class Resource(Message):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: ValueSet | None = None
    role: str | None = None
    allocation_info: AllocationInfo | None = None
    reservation: ReservationInfo | None = None
    reservations: list[ReservationInfo] = []
    disk: DiskInfo | None = None
    revocable: RevocableInfo | None = None
    shared: SharedInfo | None = None
    provider_id: ResourceProviderID | None = None


class Attribute(Message):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: ValueSet | None = None
    text: Text | None = None


# --------------------------------------------------------------------------- addresses, domains


class Address(Message):
    hostname: str | None = None
    ip: str | None = None
    port: int


class URL(Message):
    scheme: str
    address: Address
    path: str | None = None
    query: list[Parameter] = []
    fragment: str | None = None


class NameInfo(Message):
    name: str


class FaultDomain(Message):
    region: NameInfo
    zone: NameInfo


class DomainInfo(Message):
    fault_domain: FaultDomain | None = None


# --------------------------------------------------------------------------- frameworks


class FrameworkCapabilityType(StrEnum):
    UNKNOWN = "UNKNOWN"
    REVOCABLE_RESOURCES = "REVOCABLE_RESOURCES"
    TASK_KILLING_STATE = "TASK_KILLING_STATE"
    GPU_RESOURCES = "GPU_RESOURCES"
    SHARED_RESOURCES = "SHARED_RESOURCES"
    PARTITION_AWARE = "PARTITION_AWARE"
    MULTI_ROLE = "MULTI_ROLE"
    RESERVATION_REFINEMENT = "RESERVATION_REFINEMENT"
    REGION_AWARE = "REGION_AWARE"


class FrameworkCapability(Message):
    # Optional in the proto: an unknown capability name decodes to an entry without type.
    type: FrameworkCapabilityType | None = None


class ResourceQuantities(Message):
    quantities: dict[str, Scalar] = {}


class MinAllocatableResources(Message):
    quantities: list[ResourceQuantities] = []


class OfferFilters(Message):
    min_allocatable_resources: MinAllocatableResources | None = None


class FrameworkInfo(WithProtoDefaults):
    __proto_defaults__ = {"failover_timeout": 0.0, "checkpoint": False}

    user: str
    name: str
    id: FrameworkID | None = None
    failover_timeout: float | None = None
    checkpoint: bool | None = None
    role: str | None = None  # deprecated single role; "*" when unset (not emitted)
    roles: list[str] = []
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: list[FrameworkCapability] = []
    labels: Labels | None = None
    offer_filters: dict[str, OfferFilters] = {}

    def has_capability(self, capability: FrameworkCapabilityType) -> bool:
        return any(c.type == capability for c in self.capabilities)


# --------------------------------------------------------------------------- masters, agents


class MasterCapabilityType(StrEnum):
    UNKNOWN = "UNKNOWN"
    AGENT_UPDATE = "AGENT_UPDATE"
    AGENT_DRAINING = "AGENT_DRAINING"
    QUOTA_V2 = "QUOTA_V2"


class MasterCapability(Message):
    type: MasterCapabilityType | None = None


class MasterInfo(WithProtoDefaults):
    # `ip` is required in the proto (so always emitted); 0 when the master has no IPv4.
    __proto_defaults__ = {"ip": 0, "port": 5050}

    id: str
    ip: int | None = None  # deprecated packed IPv4 (network byte order)
    port: int | None = None
    pid: str | None = None
    hostname: str | None = None
    version: str | None = None
    address: Address | None = None
    domain: DomainInfo | None = None
    capabilities: list[MasterCapability] = []


class AgentCapabilityType(StrEnum):
    UNKNOWN = "UNKNOWN"
    MULTI_ROLE = "MULTI_ROLE"
    HIERARCHICAL_ROLE = "HIERARCHICAL_ROLE"
    RESERVATION_REFINEMENT = "RESERVATION_REFINEMENT"
    RESOURCE_PROVIDER = "RESOURCE_PROVIDER"
    RESIZE_VOLUME = "RESIZE_VOLUME"
    AGENT_OPERATION_FEEDBACK = "AGENT_OPERATION_FEEDBACK"
    AGENT_DRAINING = "AGENT_DRAINING"
    TASK_RESOURCE_LIMITS = "TASK_RESOURCE_LIMITS"


class AgentCapability(Message):
    type: AgentCapabilityType | None = None


class AgentInfo(WithProtoDefaults):
    __proto_defaults__ = {"port": 5051}

    hostname: str
    port: int | None = None
    resources: list[Resource] = []
    attributes: list[Attribute] = []
    id: AgentID | None = None
    domain: DomainInfo | None = None


# --------------------------------------------------------------------------- offers, filters


class Unavailability(Message):
    start: TimeInfo
    duration: DurationInfo | None = None


class Offer(Message):
    id: OfferID
    framework_id: FrameworkID
    agent_id: AgentID
    hostname: str
    url: URL | None = None
    domain: DomainInfo | None = None
    resources: list[Resource] = []
    attributes: list[Attribute] = []
    executor_ids: list[ExecutorID] = []
    unavailability: Unavailability | None = None
    allocation_info: AllocationInfo | None = None


class InverseOffer(Message):
    id: OfferID
    url: URL | None = None
    framework_id: FrameworkID
    agent_id: AgentID | None = None
    unavailability: Unavailability
    resources: list[Resource] = []


DEFAULT_REFUSE_SECONDS = 5.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0


class Filters(WithProtoDefaults):
    __proto_defaults__ = {"refuse_seconds": DEFAULT_REFUSE_SECONDS}

    refuse_seconds: float | None = None


def refuse_seconds(filters: Filters | None) -> float:
    """The decline filter duration the master applies: default 5 s, negative → default
    (Mesos logs and ignores it), capped at 365 days; NaN → default."""
    if filters is None or filters.refuse_seconds is None:
        return DEFAULT_REFUSE_SECONDS
    value = filters.refuse_seconds
    if value != value or value < 0:  # NaN or negative
        return DEFAULT_REFUSE_SECONDS
    return min(value, MAX_REFUSE_SECONDS)


class Request(Message):
    agent_id: AgentID | None = None
    resources: list[Resource] = []


# --------------------------------------------------------------------------- commands, executors


class URI(WithProtoDefaults):
    __proto_defaults__ = {"extract": True}

    value: str
    executable: bool | None = None
    extract: bool | None = None
    cache: bool | None = None
    output_file: str | None = None


class VariableType(StrEnum):
    UNKNOWN = "UNKNOWN"
    VALUE = "VALUE"
    SECRET = "SECRET"


class EnvironmentVariable(WithProtoDefaults):
    __proto_defaults__ = {"type": VariableType.VALUE}

    name: str
    type: VariableType | None = None
    value: str | None = None
    secret: dict[str, Any] | None = None


class Environment(Message):
    variables: list[EnvironmentVariable] = []


class CommandInfo(WithProtoDefaults):
    """What to run: with `shell` (default true) `/bin/sh -c value`, else exec `value` with
    argv `arguments`."""

    __proto_defaults__ = {"shell": True}

    uris: list[URI] = []
    environment: Environment | None = None
    shell: bool | None = None
    value: str | None = None
    arguments: list[str] = []
    user: str | None = None


class ContainerType(StrEnum):
    DOCKER = "DOCKER"
    MESOS = "MESOS"


class DockerNetwork(StrEnum):
    HOST = "HOST"
    BRIDGE = "BRIDGE"
    NONE = "NONE"
    USER = "USER"


class PortMapping(Message):
    host_port: int
    container_port: int
    protocol: str | None = None


class DockerInfo(WithProtoDefaults):
    __proto_defaults__ = {"network": DockerNetwork.HOST, "privileged": False}

    image: str
    network: DockerNetwork | None = None
    port_mappings: list[PortMapping] = []
    privileged: bool | None = None
    parameters: list[Parameter] = []
    force_pull_image: bool | None = None


class MesosInfo(Message):
    image: dict[str, Any] | None = None


class IPProtocol(StrEnum):
    IPv4 = "IPv4"
    IPv6 = "IPv6"


class IPAddress(WithProtoDefaults):
    __proto_defaults__ = {"protocol": IPProtocol.IPv4}

    protocol: IPProtocol | None = None
    ip_address: str | None = None


class NetworkInfo(Message):
    ip_addresses: list[IPAddress] = []
    name: str | None = None
    groups: list[str] = []
    labels: Labels | None = None
    port_mappings: list[PortMapping] = []


class ContainerInfo(Message):
    type: ContainerType
    volumes: list[Volume] = []
    hostname: str | None = None
    docker: DockerInfo | None = None
    mesos: MesosInfo | None = None
    network_infos: list[NetworkInfo] = []
    linux_info: dict[str, Any] | None = None
    rlimit_info: dict[str, Any] | None = None
    tty_info: dict[str, Any] | None = None


class DiscoveryInfo(Message):
    visibility: str  # FRAMEWORK | CLUSTER | EXTERNAL
    name: str | None = None
    environment: str | None = None
    location: str | None = None
    version: str | None = None
    ports: dict[str, Any] | None = None
    labels: Labels | None = None


class ExecutorType(StrEnum):
    UNKNOWN = "UNKNOWN"
    DEFAULT = "DEFAULT"
    CUSTOM = "CUSTOM"


class ExecutorInfo(Message):
    type: ExecutorType | None = None  # inferred by the master when absent (spec §3.7)
    executor_id: ExecutorID
    framework_id: FrameworkID | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    resources: list[Resource] = []
    name: str | None = None
    source: str | None = None
    data: bytes | None = None
    discovery: DiscoveryInfo | None = None
    shutdown_grace_period: DurationInfo | None = None
    labels: Labels | None = None


# --------------------------------------------------------------------------- tasks


class KillPolicy(Message):
    grace_period: DurationInfo | None = None


class CheckType(StrEnum):
    UNKNOWN = "UNKNOWN"
    COMMAND = "COMMAND"
    HTTP = "HTTP"
    TCP = "TCP"


class HealthCheckHTTP(Message):
    """HealthCheck.HTTPCheckInfo: `GET <path>` to `<scheme>://127.0.0.1:<port>`."""

    port: int  # required in the proto
    scheme: str | None = None
    path: str | None = None
    statuses: list[int] = []  # ignored by the built-in executors, as Mesos's
    protocol: IPProtocol | None = None


class HealthCheckTCP(Message):
    port: int  # required in the proto
    protocol: IPProtocol | None = None


class CheckCommand(Message):
    command: CommandInfo  # required in the proto


class CheckHTTP(Message):
    port: int  # required in the proto
    path: str | None = None


class CheckTCP(Message):
    port: int  # required in the proto


class HealthCheck(WithProtoDefaults):
    __proto_defaults__ = {
        "delay_seconds": 15.0,
        "interval_seconds": 10.0,
        "timeout_seconds": 20.0,
        "consecutive_failures": 3,
        "grace_period_seconds": 10.0,
    }

    type: CheckType | None = None
    delay_seconds: float | None = None
    interval_seconds: float | None = None
    timeout_seconds: float | None = None
    consecutive_failures: int | None = None
    grace_period_seconds: float | None = None
    command: CommandInfo | None = None
    http: HealthCheckHTTP | None = None
    tcp: HealthCheckTCP | None = None


class CheckInfo(WithProtoDefaults):
    __proto_defaults__ = {"delay_seconds": 15.0, "interval_seconds": 10.0, "timeout_seconds": 20.0}

    type: CheckType | None = None
    command: CheckCommand | None = None
    http: CheckHTTP | None = None
    tcp: CheckTCP | None = None
    delay_seconds: float | None = None
    interval_seconds: float | None = None
    timeout_seconds: float | None = None


class TaskInfo(Message):
    name: str
    task_id: TaskID
    agent_id: AgentID
    resources: list[Resource] = []
    executor: ExecutorInfo | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    kill_policy: KillPolicy | None = None
    data: bytes | None = None
    labels: Labels | None = None
    discovery: DiscoveryInfo | None = None
    max_completion_time: DurationInfo | None = None
    limits: dict[str, Scalar] = {}


class TaskGroupInfo(Message):
    tasks: list[TaskInfo] = []


# --------------------------------------------------------------------------- offer operations


class OfferOperationType(StrEnum):
    UNKNOWN = "UNKNOWN"
    LAUNCH = "LAUNCH"
    LAUNCH_GROUP = "LAUNCH_GROUP"
    RESERVE = "RESERVE"
    UNRESERVE = "UNRESERVE"
    CREATE = "CREATE"
    DESTROY = "DESTROY"
    GROW_VOLUME = "GROW_VOLUME"
    SHRINK_VOLUME = "SHRINK_VOLUME"
    CREATE_DISK = "CREATE_DISK"
    DESTROY_DISK = "DESTROY_DISK"


class Launch(Message):
    task_infos: list[TaskInfo] = []


class LaunchGroup(Message):
    executor: ExecutorInfo
    task_group: TaskGroupInfo


class Reserve(Message):
    source: list[Resource] = []
    resources: list[Resource] = []


class Unreserve(Message):
    resources: list[Resource] = []


class Create(Message):
    volumes: list[Resource] = []


class Destroy(Message):
    volumes: list[Resource] = []


class GrowVolume(Message):
    volume: Resource
    addition: Resource


class ShrinkVolume(Message):
    volume: Resource
    subtract: Scalar


class OfferOperation(Message):
    """`Offer.Operation`: one step of an ACCEPT; the payload field matches `type`."""

    type: OfferOperationType | None = None
    id: OperationID | None = None
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    reserve: Reserve | None = None
    unreserve: Unreserve | None = None
    create: Create | None = None
    destroy: Destroy | None = None
    grow_volume: GrowVolume | None = None
    shrink_volume: ShrinkVolume | None = None
    create_disk: dict[str, Any] | None = None
    destroy_disk: dict[str, Any] | None = None


# --------------------------------------------------------------------------- task status


class TaskState(StrEnum):
    TASK_STAGING = "TASK_STAGING"
    TASK_STARTING = "TASK_STARTING"
    TASK_RUNNING = "TASK_RUNNING"
    TASK_KILLING = "TASK_KILLING"
    TASK_FINISHED = "TASK_FINISHED"
    TASK_FAILED = "TASK_FAILED"
    TASK_KILLED = "TASK_KILLED"
    TASK_ERROR = "TASK_ERROR"
    TASK_LOST = "TASK_LOST"
    TASK_DROPPED = "TASK_DROPPED"
    TASK_UNREACHABLE = "TASK_UNREACHABLE"
    TASK_GONE = "TASK_GONE"
    TASK_GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
    TASK_UNKNOWN = "TASK_UNKNOWN"


# The states the master treats as terminal (spec §3.9). UNREACHABLE and UNKNOWN are not:
# an unreachable agent may come back with the task still running.
TERMINAL_TASK_STATES: frozenset[TaskState] = frozenset(
    {
        TaskState.TASK_FINISHED,
        TaskState.TASK_FAILED,
        TaskState.TASK_KILLED,
        TaskState.TASK_LOST,
        TaskState.TASK_ERROR,
        TaskState.TASK_DROPPED,
        TaskState.TASK_GONE,
        TaskState.TASK_GONE_BY_OPERATOR,
    }
)


def is_terminal(state: TaskState | str) -> bool:
    """Whether the master considers a task in `state` finished."""
    return state in TERMINAL_TASK_STATES


class Source(StrEnum):
    SOURCE_MASTER = "SOURCE_MASTER"
    SOURCE_AGENT = "SOURCE_AGENT"
    SOURCE_EXECUTOR = "SOURCE_EXECUTOR"


class Reason(StrEnum):
    REASON_COMMAND_EXECUTOR_FAILED = "REASON_COMMAND_EXECUTOR_FAILED"  # deprecated
    REASON_CONTAINER_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
    REASON_CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"
    REASON_CONTAINER_LIMITATION_DISK = "REASON_CONTAINER_LIMITATION_DISK"
    REASON_CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
    REASON_CONTAINER_PREEMPTED = "REASON_CONTAINER_PREEMPTED"
    REASON_CONTAINER_UPDATE_FAILED = "REASON_CONTAINER_UPDATE_FAILED"
    REASON_MAX_COMPLETION_TIME_REACHED = "REASON_MAX_COMPLETION_TIME_REACHED"
    REASON_EXECUTOR_REGISTRATION_TIMEOUT = "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    REASON_EXECUTOR_REREGISTRATION_TIMEOUT = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
    REASON_EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
    REASON_EXECUTOR_UNREGISTERED = "REASON_EXECUTOR_UNREGISTERED"
    REASON_FRAMEWORK_REMOVED = "REASON_FRAMEWORK_REMOVED"
    REASON_GC_ERROR = "REASON_GC_ERROR"
    REASON_INVALID_FRAMEWORKID = "REASON_INVALID_FRAMEWORKID"
    REASON_INVALID_OFFERS = "REASON_INVALID_OFFERS"
    REASON_IO_SWITCHBOARD_EXITED = "REASON_IO_SWITCHBOARD_EXITED"
    REASON_MASTER_DISCONNECTED = "REASON_MASTER_DISCONNECTED"
    REASON_RECONCILIATION = "REASON_RECONCILIATION"
    REASON_RESOURCES_UNKNOWN = "REASON_RESOURCES_UNKNOWN"
    REASON_AGENT_DISCONNECTED = "REASON_AGENT_DISCONNECTED"
    REASON_AGENT_DRAINING = "REASON_AGENT_DRAINING"
    REASON_AGENT_REMOVED = "REASON_AGENT_REMOVED"
    REASON_AGENT_REMOVED_BY_OPERATOR = "REASON_AGENT_REMOVED_BY_OPERATOR"
    REASON_AGENT_REREGISTERED = "REASON_AGENT_REREGISTERED"
    REASON_AGENT_RESTARTED = "REASON_AGENT_RESTARTED"
    REASON_AGENT_UNKNOWN = "REASON_AGENT_UNKNOWN"
    REASON_TASK_KILLED_DURING_LAUNCH = "REASON_TASK_KILLED_DURING_LAUNCH"
    REASON_TASK_CHECK_STATUS_UPDATED = "REASON_TASK_CHECK_STATUS_UPDATED"
    REASON_TASK_HEALTH_CHECK_STATUS_UPDATED = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    REASON_TASK_GROUP_INVALID = "REASON_TASK_GROUP_INVALID"
    REASON_TASK_GROUP_UNAUTHORIZED = "REASON_TASK_GROUP_UNAUTHORIZED"
    REASON_TASK_INVALID = "REASON_TASK_INVALID"
    REASON_TASK_UNAUTHORIZED = "REASON_TASK_UNAUTHORIZED"
    REASON_TASK_UNKNOWN = "REASON_TASK_UNKNOWN"


class ContainerStatus(Message):
    container_id: ContainerID | None = None
    network_infos: list[NetworkInfo] = []
    cgroup_info: dict[str, Any] | None = None
    executor_pid: int | None = None


class TaskResourceLimitation(Message):
    resources: list[Resource] = []


class TaskStatus(Message):
    """A task's state change. `uuid` present ⇔ reliable update that must be acknowledged."""

    task_id: TaskID
    state: TaskState
    message: str | None = None
    source: Source | None = None
    reason: Reason | None = None
    data: bytes | None = None
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    timestamp: float | None = None  # seconds since the epoch
    uuid: bytes | None = None
    healthy: bool | None = None
    check_status: dict[str, Any] | None = None
    labels: Labels | None = None
    container_status: ContainerStatus | None = None
    unreachable_time: TimeInfo | None = None
    limitation: TaskResourceLimitation | None = None


# --------------------------------------------------------------------------- operation feedback


class OperationState(StrEnum):
    OPERATION_UNSUPPORTED = "OPERATION_UNSUPPORTED"
    OPERATION_PENDING = "OPERATION_PENDING"
    OPERATION_FINISHED = "OPERATION_FINISHED"
    OPERATION_FAILED = "OPERATION_FAILED"
    OPERATION_ERROR = "OPERATION_ERROR"
    OPERATION_DROPPED = "OPERATION_DROPPED"
    OPERATION_UNREACHABLE = "OPERATION_UNREACHABLE"
    OPERATION_GONE_BY_OPERATOR = "OPERATION_GONE_BY_OPERATOR"
    OPERATION_RECOVERING = "OPERATION_RECOVERING"
    OPERATION_UNKNOWN = "OPERATION_UNKNOWN"


TERMINAL_OPERATION_STATES: frozenset[OperationState] = frozenset(
    {
        OperationState.OPERATION_FINISHED,
        OperationState.OPERATION_FAILED,
        OperationState.OPERATION_ERROR,
        OperationState.OPERATION_DROPPED,
        OperationState.OPERATION_GONE_BY_OPERATOR,
    }
)


class OperationStatus(Message):
    operation_id: OperationID | None = None
    state: OperationState
    message: str | None = None
    converted_resources: list[Resource] = []
    uuid: UUID | None = None
    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None


class Operation(Message):
    """An offer operation as the master tracks it (operator API `GET_OPERATIONS`)."""

    framework_id: FrameworkID | None = None
    agent_id: AgentID | None = None
    info: OfferOperation
    latest_status: OperationStatus
    statuses: list[OperationStatus] = []
    uuid: UUID


class Task(Message):
    """A task as the master and agent record it (operator API and registry shape)."""

    name: str
    task_id: TaskID
    framework_id: FrameworkID
    executor_id: ExecutorID | None = None
    agent_id: AgentID
    state: TaskState
    resources: list[Resource] = []
    statuses: list[TaskStatus] = []
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None
    labels: Labels | None = None
    discovery: DiscoveryInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    kill_policy: KillPolicy | None = None
    user: str | None = None
    limits: dict[str, Scalar] = {}
