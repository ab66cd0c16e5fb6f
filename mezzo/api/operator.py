"""The v1 operator API (`POST /api/v1`): `Call`, `Response` and the `Event`s of its stream
(spec §7).

Owns the shapes. Typed: the calls mezzo serves first (health, flags, version, metrics, state,
agents, frameworks, executors, tasks, roles, weights, master, teardown, mark-agent-gone,
subscribe) and their responses and events. Every other call type of §7.1/§7.2 is in `CallType`
(so it decodes and the server can answer 501) with its payload kept as a loose `dict`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mezzo.api.base import Message, union_payload
from mezzo.api.codec import decode
from mezzo.api.common import (
    AgentCapability,
    AgentID,
    AgentInfo,
    CommandInfo,
    ContainerID,
    ContainerInfo,
    DurationInfo,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    InverseOffer,
    MasterInfo,
    Offer,
    Operation,
    Resource,
    Scalar,
    Task,
    TaskState,
    TaskStatus,
    TimeInfo,
)
from mezzo.core.errors import ValidationError

# --------------------------------------------------------------------------- shared records


class Flag(Message):
    name: str
    value: str | None = None


class Metric(Message):
    name: str
    value: float | None = None


class VersionInfo(Message):
    """Also the body of `GET /version`; pymesos parses `version` as digits.digits.digits."""

    version: str
    build_date: str | None = None
    build_time: float | None = None
    build_user: str | None = None
    git_sha: str | None = None
    git_branch: str | None = None
    git_tag: str | None = None


class WeightInfo(Message):
    weight: float
    role: str | None = None


class Role(Message):
    name: str
    weight: float | None = None
    frameworks: list[FrameworkID] = []
    resources: list[Resource] = []


# --------------------------------------------------------------------------- calls


class CallType(StrEnum):
    UNKNOWN = "UNKNOWN"
    GET_HEALTH = "GET_HEALTH"
    GET_FLAGS = "GET_FLAGS"
    GET_VERSION = "GET_VERSION"
    GET_METRICS = "GET_METRICS"
    GET_LOGGING_LEVEL = "GET_LOGGING_LEVEL"
    SET_LOGGING_LEVEL = "SET_LOGGING_LEVEL"
    LIST_FILES = "LIST_FILES"
    READ_FILE = "READ_FILE"
    GET_STATE = "GET_STATE"
    GET_AGENTS = "GET_AGENTS"
    GET_FRAMEWORKS = "GET_FRAMEWORKS"
    GET_EXECUTORS = "GET_EXECUTORS"
    GET_OPERATIONS = "GET_OPERATIONS"
    GET_TASKS = "GET_TASKS"
    GET_ROLES = "GET_ROLES"
    GET_WEIGHTS = "GET_WEIGHTS"
    UPDATE_WEIGHTS = "UPDATE_WEIGHTS"
    GET_MASTER = "GET_MASTER"
    SUBSCRIBE = "SUBSCRIBE"
    RESERVE_RESOURCES = "RESERVE_RESOURCES"
    UNRESERVE_RESOURCES = "UNRESERVE_RESOURCES"
    CREATE_VOLUMES = "CREATE_VOLUMES"
    DESTROY_VOLUMES = "DESTROY_VOLUMES"
    GROW_VOLUME = "GROW_VOLUME"
    SHRINK_VOLUME = "SHRINK_VOLUME"
    GET_MAINTENANCE_STATUS = "GET_MAINTENANCE_STATUS"
    GET_MAINTENANCE_SCHEDULE = "GET_MAINTENANCE_SCHEDULE"
    UPDATE_MAINTENANCE_SCHEDULE = "UPDATE_MAINTENANCE_SCHEDULE"
    START_MAINTENANCE = "START_MAINTENANCE"
    STOP_MAINTENANCE = "STOP_MAINTENANCE"
    DRAIN_AGENT = "DRAIN_AGENT"
    DEACTIVATE_AGENT = "DEACTIVATE_AGENT"
    REACTIVATE_AGENT = "REACTIVATE_AGENT"
    GET_QUOTA = "GET_QUOTA"
    UPDATE_QUOTA = "UPDATE_QUOTA"
    SET_QUOTA = "SET_QUOTA"
    REMOVE_QUOTA = "REMOVE_QUOTA"
    TEARDOWN = "TEARDOWN"
    MARK_AGENT_GONE = "MARK_AGENT_GONE"
    # agent-only calls (§7.2)
    GET_CONTAINERS = "GET_CONTAINERS"
    GET_AGENT = "GET_AGENT"
    GET_RESOURCE_PROVIDERS = "GET_RESOURCE_PROVIDERS"
    LAUNCH_CONTAINER = "LAUNCH_CONTAINER"
    WAIT_CONTAINER = "WAIT_CONTAINER"
    KILL_CONTAINER = "KILL_CONTAINER"
    REMOVE_CONTAINER = "REMOVE_CONTAINER"
    LAUNCH_NESTED_CONTAINER = "LAUNCH_NESTED_CONTAINER"
    WAIT_NESTED_CONTAINER = "WAIT_NESTED_CONTAINER"
    KILL_NESTED_CONTAINER = "KILL_NESTED_CONTAINER"
    REMOVE_NESTED_CONTAINER = "REMOVE_NESTED_CONTAINER"
    LAUNCH_NESTED_CONTAINER_SESSION = "LAUNCH_NESTED_CONTAINER_SESSION"
    ATTACH_CONTAINER_INPUT = "ATTACH_CONTAINER_INPUT"
    ATTACH_CONTAINER_OUTPUT = "ATTACH_CONTAINER_OUTPUT"
    ADD_RESOURCE_PROVIDER_CONFIG = "ADD_RESOURCE_PROVIDER_CONFIG"
    UPDATE_RESOURCE_PROVIDER_CONFIG = "UPDATE_RESOURCE_PROVIDER_CONFIG"
    REMOVE_RESOURCE_PROVIDER_CONFIG = "REMOVE_RESOURCE_PROVIDER_CONFIG"
    MARK_RESOURCE_PROVIDER_GONE = "MARK_RESOURCE_PROVIDER_GONE"
    PRUNE_IMAGES = "PRUNE_IMAGES"


class GetMetrics(Message):
    timeout: DurationInfo | None = None


class SetLoggingLevel(Message):
    level: int
    duration: DurationInfo


class UpdateWeights(Message):
    weight_infos: list[WeightInfo] = []


class ListFiles(Message):
    path: str


class ReadFile(Message):
    path: str
    offset: int
    length: int | None = None


class Teardown(Message):
    framework_id: FrameworkID


class MarkAgentGone(Message):
    agent_id: AgentID


# --- the agent's container calls (agent.proto) -------------------------------------------


class LaunchContainer(Message):
    """LAUNCH_CONTAINER, and LAUNCH_NESTED_CONTAINER(_SESSION) (no resources)."""

    container_id: ContainerID
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    resources: list[Resource] = []
    limits: dict[str, Any] | None = None


class ContainerRef(Message):
    """WAIT_/REMOVE_(NESTED_)CONTAINER and ATTACH_CONTAINER_OUTPUT: just the id."""

    container_id: ContainerID


class KillContainer(Message):
    container_id: ContainerID
    signal: int | None = None  # SIGKILL when absent


class ProcessIOData(Message):
    type: str | None = None  # STDIN | STDOUT | STDERR
    data: bytes | None = None  # base64 in JSON, as protobuf's JSON mapping of `bytes`


class ProcessIOControl(Message):
    type: str | None = None  # TTY_INFO | HEARTBEAT
    tty_info: dict[str, Any] | None = None
    heartbeat: dict[str, Any] | None = None


class ProcessIO(Message):
    """A record of an attach stream (agent.proto `ProcessIO`): DATA or CONTROL."""

    type: str | None = None  # DATA | CONTROL
    data: ProcessIOData | None = None
    control: ProcessIOControl | None = None


class AttachContainerInput(Message):
    type: str | None = None  # CONTAINER_ID (the first record) | PROCESS_IO
    container_id: ContainerID | None = None
    process_io: ProcessIO | None = None


# Calls whose request has no payload (the rest carry `<type lowercased>`).
NO_PAYLOAD_CALLS = frozenset(
    {
        CallType.GET_HEALTH,
        CallType.GET_FLAGS,
        CallType.GET_VERSION,
        CallType.GET_LOGGING_LEVEL,
        CallType.GET_STATE,
        CallType.GET_AGENTS,
        CallType.GET_FRAMEWORKS,
        CallType.GET_EXECUTORS,
        CallType.GET_OPERATIONS,
        CallType.GET_TASKS,
        CallType.GET_ROLES,
        CallType.GET_WEIGHTS,
        CallType.GET_MASTER,
        CallType.SUBSCRIBE,
        CallType.GET_MAINTENANCE_STATUS,
        CallType.GET_MAINTENANCE_SCHEDULE,
        CallType.GET_QUOTA,
        CallType.GET_AGENT,
        CallType.GET_RESOURCE_PROVIDERS,
        CallType.PRUNE_IMAGES,
    }
)
# GET_METRICS and GET_CONTAINERS have payloads whose every field is optional.
_OPTIONAL_PAYLOAD = frozenset({CallType.GET_METRICS, CallType.GET_CONTAINERS})


class ReserveResources(Message):
    """RESERVE_RESOURCES: push a dynamic reservation onto unallocated resources of an agent
    (`source`, if given, names what is consumed: Mesos's reservation update)."""

    agent_id: AgentID
    source: list[Resource] = []
    resources: list[Resource] = []


class UnreserveResources(Message):
    agent_id: AgentID
    resources: list[Resource] = []


class CreateVolumes(Message):
    """CREATE_VOLUMES: persistent volumes on reserved disk of an agent."""

    agent_id: AgentID
    volumes: list[Resource] = []


class DestroyVolumes(Message):
    agent_id: AgentID
    volumes: list[Resource] = []


class GrowVolume(Message):
    """GROW_VOLUME (`agent_id` is required while volumes live on agents' default disks)."""

    agent_id: AgentID | None = None
    volume: Resource
    addition: Resource


class ShrinkVolume(Message):
    agent_id: AgentID | None = None
    volume: Resource
    subtract: Scalar


class Call(Message):
    type: CallType | None = None
    get_metrics: GetMetrics | None = None
    set_logging_level: SetLoggingLevel | None = None
    update_weights: UpdateWeights | None = None
    teardown: Teardown | None = None
    mark_agent_gone: MarkAgentGone | None = None
    list_files: ListFiles | None = None
    read_file: ReadFile | None = None
    reserve_resources: ReserveResources | None = None
    unreserve_resources: UnreserveResources | None = None
    create_volumes: CreateVolumes | None = None
    destroy_volumes: DestroyVolumes | None = None
    grow_volume: GrowVolume | None = None
    shrink_volume: ShrinkVolume | None = None
    # Not served yet; kept as parsed JSON so the server can log or forward them.
    update_maintenance_schedule: dict[str, Any] | None = None
    start_maintenance: dict[str, Any] | None = None
    stop_maintenance: dict[str, Any] | None = None
    drain_agent: dict[str, Any] | None = None
    deactivate_agent: dict[str, Any] | None = None
    reactivate_agent: dict[str, Any] | None = None
    update_quota: dict[str, Any] | None = None
    set_quota: dict[str, Any] | None = None
    remove_quota: dict[str, Any] | None = None
    get_containers: dict[str, Any] | None = None
    launch_container: LaunchContainer | None = None
    launch_nested_container: LaunchContainer | None = None
    launch_nested_container_session: LaunchContainer | None = None
    wait_container: ContainerRef | None = None
    wait_nested_container: ContainerRef | None = None
    kill_container: KillContainer | None = None
    kill_nested_container: KillContainer | None = None
    remove_container: ContainerRef | None = None
    remove_nested_container: ContainerRef | None = None
    attach_container_output: ContainerRef | None = None
    attach_container_input: AttachContainerInput | None = None


def check_call(call: Call) -> Call:
    """Type present, and the payload of that type where one is required. Calls not in the
    Call struct's typed or loose fields (agent container calls...) pass: the server answers
    501 for whatever it does not serve."""
    type_ = call.type
    if (
        type_ is not None
        and type_ not in NO_PAYLOAD_CALLS
        and type_.lower() not in Call.__struct_fields__
    ):
        return call
    union_payload(call, no_payload=NO_PAYLOAD_CALLS, optional=_OPTIONAL_PAYLOAD)
    return call


def decode_call(data: bytes | str) -> Call:
    """Decode and check an operator call body."""
    return check_call(decode(data, Call))


# The calls each operator endpoint knows (Mesos's v1 master.proto and agent.proto, deprecated
# ones included). A type of the other endpoint is an unknown call there: 400, not 501.
_BOTH = frozenset(
    {
        CallType.UNKNOWN, CallType.GET_HEALTH, CallType.GET_FLAGS, CallType.GET_VERSION,
        CallType.GET_METRICS, CallType.GET_LOGGING_LEVEL, CallType.SET_LOGGING_LEVEL,
        CallType.LIST_FILES, CallType.READ_FILE, CallType.GET_STATE, CallType.GET_FRAMEWORKS,
        CallType.GET_EXECUTORS, CallType.GET_OPERATIONS, CallType.GET_TASKS,
    }
)
_ORDER = list(CallType)
_AGENT_ONLY = frozenset(_ORDER[_ORDER.index(CallType.GET_CONTAINERS) :])  # listed last above
AGENT_CALLS = _BOTH | _AGENT_ONLY
MASTER_CALLS = frozenset(CallType) - _AGENT_ONLY


def decode_master_call(data: bytes | str) -> Call:
    """An operator call for the master's `/api/v1` (see `decode_call`)."""
    return _known(decode_call(data), MASTER_CALLS, "master")


def decode_agent_call(data: bytes | str) -> Call:
    """An operator call for the agent's `/api/v1` (see `decode_call`)."""
    return _known(decode_call(data), AGENT_CALLS, "agent")


def _known(call: Call, known: frozenset[CallType], endpoint: str) -> Call:
    if call.type not in known:
        raise ValidationError(f"'{call.type}' is not a call of the {endpoint} API")
    return call


# --------------------------------------------------------------------------- responses


class GetHealth(Message):
    healthy: bool


class GetFlags(Message):
    flags: list[Flag] = []


class GetVersion(Message):
    version_info: VersionInfo


class GetMetricsResponse(Message):
    metrics: list[Metric] = []


class AgentEntry(Message):
    """One agent as GET_AGENTS (and AGENT_ADDED) shows it."""

    agent_info: AgentInfo
    active: bool
    deactivated: bool | None = None
    version: str | None = None
    pid: str | None = None
    registered_time: TimeInfo | None = None
    reregistered_time: TimeInfo | None = None
    total_resources: list[Resource] = []
    allocated_resources: list[Resource] = []
    offered_resources: list[Resource] = []
    capabilities: list[AgentCapability] = []
    resource_providers: list[dict[str, Any]] = []
    drain_info: dict[str, Any] | None = None
    estimated_drain_start_time: TimeInfo | None = None


class GetAgents(Message):
    agents: list[AgentEntry] = []
    recovered_agents: list[AgentInfo] = []


class FrameworkEntry(Message):
    """One framework as GET_FRAMEWORKS (and FRAMEWORK_ADDED/UPDATED) shows it."""

    framework_info: FrameworkInfo
    active: bool
    connected: bool
    recovered: bool
    registered_time: TimeInfo | None = None
    reregistered_time: TimeInfo | None = None
    unregistered_time: TimeInfo | None = None
    offers: list[Offer] = []
    inverse_offers: list[InverseOffer] = []
    allocated_resources: list[Resource] = []
    offered_resources: list[Resource] = []
    offer_constraints: dict[str, Any] | None = None


class GetFrameworks(Message):
    frameworks: list[FrameworkEntry] = []
    completed_frameworks: list[FrameworkEntry] = []


class ExecutorEntry(Message):
    executor_info: ExecutorInfo
    agent_id: AgentID


class GetExecutors(Message):
    executors: list[ExecutorEntry] = []
    orphan_executors: list[ExecutorEntry] = []  # deprecated; always empty


class GetTasks(Message):
    tasks: list[Task] = []
    unreachable_tasks: list[Task] = []
    completed_tasks: list[Task] = []
    pending_tasks: list[Task] = []  # deprecated; always empty
    orphan_tasks: list[Task] = []  # deprecated; always empty


class GetState(Message):
    get_tasks: GetTasks | None = None
    get_executors: GetExecutors | None = None
    get_frameworks: GetFrameworks | None = None
    get_agents: GetAgents | None = None


class GetRoles(Message):
    roles: list[Role] = []


class GetWeights(Message):
    weight_infos: list[WeightInfo] = []


class GetLoggingLevel(Message):
    level: int  # glog verbosity: 0 normally, higher is more verbose


class FileInfo(Message):
    path: str
    nlink: int | None = None
    size: int | None = None
    mtime: TimeInfo | None = None
    mode: int | None = None  # st_mode
    uid: str | None = None
    gid: str | None = None


class ListFilesResponse(Message):
    file_infos: list[FileInfo] = []


class ReadFileResponse(Message):
    size: int
    data: bytes


class GetOperations(Message):
    operations: list[Operation] = []


class GetMaster(Message):
    master_info: MasterInfo
    start_time: float | None = None  # seconds since the epoch
    elected_time: float | None = None


class Response(Message):
    """`{"type": T, "<t lowercased>": {...}}`; mutations answer with no body instead."""

    type: CallType | None = None
    get_health: GetHealth | None = None
    get_flags: GetFlags | None = None
    get_version: GetVersion | None = None
    get_metrics: GetMetricsResponse | None = None
    get_state: GetState | None = None
    get_agents: GetAgents | None = None
    get_frameworks: GetFrameworks | None = None
    get_executors: GetExecutors | None = None
    get_tasks: GetTasks | None = None
    get_roles: GetRoles | None = None
    get_weights: GetWeights | None = None
    get_master: GetMaster | None = None
    get_logging_level: GetLoggingLevel | None = None
    list_files: ListFilesResponse | None = None
    read_file: ReadFileResponse | None = None
    get_operations: GetOperations | None = None


# --------------------------------------------------------------------------- events


class EventType(StrEnum):
    UNKNOWN = "UNKNOWN"
    SUBSCRIBED = "SUBSCRIBED"
    TASK_ADDED = "TASK_ADDED"
    TASK_UPDATED = "TASK_UPDATED"
    AGENT_ADDED = "AGENT_ADDED"
    AGENT_REMOVED = "AGENT_REMOVED"
    FRAMEWORK_ADDED = "FRAMEWORK_ADDED"
    FRAMEWORK_UPDATED = "FRAMEWORK_UPDATED"
    FRAMEWORK_REMOVED = "FRAMEWORK_REMOVED"
    HEARTBEAT = "HEARTBEAT"


HEARTBEAT_INTERVAL_SECONDS = 15.0


class Subscribed(Message):
    get_state: GetState  # pymesos reads it unconditionally
    heartbeat_interval_seconds: float | None = None


class TaskAdded(Message):
    task: Task


class TaskUpdated(Message):
    framework_id: FrameworkID
    status: TaskStatus  # the latest status the scheduler acknowledged
    state: TaskState  # the task's latest state


class FrameworkAdded(Message):
    framework: FrameworkEntry


class FrameworkUpdated(Message):
    framework: FrameworkEntry


class FrameworkRemoved(Message):
    framework_info: FrameworkInfo


class AgentAdded(Message):
    agent: AgentEntry


class AgentRemoved(Message):
    agent_id: AgentID


class Event(Message):
    type: EventType | None = None
    subscribed: Subscribed | None = None
    task_added: TaskAdded | None = None
    task_updated: TaskUpdated | None = None
    agent_added: AgentAdded | None = None
    agent_removed: AgentRemoved | None = None
    framework_added: FrameworkAdded | None = None
    framework_updated: FrameworkUpdated | None = None
    framework_removed: FrameworkRemoved | None = None


def check_event(event: Event) -> Event:
    """Check that a decoded event carries the payload of its type."""
    union_payload(event, no_payload=frozenset({EventType.HEARTBEAT}))
    return event
