"""Read-only views of the master core: the legacy `/master/state` JSON (spec §8.1), the
`/metrics/snapshot` keys (§8.2) and the operator API responses (§7.1).

Pure functions of the core's state (and `now`); the HTTP shell encodes what they return.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from mezzo import __version__
from mezzo.api import operator as op
from mezzo.api.codec import decode, encode, to_builtins
from mezzo.api.common import AgentID, FrameworkID, Task, TaskState
from mezzo.master.allocator import AllocatorStatistics
from mezzo.master.completed import CompletedTask
from mezzo.master.events import framework_entry
from mezzo.master.gauges import task_counts
from mezzo.master.records import AgentRecord, ExecutorRecord, FrameworkRecord, TaskRecord, time_info
from mezzo.resources import Resources
from mezzo.resources.tally import ScalarTally

if TYPE_CHECKING:  # the core keeps its completed tasks as `completed_task` makes them
    from mezzo.master.base import MasterBase

BUILD_DATE = "2024-08-23 00:00:00"
BUILD_TIME = 1724371200
BUILD_USER = "mezzo"


def legacy_resources(resources: Resources, shared: bool = False) -> dict[str, Any]:
    """`{"cpus":n,"gpus":n,"mem":n,"disk":n,"ports":"[31000-32000]",...}` (a new dict).
    `shared`: the value is one many holders share (a task's), worth remembering."""
    held = _LEGACY.get(id(resources)) if shared else None
    if held is not None and held[0] is resources:
        return dict(held[1])
    out: dict[str, Any] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
    for name, amount in resources.quantities().items():
        out[name] = amount
    for name in resources.names():
        ranges = resources.ranges(name)
        if ranges:
            out[name] = "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"
    if not shared:
        return out
    if len(_LEGACY) >= _MAX_LEGACY:
        _LEGACY.clear()
    _LEGACY[id(resources)] = (resources, out)  # the value holds it: its id stays its own
    return dict(out)


# `legacy_resources` of recent `Resources` values (immutable; the master's tasks share one per
# shape, so `/master/state` renders each shape once rather than once per task).
_LEGACY: dict[int, tuple[Resources, dict[str, Any]]] = {}
_MAX_LEGACY = 4096


def _attributes(agent_info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in agent_info.attributes:
        if attr.scalar is not None:
            out[attr.name] = attr.scalar.value
        elif attr.text is not None:
            out[attr.name] = attr.text.value
        elif attr.ranges is not None:
            out[attr.name] = "[" + ", ".join(f"{r.begin}-{r.end}" for r in attr.ranges.range) + "]"
    return out


def _task_json(task: TaskRecord | CompletedTask) -> dict[str, Any]:
    # From the record's JSON builtins: no TaskInfo or TaskStatus is built for the view.
    if isinstance(task, CompletedTask):  # kept as the entry's parts (`completed_task`)
        entry: dict[str, Any] = msgspec.json.decode(_completed_json_bytes(task))
        return entry
    out: dict[str, Any] = {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id or "",
        "slave_id": task.agent_id,
        "state": str(task.state),
        "resources": legacy_resources(task.resources, shared=True),
        "role": task.role,
        "statuses": [
            {"state": s["state"], "timestamp": s.get("timestamp") or 0.0}
            | ({"healthy": s["healthy"]} if "healthy" in s else {})
            | ({"container_status": s["container_status"]} if "container_status" in s else {})
            for s in task.status_dicts()
        ],
    }
    if task.user:
        out["user"] = task.user
    fields = task.info_fields()
    for name in ("labels", "discovery", "container", "health_check"):
        value = fields.get(name)
        if value is not None:
            out[name] = value
    return out


def _offered(master: MasterBase, offer_ids: Iterable[str]) -> Resources:
    total = Resources()
    for offer_id in offer_ids:
        offer = master.offers.get(offer_id)
        if offer is not None:
            total = total + offer.resources
    return total


def framework_json(master: MasterBase, fw: FrameworkRecord, with_tasks: bool = True,
                   kept: bool = False) -> dict[str, Any]:
    """A framework's `/master/state` entry (without its three task lists unless `with_tasks`:
    `state_pieces` streams those in pieces). `kept`: its resources as JSON (`Raw`), the used
    ones kept per mix of shapes (`_sum_held`) when it has no offers (the common case)."""
    info = fw.info
    if kept and not fw.offers:
        used_raw = _sum_held(_used_key(_framework_used(fw)), wire=False)[1]
        resources: tuple[Any, Any, Any] = (used_raw, _NOTHING_RAW, used_raw)  # used + nothing
    else:
        used = _used_resources(fw)
        offered = _offered(master, fw.offers)
        resources = (legacy_resources(used), legacy_resources(offered), legacy_resources(used + offered))
    out: dict[str, Any] = {
        "id": fw.id,
        "name": info.name,
        "used_resources": resources[0],
        "offered_resources": resources[1],
        "resources": resources[2],
        "capabilities": [str(c.type) for c in info.capabilities if c.type],
        "hostname": info.hostname or "",
        "webui_url": info.webui_url or "",
        "active": fw.active,
        "connected": fw.connected,
        "recovered": fw.recovered,
        "user": info.user,
        "failover_timeout": info.failover_timeout or 0.0,
        "checkpoint": bool(info.checkpoint),
        "registered_time": fw.registered_time,
        "unregistered_time": fw.unregistered_time or 0.0,
        "offers": [
            {
                "id": o.id, "framework_id": fw.id, "slave_id": o.agent_id,
                "allocation_info": {"role": o.role}, "resources": legacy_resources(o.resources),
            }
            for o in (master.offers.get(i) for i in fw.offers) if o is not None
        ],
        "executors": [
            _executor_json(eid, e, fw.id, agent_id)
            for agent_id, per_agent in fw.executors.items() for eid, e in per_agent.items()
        ],
    }
    if info.principal:
        out["principal"] = info.principal
    if fw.reregistered_time is not None:
        out["reregistered_time"] = fw.reregistered_time
    if fw.multi_role:
        out["roles"] = list(fw.roles)
    else:
        out["role"] = fw.roles[0] if fw.roles else "*"
    if info.labels is not None:
        out["labels"] = to_builtins(info.labels.labels)
    if with_tasks:
        for key, tasks in _task_lists(fw):
            out[key] = [_task_json(t) for t in tasks]
    return out


class _ExecutorSummary(msgspec.Struct, gc=False):
    """What `/master/state` shows of an executor's info, decoded from its kept JSON without
    the rest (the command as the builtins `to_builtins` makes of it)."""

    name: str = ""
    command: dict[str, Any] = {}


_EXECUTOR_SUMMARY = msgspec.json.Decoder(_ExecutorSummary)


def _executor_json(eid: str, e: ExecutorRecord, framework_id: str, agent_id: str) -> dict[str, Any]:
    summary = _EXECUTOR_SUMMARY.decode(e.info_json)
    return {"executor_id": eid, "name": summary.name, "framework_id": framework_id,
            "command": summary.command, "resources": legacy_resources(e.resources),
            "slave_id": agent_id}


def _task_lists(fw: FrameworkRecord) -> list[tuple[str, list[Any]]]:
    return [("tasks", list(fw.tasks.values())),
            ("unreachable_tasks", list(fw.unreachable_tasks.values())),
            ("completed_tasks", list(fw.completed_tasks))]


def _used_resources(fw: FrameworkRecord) -> Resources:
    """`fw.used_resources()`, summed once per resource shape (`sum_resources`)."""
    return sum_resources(_framework_used(fw))


def _framework_used(fw: FrameworkRecord) -> list[Resources]:
    used = [t.resources for t in fw.tasks.values() if not t.recovered]  # a list: faster
    for per_agent in fw.executors.values():
        used.extend(e.resources for e in per_agent.values())
    return used


# JSON text of builtins for the streamed documents (msgspec: several times the standard
# library's speed; non-ASCII text goes out as UTF-8 rather than \u escapes, both valid JSON).
_json = msgspec.json.encode


# The streamed documents encode a task from its record's JSON straight into msgspec Structs
# shaped as the entry (the shared parts, a resource shape's JSON, spliced in as `Raw`): no
# per-task dicts or wire records, and nothing kept per task between documents (issue 12: the
# master's memory per task). The Structs hold no cycles: `gc=False`, so that the hundreds of
# thousands made per document do not count towards (and bring on) garbage collections.
# `_task_json` / `TaskRecord.to_wire` stay the reference shapes; tests/test_master_state_stream.py
# checks the bytes are the same.


class _LegacyStatus(msgspec.Struct, kw_only=True, gc=False):
    """A `/master/state` task's status, decoded from the record's `TaskStatus` JSON (the
    other fields skipped) and encoded as `_task_json` shapes it."""

    state: str
    timestamp: float = 0.0
    healthy: bool | UnsetType = UNSET
    container_status: Raw | UnsetType = UNSET


class _InfoExtras(msgspec.Struct, gc=False):
    """The kept `TaskInfo` fields a task entry copies (`TaskRecord.info_json`), as JSON."""

    labels: Raw | UnsetType = UNSET
    discovery: Raw | UnsetType = UNSET
    container: Raw | UnsetType = UNSET
    health_check: Raw | UnsetType = UNSET
    check: Raw | UnsetType = UNSET
    kill_policy: Raw | UnsetType = UNSET
    limits: Raw | UnsetType = UNSET


class _LegacyTask(msgspec.Struct, gc=False):
    """`_task_json`'s entry, field for field (made with positional arguments: faster)."""

    id: str
    name: str
    framework_id: str
    executor_id: str
    slave_id: str
    state: TaskState
    resources: Raw
    role: str
    statuses: list[_LegacyStatus]
    user: str | UnsetType = UNSET
    labels: Raw | UnsetType = UNSET
    discovery: Raw | UnsetType = UNSET
    container: Raw | UnsetType = UNSET
    health_check: Raw | UnsetType = UNSET


_LEGACY_STATUS = msgspec.json.Decoder(_LegacyStatus)
_INFO_EXTRAS = msgspec.json.Decoder(_InfoExtras)
_NO_EXTRAS = _InfoExtras()


def _info_extras(task: TaskRecord) -> _InfoExtras:
    """The task's `_InfoExtras`, kept per distinct info JSON (tasks launched alike share it)."""
    info = task.info_json()
    if not info:
        return _NO_EXTRAS
    extras = _EXTRAS.get(info)
    if extras is None:
        if len(_EXTRAS) >= _MAX_LEGACY:
            _EXTRAS.clear()
        extras = _EXTRAS[info] = _INFO_EXTRAS.decode(b"{" + info + b"}")
    return extras


_EXTRAS: dict[bytes, _InfoExtras] = {}


def _legacy_statuses(task: TaskRecord) -> list[_LegacyStatus]:
    statuses = task.status_json()
    if len(statuses) == 1:  # the common case, without a loop
        return [_LEGACY_STATUS.decode(statuses[0])]
    return [_LEGACY_STATUS.decode(s) for s in statuses]


def _kept_per_value(
    kept: dict[int, tuple[Resources, Any]], resources: Resources, render: Callable[[Resources], Any]
) -> Any:
    """`render(resources)`, kept in `kept` per shared (immutable) value: the master's tasks
    share one `Resources` per shape, so a document renders each shape once. The entry holds
    the value, so its id stays its own while kept."""
    held = kept.get(id(resources))
    if held is None or held[0] is not resources:
        if len(kept) >= _MAX_LEGACY:
            kept.clear()
        held = kept[id(resources)] = (resources, render(resources))
    return held[1]


def _legacy_resources_raw(resources: Resources) -> Raw:
    """`legacy_resources(resources)` as JSON, kept per shared value (as `_LEGACY` keeps it)."""
    raw: Raw = _kept_per_value(_LEGACY_RAW, resources, _legacy_raw)
    return raw


def _legacy_raw(resources: Resources) -> Raw:
    return Raw(_json(legacy_resources(resources)))


_LEGACY_RAW: dict[int, tuple[Resources, Raw]] = {}


def _task_json_bytes(task: TaskRecord) -> bytes:
    """`_json(_task_json(task))`, made without the dicts."""
    extras = _info_extras(task)
    return _json(_LegacyTask(
        task.task_id, task.name, task.framework_id, task.executor_id or "", task.agent_id,
        task.state, _legacy_resources_raw(task.resources), task.role, _legacy_statuses(task),
        task.user or UNSET, extras.labels, extras.discovery, extras.container, extras.health_check,
    ))


class _WireStatuses(msgspec.Struct, gc=False):
    """The statuses of a `Task`'s JSON, decoded as a `/master/state` entry shows them."""

    statuses: list[_LegacyStatus] = []


_WIRE_STATUSES = msgspec.json.Decoder(_WireStatuses)


def _completed_json_bytes(task: CompletedTask) -> bytes:
    """`_task_json_bytes` of the record `task` was made from: its statuses are decoded from
    its `Task` entry, which holds the record's status JSON as it was."""
    tail = task.wire_tail
    if task.wire_resources:  # the statuses follow the resources: decode the fields after them
        fields = b"{" + tail[1:] if len(tail) > 1 else b"{}"
    else:
        fields = task.wire_head
    extras = task.extras
    return _json(_LegacyTask(
        task.task_id, task.name, task.framework_id, task.executor_id or "", task.agent_id,
        task.state, _legacy_resources_raw(task.resources), task.role,
        _WIRE_STATUSES.decode(fields).statuses, task.user or UNSET,
        extras.labels, extras.discovery, extras.container, extras.health_check,
    ))


def completed_task(task: TaskRecord) -> CompletedTask:
    """The record of a task that ended, as its framework keeps it from now on
    (`mezzo.master.completed`): what the documents show of it, rendered once."""
    wire = _task_wire_bytes((FrameworkID(value=task.framework_id), task))
    resources = _wire_resources_bytes(task.resources)
    head, tail = wire, b""
    if resources:
        # The first `"resources":[` is the field's: the fields before it are strings and
        # objects of strings, in which a quote is escaped.
        key = b'"resources":' + resources
        at = wire.find(key) + len(b'"resources":')
        head, tail = wire[:at], wire[at + len(resources):]
    return CompletedTask(
        task.task_id, task.name, task.framework_id, task.executor_id, task.agent_id, task.state,
        task.user, task.role, task.resources, _info_extras(task), head, resources, tail,
    )


def _wire_resources_bytes(resources: Resources) -> bytes:
    """`_wire_resources_raw` as bytes (b"" for none), one object per shared value: the
    completed tasks of a shape hold the same one."""
    kept: bytes = _kept_per_value(_WIRE_BYTES, resources, _wire_bytes)
    return kept


def _wire_bytes(resources: Resources) -> bytes:
    raw = _wire_raw(resources)
    return b"" if isinstance(raw, UnsetType) else bytes(raw)


_WIRE_BYTES: dict[int, tuple[Resources, bytes]] = {}


# A piece of a streamed `/master/state` holds up to this many task entries (~1-2 µs each) or
# agent entries (~2-4 µs): a few hundred µs, well within a slice (10-25 ms), and the per-piece
# cost (the generators, the slice's clock) is paid once per hundred entries, not per entry.
TASKS_PER_PIECE = 128
AGENTS_PER_PIECE = 64


def _list_pieces(items: list[Any], render: Callable[[list[Any]], bytes], per_piece: int) -> Iterator[bytes]:
    """The JSON array of `items` in pieces: `render` makes the JSON array of up to `per_piece`
    of them at a time (one encode for many entries), spliced into the one array."""
    count = len(items)
    if count <= per_piece:
        yield render(items)
        return
    for start in range(0, count, per_piece):
        text = render(items[start:start + per_piece])
        if start:
            text = b"," + text[1:]
        if start + per_piece < count:
            text = text[:-1]
        yield text


def _tasks_json(tasks: list[TaskRecord]) -> bytes:
    """`_json([_task_json(t) for t in tasks])`, made as `_task_json_bytes` makes one entry, in
    one loop and one encode (the resources' and extras' lookups skipped while tasks in a row
    share them, as a framework's tasks mostly do)."""
    entries = []
    resources: Any = None
    raw = _NOTHING_RAW  # set by the first task
    info: Any = None
    extras = _NO_EXTRAS
    decode = _LEGACY_STATUS.decode
    for task in tasks:
        if task.resources is not resources:
            resources = task.resources
            raw = _legacy_resources_raw(resources)
        if task.info_json() != info:  # each task holds its own bytes: compared, not identical
            info = task.info_json()
            extras = _info_extras(task)
        statuses = task.status_json()
        entries.append(_LegacyTask(
            task.task_id, task.name, task.framework_id, task.executor_id or "", task.agent_id,
            task.state, raw, task.role,
            [decode(statuses[0])] if len(statuses) == 1 else [decode(s) for s in statuses],
            task.user or UNSET, extras.labels, extras.discovery, extras.container,
            extras.health_check,
        ))
    return _json(entries)


def _completed_json(tasks: list[CompletedTask]) -> bytes:
    """`_json([_task_json(t) for t in tasks])` of completed tasks, each entry made as
    `_completed_json_bytes` makes it, in one loop and one encode."""
    entries = []
    resources: Any = None
    raw = _NOTHING_RAW  # set by the first task
    decode = _WIRE_STATUSES.decode
    for task in tasks:
        if task.resources is not resources:
            resources = task.resources
            raw = _legacy_resources_raw(resources)
        tail = task.wire_tail
        if task.wire_resources:  # the statuses follow the resources: decode the fields after them
            fields = b"{" + tail[1:] if len(tail) > 1 else b"{}"
        else:
            fields = task.wire_head
        extras = task.extras
        entries.append(_LegacyTask(
            task.task_id, task.name, task.framework_id, task.executor_id or "", task.agent_id,
            task.state, raw, task.role, decode(fields).statuses, task.user or UNSET,
            extras.labels, extras.discovery, extras.container, extras.health_check,
        ))
    return _json(entries)


def _framework_pieces(master: MasterBase, fw: FrameworkRecord) -> Iterator[bytes]:
    """`framework_json` as JSON text, its task lists `TASKS_PER_PIECE` tasks per piece."""
    head = _json(framework_json(master, fw, with_tasks=False, kept=True))
    yield head[:-1]
    for key, tasks in _task_lists(fw):
        yield b',"' + key.encode() + b'":'
        render = _completed_json if key == "completed_tasks" else _tasks_json
        yield from _list_pieces(tasks, render, TASKS_PER_PIECE)
    yield b"}"


def executor_resources(master: MasterBase) -> dict[str, list[Resources]]:
    """Agent id -> the resources of the executors running there (one walk for all agents)."""
    out: dict[str, list[Resources]] = {}
    for fw in master.frameworks.values():
        add_executor_resources(out, fw)
    return out


def add_executor_resources(out: dict[str, list[Resources]], fw: FrameworkRecord) -> None:
    """Add `fw`'s executors that hold resources to `executor_resources`'s map. A command
    executor holds none of its own: leaving those out adds nothing to any sum, and keeps an
    agent's mix of shapes (`_used_key`) that of its tasks."""
    for agent_id, per_agent in fw.executors.items():
        held = [e.resources for e in per_agent.values() if e.resources]
        if held:
            out.setdefault(agent_id, []).extend(held)


def agent_json(
    master: MasterBase, agent: AgentRecord, executors: dict[str, list[Resources]] | None = None
) -> dict[str, Any]:
    """An agent's `/master/state` entry; `executors`: `executor_resources(master)`, when the
    caller renders many agents (else it is computed for this one)."""
    if executors is None:
        executors = executor_resources(master)
    used = sum_resources(_agent_used(agent, executors))
    resources, reserved, unreserved = _agent_json_resources(agent.total)
    return _agent_dict(master, agent, resources=resources, used_resources=legacy_resources(used),
                       reserved_resources=reserved, unreserved_resources=unreserved)


def _agent_used(agent: AgentRecord, executors: dict[str, list[Resources]]) -> list[Resources]:
    used = [t.resources for t in agent.tasks.values() if not t.recovered]  # a list: faster
    held = executors.get(agent.id)
    if held:
        used.extend(held)
    return used


def _agent_dict(master: MasterBase, agent: AgentRecord, **resources: Any) -> dict[str, Any]:
    """`agent_json`'s entry around its resources (dicts, or their JSON as `Raw`)."""
    return {
        **_agent_head(agent, resources["resources"]),
        "used_resources": resources["used_resources"],
        "offered_resources": legacy_resources(_offered(master, agent.offers)),
        **_agent_tail(agent, resources["reserved_resources"], resources["unreserved_resources"]),
    }


def _agent_head(agent: AgentRecord, resources: Any) -> dict[str, Any]:
    """The fields of an agent's entry before its used resources."""
    return {
        "id": agent.id,
        "hostname": agent.hostname,
        "port": agent.info.port or 5051,
        "attributes": _attributes(agent.info),
        "pid": agent.pid,
        "registered_time": agent.registered_time,
        "resources": resources,
    }


def _agent_tail(agent: AgentRecord, reserved: Any, unreserved: Any) -> dict[str, Any]:
    """The fields of an agent's entry after its offered resources."""
    out: dict[str, Any] = {
        "reserved_resources": reserved,
        "unreserved_resources": unreserved,
        "active": agent.active,
        "deactivated": not agent.active,
        "version": agent.version or __version__,
        "capabilities": list(agent.capabilities),
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    return out


class _AgentTotal(msgspec.Struct, gc=False):  # no cycles: not one more object for the collector
    """The JSON of what an agent entry shows of its total resources (which change only when
    the agent's `total` is replaced: `Resources` is immutable), kept per total *object*: agents
    of one shape share theirs (`records` makes one `Resources` per distinct wire form), so a
    first document renders each shape once, not each of thousands of agents (issue 12)."""

    total: Resources
    resources: Raw
    reserved_resources: Raw
    unreserved_resources: Raw
    wire: Raw | UnsetType


def _agent_total(agent: AgentRecord) -> _AgentTotal:
    total = agent.total
    held = _AGENT_TOTALS.get(id(total))
    if held is None or held.total is not total:  # (`held` keeps its total: the id stays its)
        resources, reserved, unreserved = _agent_json_resources(total)
        wire = total.to_wire()
        held = _AgentTotal(total, Raw(_json(resources)), Raw(_json(reserved)), Raw(_json(unreserved)),
                           Raw(encode(wire)) if wire else UNSET)
        if len(_AGENT_TOTALS) >= _MAX_AGENT_TOTALS:
            _AGENT_TOTALS.clear()
        _AGENT_TOTALS[id(total)] = held
    return held


def _agent_json_resources(total: Resources) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`resources`, `reserved_resources` and `unreserved_resources` of an agent's entry."""
    reserved: dict[str, Any] = {}
    for item in total:
        if item.reservations:
            reserved.setdefault(item.role, Resources())
            reserved[item.role] = reserved[item.role] + Resources([item])
    return (legacy_resources(total), {r: legacy_resources(v) for r, v in reserved.items()},
            legacy_resources(total.unreserved()))


# id(total) -> `_AgentTotal` of that `Resources` object (which it holds, so that the id is not
# reused while kept); bounded (cleared when full) so that totals no agent has any more leave no
# trace beyond it. ~0.5 KB per distinct total.
_AGENT_TOTALS: dict[int, _AgentTotal] = {}
_MAX_AGENT_TOTALS = 100_000


def _used_key(items: Iterable[Resources]) -> tuple[tuple[Resources, int], ...]:
    """The distinct values of `items` (by identity) and their counts, in first-seen order:
    `sum_resources` of equal keys is the same sum, made in the same order. (Counted by C
    loops: `Counter` of the ids, `dict(zip())` for the values.)"""
    values = list(items)
    if not values:
        return ()
    first = values[0]
    if all(map(operator.is_, values, itertools.repeat(first))):  # a C loop
        return ((first, len(values)),)  # the common case: an agent's tasks all of one shape
    counts = Counter(map(id, values))
    by_id = dict(zip(map(id, values), values, strict=True))
    return tuple((by_id[i], n) for i, n in counts.items())


def _sum_raw(items: Iterable[Resources], wire: bool) -> Raw | UnsetType:
    """The JSON of `sum_resources(items)` as `legacy_resources` (or, `wire`, as
    `to_wire(with_allocation=True)`; UNSET if empty) renders it, kept per multiset of
    (shared) values: many agents run the same mix of task shapes."""
    return _sum_held(_used_key(items), wire)[1]


def _sum_held(
    key: tuple[tuple[Resources, int], ...], wire: bool
) -> tuple[tuple[tuple[Resources, int], ...], Raw | UnsetType]:
    """`_SUMS`'s entry for the mix `key` (`_used_key`): the kept key and the JSON."""
    ids = (wire, *((id(r), n) for r, n in key))
    held = _SUMS.get(ids)
    if held is None or any(a is not b for (a, _), (b, _) in zip(held[0], key, strict=True)):
        total = sum_resources(r for r, n in key for _ in range(n))
        if wire:
            entries = total.to_wire(with_allocation=True)
            raw: Raw | UnsetType = Raw(encode(entries)) if entries else UNSET
        else:
            raw = Raw(_json(legacy_resources(total)))
        if len(_SUMS) >= _MAX_LEGACY:
            _SUMS.clear()
        held = _SUMS[ids] = (key, raw)  # the key holds the values: their ids stay their own
    return held


_SUMS: dict[tuple[Any, ...], tuple[tuple[tuple[Resources, int], ...], Raw | UnsetType]] = {}


class _AgentParts(msgspec.Struct, gc=False):  # no cycles: not one more object for the collector
    """The JSON of an agent's `/master/state` entry around its used and offered resources,
    kept per agent id while what it shows is the same: the same `info` (replaced whole, never
    changed in place: `records.share_agent_info`), the same `total` (immutable, replaced on
    change) and equal `fields` (the entry's other values). The used resources' mix of shapes
    last seen (`_SUMS`'s entry, shared by the agents running that mix) is kept too."""

    info: Any
    total: Resources
    fields: tuple[Any, ...]
    head: bytes  # `{"id":…,"resources":{…},"used_resources":`
    tail: bytes  # `,"reserved_resources":…}`
    used: tuple[tuple[tuple[Resources, int], ...], Raw | UnsetType] | None = None


def _agent_fields(agent: AgentRecord) -> tuple[Any, ...]:
    # Strings, numbers and a tuple of strings: the collector untracks such a tuple.
    return (agent.pid, agent.registered_time, agent.reregistered_time, agent.active,
            agent.version, agent.capabilities)


def _agent_parts(agent: AgentRecord) -> _AgentParts:
    held = _AGENT_PARTS.get(agent.id)
    fields = _agent_fields(agent)
    if (held is None or held.info is not agent.info or held.total is not agent.total
            or held.fields != fields):
        total = _agent_total(agent)
        head = _json(_agent_head(agent, total.resources))[:-1] + b',"used_resources":'
        tail = b"," + _json(_agent_tail(agent, total.reserved_resources, total.unreserved_resources))[1:]
        held = _AgentParts(agent.info, agent.total, fields, head, tail)
        if len(_AGENT_PARTS) >= _MAX_AGENT_TOTALS:
            _AGENT_PARTS.clear()
        _AGENT_PARTS[agent.id] = held
    return held


# Agent id -> `_AgentParts`; bounded as `_AGENT_TOTALS`. ~0.6 KB per agent.
_AGENT_PARTS: dict[str, _AgentParts] = {}
# `legacy_resources` of no resources: an agent without offers.
_NOTHING_RAW = Raw(_json(legacy_resources(Resources())))


def _agent_bytes(master: MasterBase, agent: AgentRecord, executors: dict[str, list[Resources]]) -> bytes:
    """`_json(agent_json(master, agent, executors))`, made of kept parts (`_agent_parts`, the
    JSON of each mix of task shapes: `_sum_raw`) around its used and offered resources."""
    parts = _agent_parts(agent)
    key = _used_key(_agent_used(agent, executors))
    used = parts.used
    if used is None or used[0] != key:  # compares the shared values by identity first
        used = parts.used = _sum_held(key, wire=False)
    raw = used[1]
    assert not isinstance(raw, UnsetType)  # only `wire` sums are UNSET
    offered = (Raw(_json(legacy_resources(_offered(master, agent.offers)))) if agent.offers
               else _NOTHING_RAW)
    return b"".join((parts.head, raw, b',"offered_resources":', offered, parts.tail))


def _agents_json(master: MasterBase, agents: list[AgentRecord],
                 executors: dict[str, list[Resources]]) -> bytes:
    """The JSON array of the entries of `agents` (`_agent_bytes` each)."""
    return b"[" + b",".join([_agent_bytes(master, a, executors) for a in agents]) + b"]"


def master_pid(master: MasterBase) -> str:
    return master.info.pid or f"master@{master.info.hostname}:{master.info.port}"


def recovered_agents_json(master: MasterBase) -> list[dict[str, Any]]:
    """`recovered_slaves`: agents of the registry that have not re-registered yet."""
    return [
        {"id": aid, "hostname": getattr(i, "hostname", ""), "port": getattr(i, "port", 5051)}
        for aid, i in master.recovered_agents.items()
    ]


def _state_document(
    master: MasterBase, flags: dict[str, str], agents: list[AgentRecord]
) -> dict[str, Any]:
    """`/master/state` with the big lists left empty (see `state_json`, `state_pieces`)."""
    info = master.info
    return {
        "version": __version__,
        "build_date": BUILD_DATE,
        "build_time": BUILD_TIME,
        "build_user": BUILD_USER,
        "start_time": master.start_time,
        "elected_time": master.elected_time,
        "id": info.id,
        "pid": master_pid(master),
        "hostname": info.hostname,
        "capabilities": [str(c.type) for c in info.capabilities],
        "activated_slaves": sum(1 for a in agents if a.active),
        "deactivated_slaves": sum(1 for a in agents if not a.active),
        "unreachable_slaves": len(master.unreachable_agents),
        "leader": master_pid(master),
        "leader_info": to_builtins(info),
        "flags": flags,
        "slaves": [],
        "recovered_slaves": recovered_agents_json(master),
        "frameworks": [],
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def state_json(master: MasterBase, flags: dict[str, str]) -> dict[str, Any]:
    agents = list(master.agents.values())
    doc = _state_document(master, flags, agents)
    executors = executor_resources(master)
    doc["slaves"] = [agent_json(master, a, executors) for a in agents]
    doc["frameworks"] = [framework_json(master, f) for f in master.frameworks.values()]
    doc["completed_frameworks"] = [
        framework_json(master, f) for f in master.completed_frameworks.values()
    ]
    return doc


def state_pieces(master: MasterBase, flags: dict[str, str]) -> Iterator[bytes]:
    """The JSON text of `state_json`, in pieces of up to `AGENTS_PER_PIECE` agents or
    `TASKS_PER_PIECE` tasks, or one framework's fields other than its tasks, so that the HTTP
    shell can send a state of 100,000 tasks while yielding to its event loop between pieces
    instead of stalling it for seconds.

    The collections are listed when the first piece is made; each entry is rendered as it is
    when its piece is made. So the document is exactly `state_json` when nothing happens in
    between; otherwise an entry may be newer than another (a task that ended meanwhile can show
    as running in one framework's entry, as Mesos's own per-request snapshot can never show)."""
    agents = list(master.agents.values())
    # `executor_resources`, a framework at a time, the shell free to end a slice after each:
    # after a failover every task's command executor is known (72,000 at 9,000 agents), and
    # one walk of them all before the first piece held the loop 90-140 ms.
    executors: dict[str, list[Resources]] = {}
    for fw in list(master.frameworks.values()):
        add_executor_resources(executors, fw)
        yield b""

    def agent_pieces(master: MasterBase, agents: list[AgentRecord]) -> Iterator[bytes]:
        yield from _list_pieces(agents, lambda chunk: _agents_json(master, chunk, executors),
                                AGENTS_PER_PIECE)

    def framework_pieces(master: MasterBase, frameworks: list[FrameworkRecord]) -> Iterator[bytes]:
        yield b"["
        for i, fw in enumerate(frameworks):
            if i:
                yield b","
            yield from _framework_pieces(master, fw)
        yield b"]"

    entries: dict[str, tuple[Callable[[MasterBase, Any], Iterator[bytes]], list[Any]]] = {
        "slaves": (agent_pieces, agents),
        "frameworks": (framework_pieces, list(master.frameworks.values())),
        "completed_frameworks": (framework_pieces, list(master.completed_frameworks.values())),
    }
    doc = _state_document(master, flags, agents)
    separator = b"{"
    for key, value in doc.items():
        yield separator + _json(key) + b":"
        separator = b","
        if key not in entries:
            yield _json(value)
            continue
        render, items = entries[key]
        yield from render(master, items)
    yield b"}"


_GAUGE_STATES = (TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                 TaskState.TASK_KILLING, TaskState.TASK_UNREACHABLE)
_COUNTER_STATES = ("finished", "failed", "killed", "lost", "error", "dropped", "gone", "gone_by_operator")


def _times(resources: Resources, n: int) -> Resources:
    """`resources` added `n` times (n ≥ 1), in log2(n) additions."""
    out: Resources | None = None
    while True:
        if n & 1:
            out = resources if out is None else out + resources
        n >>= 1
        if not n:
            assert out is not None
            return out
        resources = resources + resources


def sum_resources(items: Iterable[Resources]) -> Resources:
    """The sum of `items`, each distinct value added once and multiplied: the master's tasks
    share their `Resources` per shape (`mezzo.master.records.shared_resources`), so summing
    100,000 tasks costs a few additions per shape instead of 100,000 (`/metrics/snapshot`)."""
    by_shape: dict[Any, list[Any]] = {}  # equal values held apart (agents' totals) merge here
    for r, n in _used_key(items):  # counted by identity in C loops
        shape = r.shape()
        key = shape if shape is not None else ("id", id(r))
        entry = by_shape.get(key)
        if entry is None:
            by_shape[key] = [r, n]
        else:
            entry[1] += n
    total = Resources()
    for r, n in by_shape.values():
        total = total + _times(r, n)
    return total


def metrics(master: MasterBase, now: float) -> dict[str, float]:
    """The core's `/metrics/snapshot` keys. O(agents) in one cheap pass (their flags) plus
    O(frameworks, roles, executors): the tasks per state and the total, used and offered
    resources come from the gauges the core keeps as it changes (`mezzo.master.gauges`)."""
    frameworks = list(master.frameworks.values())
    active = connected = 0
    for agent in master.agents.values():
        active += agent.active
        connected += agent.connected
    agents = len(master.agents)
    m: dict[str, float] = {
        "master/elected": 1.0,
        "master/uptime_secs": now - master.start_time,
        "master/slaves_active": active,
        "master/slaves_inactive": agents - active,
        "master/slaves_connected": connected,
        "master/slaves_disconnected": agents - connected,
        "master/slaves_unreachable": len(master.unreachable_agents),
        "master/frameworks_active": sum(1 for f in frameworks if f.active),
        "master/frameworks_inactive": sum(1 for f in frameworks if not f.active),
        "master/frameworks_connected": sum(1 for f in frameworks if f.connected),
        "master/frameworks_disconnected": sum(1 for f in frameworks if not f.connected),
        "master/outstanding_offers": len(master.offers),
    }
    gauges = dict.fromkeys(_GAUGE_STATES, 0)
    used = ScalarTally()
    for fw in frameworks:
        states, allocated = task_counts(fw.tasks)
        for state in _GAUGE_STATES:
            gauges[state] += states.get(state, 0)
        gauges[TaskState.TASK_UNREACHABLE] += len(fw.unreachable_tasks)
        used.absorb(allocated)
        for per_agent in fw.executors.values():
            for executor in per_agent.values():
                used.add(executor.resources)
    for state, count in gauges.items():
        m[f"master/tasks_{state.removeprefix('TASK_').lower()}"] = count
    counters = master.counters.values
    for name in _COUNTER_STATES:
        m[f"master/tasks_{name}"] = counters.get(f"tasks_{name}", 0)
    total = master.agents.tally
    tq, uq, oq = total.quantities(), used.quantities(), master.offers.tally.quantities()
    rtq, ruq = total.quantities(revocable=True), used.quantities(revocable=True)
    for r in ("cpus", "gpus", "mem", "disk"):
        t, u = tq.get(r, 0.0), uq.get(r, 0.0)
        m[f"master/{r}_total"] = t
        m[f"master/{r}_used"] = u
        m[f"master/{r}_percent"] = (u / t) if t else 0.0
        m[f"master/{r}_offered"] = oq.get(r, 0.0)
        rt, ru = rtq.get(r, 0.0), ruq.get(r, 0.0)
        m[f"master/{r}_revocable_total"] = rt
        m[f"master/{r}_revocable_used"] = ru
        m[f"master/{r}_revocable_percent"] = (ru / rt) if rt else 0.0
    for name in ("valid_status_updates", "invalid_status_updates",
                 "valid_status_update_acknowledgements", "invalid_status_update_acknowledgements",
                 "dropped_messages", "slave_registrations", "slave_reregistrations", "slave_removals"):
        m[f"master/{name}"] = counters.get(name, 0)
    for name, value in counters.items():
        if name.startswith("messages_"):
            m[f"master/{name}"] = value
    for name in ("messages_launch_tasks", "messages_decline_offers", "messages_kill_task",
                 "messages_status_update", "messages_reconcile_tasks",
                 "messages_register_framework", "messages_reregister_framework"):
        m.setdefault(f"master/{name}", 0)
    m["master/operator_event_stream_subscribers"] = len(master.events.subscribers)
    stats = master.allocator.statistics()
    # The allocator's queue: an allocation run requested and not yet run (the master's
    # event-queue keys come from its shell: mezzo.master.metrics).
    pending = 1.0 if master.allocation_pending else 0.0
    m["allocator/event_queue_dispatches"] = pending
    m["allocator/mesos/event_queue_dispatches"] = pending
    m["allocator/mesos/allocation_runs"] = stats.allocation_runs
    # How many runs were the periodic batch and how many events triggered (an operator
    # watching for offer storms compares the second with the first).
    m["allocator/mesos/allocation_runs_batch"] = master.batch_allocation_runs
    m["allocator/mesos/allocation_runs_event_triggered"] = master.event_allocation_runs
    m["allocator/mesos/allocation_run_ms"] = stats.last_allocation_run_ms
    for r in ("cpus", "mem", "disk"):
        m[f"allocator/mesos/resources/{r}/total"] = stats.total.get(r, 0.0)
        # The allocator counts offered resources as allocated, as Mesos's does.
        m[f"allocator/mesos/resources/{r}/offered_or_allocated"] = stats.allocated.get(r, 0.0)
    for role, client in stats.roles.items():
        m[f"allocator/mesos/roles/{role}/shares/dominant"] = client.share
    for role, count in stats.offer_filters_by_role.items():
        m[f"allocator/mesos/offer_filters/roles/{role}/active"] = count
    m.update(quota_metrics(master, stats))
    return m


def quota_metrics(master: MasterBase, stats: AllocatorStatistics) -> dict[str, float]:
    """Per quota role and resource (Mesos's allocator/mesos/quota/roles/<role>/resources/
    <name>/...): guarantee, limit, consumed (allocated + unallocated reservations),
    offered_or_allocated, and its two parts offered (outstanding offers) and allocated (in use
    by tasks and executors)."""
    if not master.quota_config:
        return {}
    consumed = master.allocator.consumption(list(master.quota_config))
    offered: dict[str, dict[str, float]] = {}
    for offer in master.offers.values():
        for role in master.quota_config:
            if offer.role == role or offer.role.startswith(role + "/"):
                held = offered.setdefault(role, {})
                for name, value in offer.resources.scalars().quantities().items():
                    held[name] = held.get(name, 0.0) + value
    m: dict[str, float] = {}
    for role, quota in master.quota_config.items():
        both = stats.roles[role].allocated if role in stats.roles else {}
        names = {*quota["guarantees"], *quota["limits"], *consumed.get(role, {}), *both}
        for name in sorted(names):
            prefix = f"allocator/mesos/quota/roles/{role}/resources/{name}"
            if name in quota["guarantees"]:
                m[f"{prefix}/guarantee"] = quota["guarantees"][name]
            if name in quota["limits"]:
                m[f"{prefix}/limit"] = quota["limits"][name]
            m[f"{prefix}/consumed"] = consumed.get(role, {}).get(name, 0.0)
            total = both.get(name, 0.0)
            out = offered.get(role, {}).get(name, 0.0)
            m[f"{prefix}/offered_or_allocated"] = total
            m[f"{prefix}/offered"] = out
            m[f"{prefix}/allocated"] = max(0.0, total - out)
    return m


# ---------------------------------------------------------------------------- operator API


def _framework_entry(master: MasterBase, fw: FrameworkRecord) -> op.FrameworkEntry:
    """The event stream's entry (`mezzo.master.events`) plus offers and resources."""
    return msgspec.structs.replace(
        framework_entry(fw),
        offers=[o.wire for o in (master.offers.get(i) for i in fw.offers) if o is not None],
        allocated_resources=_used_resources(fw).to_wire(with_allocation=True),
        offered_resources=_offered(master, fw.offers).to_wire(with_allocation=True),
    )


def _agent_entry(master: MasterBase, a: AgentRecord) -> op.AgentEntry:
    used = sum_resources(t.resources for t in a.tasks.values() if not t.recovered)
    return _agent_entry_around(master, a, a.total.to_wire(), used.to_wire(with_allocation=True))


def _agent_entry_around(master: MasterBase, a: AgentRecord, total: Any, allocated: Any) -> op.AgentEntry:
    """`_agent_entry` with its total and allocated resources given (wire lists, or their JSON
    as `Raw`, or UNSET for none: what `_agent_entry_bytes` splices in)."""
    return op.AgentEntry(
        agent_info=a.info, active=a.active, deactivated=not a.active,
        version=a.version or __version__, pid=a.pid,
        registered_time=time_info(a.registered_time),
        reregistered_time=time_info(a.reregistered_time),
        total_resources=total,
        allocated_resources=allocated,
        offered_resources=_offered(master, a.offers).to_wire(with_allocation=True),
    )


def _agent_entry_bytes(master: MasterBase, a: AgentRecord) -> bytes:
    """`encode(_agent_entry(master, a))`, its resources' JSON kept (`_agent_total`,
    `_sum_raw`)."""
    allocated = _sum_raw((t.resources for t in a.tasks.values() if not t.recovered), wire=True)
    return encode(_agent_entry_around(master, a, _agent_total(a).wire, allocated))


# The operator API's big answers, described once as lists of fields (wire name, the sources of
# its entries, the wire entry of one source, and optionally a faster way to the JSON of that
# entry) so that they can be built whole (`get_state` & co.) or encoded entry by entry
# (`operator_pieces`). Sources are listed when the field is reached (the tasks, a framework's
# when its turn comes: listing 100,000 at once held the loop for one long piece).
_Field = tuple[str, Callable[[], Iterable[Any]], Callable[[Any], Any], Callable[[Any], bytes] | None]


def _same(item: Any) -> Any:
    return item


def _task_wire(item: tuple[FrameworkID, TaskRecord]) -> Task:
    return item[1].to_wire(item[0])


def _completed_wire(item: tuple[FrameworkID, CompletedTask]) -> Task:
    return decode(item[1].wire_entry(), Task)


def _completed_wire_bytes(item: tuple[FrameworkID, CompletedTask]) -> bytes:
    return item[1].wire_entry()


class _Value(msgspec.Struct, gc=False):
    value: str


class _TaskWire(msgspec.Struct, gc=False):
    """`Task` (the operator API's shape) field for field, its nested records as JSON; every
    field given, positionally (faster), UNSET for one left out."""

    name: str
    task_id: _Value
    framework_id: FrameworkID
    executor_id: _Value | UnsetType
    agent_id: _Value
    state: TaskState
    resources: Raw | UnsetType
    statuses: Raw | UnsetType
    status_update_state: TaskState | UnsetType
    status_update_uuid: bytes | UnsetType
    labels: Raw | UnsetType
    discovery: Raw | UnsetType
    container: Raw | UnsetType
    health_check: Raw | UnsetType
    check: Raw | UnsetType
    kill_policy: Raw | UnsetType
    user: str | UnsetType
    limits: Raw | UnsetType


def _wire_resources_raw(resources: Resources) -> Raw | UnsetType:
    """A task's resources as `Task.resources` encodes them (with their allocation role), kept
    per shared value; UNSET when there are none (the field is left out)."""
    raw: Raw | UnsetType = _kept_per_value(_WIRE_RAW, resources, _wire_raw)
    return raw


def _wire_raw(resources: Resources) -> Raw | UnsetType:
    wire = resources.to_wire(with_allocation=True)
    return Raw(encode(wire)) if wire else UNSET


_WIRE_RAW: dict[int, tuple[Resources, Raw | UnsetType]] = {}


def _task_wire_bytes(item: tuple[FrameworkID, TaskRecord]) -> bytes:
    """`encode(_task_wire(item))`, made without decoding the record's JSON into records."""
    fid, task = item
    statuses = task.status_json()
    extras = _info_extras(task)
    update_state = task.status_update_state
    update_uuid = task.status_update_uuid
    user = task.user
    return _json(_TaskWire(
        task.name, _Value(task.task_id), fid,
        _Value(task.executor_id) if task.executor_id else UNSET,
        _Value(task.agent_id), task.state, _wire_resources_raw(task.resources),
        Raw(b"[" + b",".join(statuses) + b"]") if statuses else UNSET,
        UNSET if update_state is None else update_state,
        UNSET if update_uuid is None else update_uuid,
        extras.labels, extras.discovery, extras.container, extras.health_check, extras.check,
        extras.kill_policy, UNSET if user is None else user, extras.limits,
    ))


def _tasks_of(frameworks: list[FrameworkRecord], kind: str) -> Callable[[], Iterator[Any]]:
    def sources() -> Iterator[tuple[FrameworkID, Any]]:
        for fw in frameworks:
            records: Iterable[Any] = fw.tasks.values() if kind == "tasks" else (
                fw.unreachable_tasks.values() if kind == "unreachable" else fw.completed_tasks)
            if records:
                fid = FrameworkID(value=fw.id)
                yield from [(fid, t) for t in records]

    return sources


def _tasks_fields(master: MasterBase) -> list[_Field]:
    frameworks = [*master.frameworks.values(), *master.completed_frameworks.values()]
    return [
        ("tasks", _tasks_of(frameworks, "tasks"), _task_wire, _task_wire_bytes),
        ("unreachable_tasks", _tasks_of(frameworks, "unreachable"), _task_wire, _task_wire_bytes),
        ("completed_tasks", _tasks_of(frameworks, "completed"), _completed_wire, _completed_wire_bytes),
    ]


def _executors_fields(master: MasterBase) -> list[_Field]:
    frameworks = list(master.frameworks.values())

    def sources() -> Iterator[tuple[str, ExecutorRecord]]:
        # One at a time, as the pieces are made: building all of them before the first piece
        # (72,000 command executors at 9,000 agents) held the loop 150-230 ms in one turn.
        for fw in frameworks:
            for agent_id, per_agent in list(fw.executors.items()):
                for e in list(per_agent.values()):
                    yield agent_id, e

    return [("executors", sources, _executor_entry, _executor_entry_bytes)]


def _executor_entry(item: tuple[str, ExecutorRecord]) -> op.ExecutorEntry:
    agent_id, e = item
    return op.ExecutorEntry(executor_info=e.info, agent_id=AgentID(value=agent_id))


def _executor_entry_bytes(item: tuple[str, ExecutorRecord]) -> bytes:
    """`encode(_executor_entry(item))` without decoding the kept info: its JSON as it is."""
    agent_id, e = item
    return b'{"executor_info":' + e.info_json + b',"agent_id":{"value":' + _json(agent_id) + b"}}"


def _frameworks_fields(master: MasterBase) -> list[_Field]:
    def render(fw: FrameworkRecord) -> op.FrameworkEntry:
        return _framework_entry(master, fw)

    return [
        ("frameworks", lambda: list(master.frameworks.values()), render, None),
        ("completed_frameworks", lambda: list(master.completed_frameworks.values()), render, None),
    ]


def _agents_fields(master: MasterBase) -> list[_Field]:
    def render(a: AgentRecord) -> op.AgentEntry:
        return _agent_entry(master, a)

    return [
        ("agents", lambda: list(master.agents.values()), render,
         lambda a: _agent_entry_bytes(master, a)),
        ("recovered_agents", lambda: list(master.recovered_agents.values()), _same, None),
    ]


def _built(fields: list[_Field]) -> dict[str, list[Any]]:
    return {name: [render(item) for item in sources()] for name, sources, render, _ in fields}


def get_frameworks(master: MasterBase) -> op.GetFrameworks:
    return op.GetFrameworks(**_built(_frameworks_fields(master)))


def get_agents(master: MasterBase) -> op.GetAgents:
    return op.GetAgents(**_built(_agents_fields(master)))


def get_tasks(master: MasterBase) -> op.GetTasks:
    return op.GetTasks(**_built(_tasks_fields(master)))


def get_state(master: MasterBase) -> op.GetState:
    return op.GetState(get_tasks=get_tasks(master), get_executors=get_executors(master),
                       get_frameworks=get_frameworks(master), get_agents=get_agents(master))


def get_executors(master: MasterBase) -> op.GetExecutors:
    return op.GetExecutors(**_built(_executors_fields(master)))


_FIELDS: dict[op.CallType, Callable[[MasterBase], list[_Field]]] = {
    op.CallType.GET_TASKS: _tasks_fields,
    op.CallType.GET_EXECUTORS: _executors_fields,
    op.CallType.GET_FRAMEWORKS: _frameworks_fields,
    op.CallType.GET_AGENTS: _agents_fields,
}
STREAMED_CALLS = frozenset({op.CallType.GET_STATE, *_FIELDS})


def _object_pieces(fields: list[_Field]) -> Iterator[bytes]:
    """`{"name":[entry,…],…}` an entry per piece; an empty list is left out, as the codec
    leaves out a field at its default."""
    yield b"{"
    first = True
    for name, sources, render, encoded in fields:
        items = iter(sources())
        item = next(items, _NONE)
        if item is _NONE:
            continue
        yield (b'"' if first else b',"') + name.encode() + b'":['
        first = False
        to_json = encoded or _encoding(render)
        yield to_json(item)
        for item in items:
            yield b"," + to_json(item)
        yield b"]"
    yield b"}"


_NONE = object()


def _encoding(render: Callable[[Any], Any]) -> Callable[[Any], bytes]:
    return lambda item: encode(render(item))


def operator_pieces(master: MasterBase, call_type: op.CallType) -> Iterator[bytes]:
    """The JSON answer to GET_STATE, GET_TASKS, GET_EXECUTORS, GET_FRAMEWORKS or GET_AGENTS
    (`STREAMED_CALLS`), in pieces of one entry (a task, an agent, a framework…) each, so that
    the HTTP shell can answer at 100,000 tasks while yielding to its event loop between pieces,
    as `state_pieces` does for `/master/state`. Joined, the pieces are the bytes of
    `encode(Response(type=call_type, get_…=get_…(master)))` when nothing changes in between;
    otherwise an entry may be newer than another, and a list that emptied meanwhile shows as
    `[]` rather than being left out."""
    key = call_type.value.lower()
    yield b'{"type":"' + call_type.value.encode() + b'","' + key.encode() + b'":'
    if call_type == op.CallType.GET_STATE:
        yield from _get_state_pieces(master)
    else:
        yield from _object_pieces(_FIELDS[call_type](master))
    yield b"}"


def _get_state_pieces(master: MasterBase) -> Iterator[bytes]:
    parts = [("get_tasks", _tasks_fields), ("get_executors", _executors_fields),
             ("get_frameworks", _frameworks_fields), ("get_agents", _agents_fields)]
    for i, (name, fields) in enumerate(parts):
        yield (b"{" if i == 0 else b",") + b'"' + name.encode() + b'":'
        yield from _object_pieces(fields(master))
    yield b"}"


def subscribed_pieces(master: MasterBase, heartbeat_interval: float) -> Iterator[bytes]:
    """The operator event stream's first event, SUBSCRIBED (the state as GET_STATE gives it),
    in pieces as `operator_pieces` makes GET_STATE's: joined, the bytes of
    `encode(Event(type=SUBSCRIBED, subscribed=Subscribed(get_state=get_state(master),
    heartbeat_interval_seconds=heartbeat_interval)))` when nothing changes in between."""
    yield b'{"type":"SUBSCRIBED","subscribed":{"get_state":'
    yield from _get_state_pieces(master)
    yield b',"heartbeat_interval_seconds":' + msgspec.json.encode(float(heartbeat_interval)) + b"}}"


def get_roles(master: MasterBase) -> op.GetRoles:
    roles: dict[str, list[FrameworkRecord]] = {}
    for fw in master.frameworks.values():
        for role in fw.roles:
            roles.setdefault(role, []).append(fw)
    weights = master.weights
    for role in weights:
        roles.setdefault(role, [])
    out = []
    for role, fws in sorted(roles.items()):
        used = Resources()
        for fw in fws:
            used = used + fw.used_resources().allocations().get(role, Resources())
        out.append(op.Role(
            name=role, weight=weights.get(role, 1.0),
            frameworks=[FrameworkID(value=f.id) for f in fws],
            resources=used.to_wire(),
        ))
    return op.GetRoles(roles=out)


def version_info() -> op.VersionInfo:
    return op.VersionInfo(version=__version__, build_date=BUILD_DATE, build_time=float(BUILD_TIME),
                          build_user=BUILD_USER)
