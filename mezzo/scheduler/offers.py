"""Offer helpers: does an offer fit a task, carve tasks out of it, pick ports, build TaskInfos
(and the DEFAULT ExecutorInfo of a task group).

Wanted resources are usually *quantities* ("cpus:0.5;mem:64"), while an offer holds concrete
resources with identities (unreserved `*`, reserved for a role, allocated to a role). `take`
bridges the two: it picks, from what is available, concrete resources that add up to what is
wanted — reserved resources first (they are yours only), then unreserved — so the result can be
put in a TaskInfo as is and is always contained in the offer. Ranges and sets that are asked
for explicitly (`ports:[8080-8080]`) must be present; `ports=N` asks for any N ports.

All helpers are pure: no I/O, no master.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

from mezzo.api.common import (
    AgentID,
    CommandInfo,
    Environment,
    EnvironmentVariable,
    ExecutorID,
    ExecutorInfo,
    ExecutorType,
    Offer,
    Resource,
    TaskID,
    TaskInfo,
)
from mezzo.resources import RANGES, SCALAR, SET, ResourceItem, Resources
from mezzo.resources import values as rv

ResourcesLike = Resources | Offer | str | Mapping[str, float] | Iterable[Resource]


def as_resources(what: ResourcesLike) -> Resources:
    """Resources from an offer, a text (`cpus:1;mem:128`), quantities or wire resources."""
    if isinstance(what, Resources):
        return what
    if isinstance(what, Offer):
        return Resources.from_wire(what.resources)
    if isinstance(what, str):
        return Resources.parse(what)
    if isinstance(what, Mapping):
        return Resources.from_quantities(what)
    return Resources.from_wire(list(what))


def _candidates(available: Resources, name: str, kind: int, revocable: bool) -> list[ResourceItem]:
    """Available items of one name and kind, reserved ones first (stable otherwise)."""
    items = [
        it
        for it in available
        if it.key.name == name
        and it.key.kind == kind
        and not it.key.shared
        and (revocable or not it.key.revocable)
    ]
    items.sort(key=lambda it: not it.key.is_reserved)
    return items


def take(
    available: ResourcesLike,
    wanted: ResourcesLike,
    *,
    ports: int = 0,
    revocable: bool = False,
) -> Resources | None:
    """Concrete resources out of `available` covering `wanted` (plus `ports` arbitrary ports),
    or None when they do not fit. Revocable resources are used only with `revocable=True`."""
    have = as_resources(available)
    want = as_resources(wanted)
    picked: list[ResourceItem] = []
    # Sum what is wanted per (name, kind): identities of wanted quantities do not matter.
    scalars: dict[str, int] = {}
    ranges: dict[str, rv.RangesValue] = {}
    sets: dict[str, frozenset[str]] = {}
    for it in want:
        name, kind = it.key.name, it.key.kind
        if kind == SCALAR:
            scalars[name] = scalars.get(name, 0) + it.value  # type: ignore[operator]
        elif kind == RANGES:
            ranges[name] = rv.ranges_add(ranges.get(name, ()), it.value)  # type: ignore[arg-type]
        else:
            sets[name] = sets.get(name, frozenset()) | it.value  # type: ignore[operator]
    for name, need in scalars.items():
        for it in _candidates(have, name, SCALAR, revocable):
            if need <= 0:
                break
            part = min(need, it.value)  # type: ignore[type-var]
            picked.append(ResourceItem(it.key, part))
            need -= part
        if need > 0:
            return None
    for name, need_r in ranges.items():
        for it in _candidates(have, name, RANGES, revocable):
            inside = rv.ranges_sub(need_r, rv.ranges_sub(need_r, it.value))  # type: ignore[arg-type]
            if inside:
                picked.append(ResourceItem(it.key, inside))
                need_r = rv.ranges_sub(need_r, inside)
        if need_r:
            return None
    for name, need_s in sets.items():
        for it in _candidates(have, name, SET, revocable):
            inside_s = need_s & it.value  # type: ignore[operator]
            if inside_s:
                picked.append(ResourceItem(it.key, inside_s))
                need_s = need_s - inside_s
        if need_s:
            return None
    if ports:
        already = Resources(picked)
        free = have - already
        chosen = _pick_port_items(free, ports, revocable)
        if chosen is None:
            return None
        picked.extend(chosen)
    return Resources(picked)


def fits(available: ResourcesLike, wanted: ResourcesLike, *, ports: int = 0) -> bool:
    """Whether `wanted` (plus `ports` arbitrary ports) can be taken from `available`."""
    return take(available, wanted, ports=ports) is not None


def split(
    available: ResourcesLike,
    per_task: ResourcesLike,
    *,
    ports: int = 0,
    limit: int | None = None,
) -> list[Resources]:
    """Carve as many task-sized pieces (at most `limit`) as fit; each piece is disjoint."""
    remaining = as_resources(available)
    want = as_resources(per_task)
    if want.is_empty() and not ports:
        raise ValueError("a task needs some resources")
    pieces: list[Resources] = []
    while limit is None or len(pieces) < limit:
        piece = take(remaining, want, ports=ports)
        if piece is None:
            break
        pieces.append(piece)
        remaining = remaining - piece
    return pieces


def _pick_port_items(
    available: Resources, count: int, revocable: bool
) -> list[ResourceItem] | None:
    items: list[ResourceItem] = []
    for it in _candidates(available, "ports", RANGES, revocable):
        chosen: list[tuple[int, int]] = []
        for begin, end in it.value:  # type: ignore[union-attr]
            if count == 0:
                break
            n = min(count, end - begin + 1)
            chosen.append((begin, begin + n - 1))
            count -= n
        if chosen:
            items.append(ResourceItem(it.key, tuple(chosen)))
        if count == 0:
            return items
    return None


def pick_ports(available: ResourcesLike, count: int) -> list[int]:
    """`count` port numbers from the offer's `ports` ranges (lowest first); ValueError when
    the offer has fewer."""
    items = _pick_port_items(as_resources(available), count, revocable=False)
    if items is None:
        raise ValueError(f"the offer does not have {count} free ports")
    return ports_of(Resources(items))


def ports_of(resources: Resources) -> list[int]:
    """The individual port numbers held by `resources`."""
    return [p for begin, end in resources.ports() for p in range(begin, end + 1)]


def new_task_id(prefix: str = "task") -> TaskID:
    """A fresh, unique task id (`<prefix>-<uuid4>`)."""
    return TaskID(value=f"{prefix}-{uuid.uuid4()}")


def shell_task(
    offer: Offer | AgentID | str,
    resources: ResourcesLike,
    command: str | Sequence[str],
    *,
    task_id: TaskID | str | None = None,
    name: str | None = None,
    environment: Mapping[str, str] | None = None,
    user: str | None = None,
    refinement: bool = False,
) -> TaskInfo:
    """A command task for the agent of `offer`. A string runs via `/bin/sh -c`; a list is
    executed directly (argv). `refinement` selects the resource format of the task (use True
    when the framework has the RESERVATION_REFINEMENT capability)."""
    if isinstance(offer, Offer):
        agent = offer.agent_id
    else:
        agent = offer if isinstance(offer, AgentID) else AgentID(value=offer)
    if isinstance(command, str):
        cmd = CommandInfo(shell=True, value=command, user=user)
    else:
        argv = list(command)
        if not argv:
            raise ValueError("empty command")
        cmd = CommandInfo(shell=False, value=argv[0], arguments=argv, user=user)
    if environment:
        cmd.environment = Environment(
            variables=[EnvironmentVariable(name=k, value=v) for k, v in environment.items()]
        )
    if task_id is None:
        tid = new_task_id(name or "task")
    else:
        tid = task_id if isinstance(task_id, TaskID) else TaskID(value=task_id)
    res = as_resources(resources)
    if isinstance(resources, str | Mapping) and isinstance(offer, Offer):
        # Quantities: take concrete resources from the offer so the task matches it.
        concrete = take(offer, res)
        if concrete is None:
            raise ValueError(f"{res} does not fit in offer {offer.id.value}")
        res = concrete
    return TaskInfo(
        name=name or tid.value,
        task_id=tid,
        agent_id=agent,
        resources=res.to_wire(refinement=refinement, with_allocation=True),
        command=cmd,
    )


def default_executor(
    executor_id: ExecutorID | str,
    resources: ResourcesLike = "cpus:0.1;mem:32;disk:10",
    *,
    offer: Offer | None = None,
    name: str | None = None,
    refinement: bool = False,
) -> ExecutorInfo:
    """An ExecutorInfo of type DEFAULT for `launch_group`: the agent's built-in default
    executor runs the group's tasks as nested containers (docs/agent.md). Mesos's master wants
    at least 0.01 cpus, 32 MB of memory and some disk for it. With `offer`, quantities are
    taken from that offer (as `shell_task` does)."""
    eid = executor_id if isinstance(executor_id, ExecutorID) else ExecutorID(value=executor_id)
    res = as_resources(resources)
    if offer is not None and isinstance(resources, str | Mapping):
        concrete = take(offer, res)
        if concrete is None:
            raise ValueError(f"{res} does not fit in offer {offer.id.value}")
        res = concrete
    return ExecutorInfo(
        type=ExecutorType.DEFAULT,
        executor_id=eid,
        name=name,
        resources=res.to_wire(refinement=refinement, with_allocation=offer is not None),
    )


__all__ = [
    "as_resources",
    "default_executor",
    "fits",
    "new_task_id",
    "pick_ports",
    "ports_of",
    "shell_task",
    "split",
    "take",
]
