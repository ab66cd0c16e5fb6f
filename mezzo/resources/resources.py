"""`Resources`: an immutable collection of resources with Mesos arithmetic.

Representation: a dict `ResourceKey -> value` (see keys.py and values.py) holding only
non-empty values, so two `Resources` are equal exactly when their dicts are. Shared resources
(persistent volumes with `shared`) are kept apart as a count per identical resource, because
Mesos adds and subtracts shared resources by copy count rather than by amount.

Semantics (decided here, matching Mesos):
- `a + b` merges per identity: scalars add, ranges union (merging adjacent/overlapping
  intervals), sets union; shared resources add copies.
- `a - b` is saturating: per identity, scalars subtract down to zero, ranges and sets take the
  difference (splitting intervals), shared copies decrement; whatever becomes empty is dropped.
  Nothing ever goes negative and subtracting something absent is a no-op. Use `contains` first
  when a shortfall is an error.
- Identity includes the reservation stack, allocation role, disk info, revocable, shared and
  provider: `cpus:1` and `cpus(eng):1` are different resources and never offset each other.
- Scalars are fixed-point thousandths, so comparisons are exact (no float tolerance needed).
- Persistent volumes and MOUNT disks are atomic, as in Mesos: `a - b` removes one only if `b`
  holds it whole (same size), and `contains` asks for the same size; a volume's identity is its
  disk source and persistence id (`mezzo.resources.disk.DiskKey`), not its container path/mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache

from mezzo.api import common as api
from mezzo.resources import values
from mezzo.resources.keys import Reservation, ResourceItem, ResourceKey
from mezzo.resources.parse import format_items, parse_items
from mezzo.resources.roles import DEFAULT_ROLE, ancestors, validate_role
from mezzo.resources.wire import check_totals, item_to_wire, items_from_wire

_SCALAR = values.SCALAR
_SCALE = values.SCALE
_add = values.add
_sub = values.sub
_contains = values.contains
_ranges_count = values.ranges_count

SharedCounts = dict[ResourceItem, int]


def _atomic(key: ResourceKey) -> bool:
    """Persistent volumes and MOUNT disks are taken or left whole, never split (Mesos's
    `subtractable`)."""
    disk = key[4]
    return disk is not None and getattr(disk, "atomic", False)


@lru_cache(maxsize=4096)
def _usable_roles(role: str) -> frozenset[str]:
    return frozenset((role, *ancestors(role)))


_tuple_new = tuple.__new__


def _with_allocation(key: ResourceKey, role: str | None) -> ResourceKey:
    """`key` with `allocation_role = role`: one shared key per (key object, role).

    Shared because a `ResourceKey` (a tuple subclass, which the garbage collector never
    untracks) is walked by every full collection: re-keyed per allocation, each agent's
    offered, allocated and filtered resources held keys of their own (issue 12: ~2.6 per
    agent at 9,000 agents). Found by the source key's identity (cheaper than hashing it;
    the source is kept with the result, so the identity is not reused); bounded."""
    held = _ALLOCATION_KEYS.get((id(key), role))
    if held is not None and held[0] is key:
        return held[1]
    # tuple.__new__ skips NamedTuple's argument handling.
    new = _tuple_new(ResourceKey, (key[0], key[1], key[2], role, key[4], key[5], key[6], key[7]))
    if len(_ALLOCATION_KEYS) >= 4096:
        _ALLOCATION_KEYS.clear()
    _ALLOCATION_KEYS[(id(key), role)] = (key, new)
    return new


_ALLOCATION_KEYS: dict[tuple[int, str | None], tuple[ResourceKey, ResourceKey]] = {}


class Resources:
    """An immutable multiset of resources. Build with `parse`, `from_wire` or from items."""

    __slots__ = ("_items", "_plain", "_q", "_shared")

    _items: dict[ResourceKey, values.Value]
    _shared: SharedCounts | None
    _q: dict[str, float] | None
    # `unallocate()`'s result, kept once computed: the master memoizes task resources per
    # shape, so every finished task of a shape recovers the same object (a hot path).
    _plain: Resources | None

    def __init__(self, items: Iterable[ResourceItem] = ()) -> None:
        merged: dict[ResourceKey, values.Value] = {}
        shared: SharedCounts = {}
        for key, value in items:
            if values.is_empty(value):
                continue
            if key.shared:
                item = ResourceItem(key, value)
                shared[item] = shared.get(item, 0) + 1
                continue
            cur = merged.get(key)
            merged[key] = value if cur is None else _add(cur, value)
        self._items = merged
        self._shared = shared or None
        self._q = None
        self._plain = None

    @classmethod
    def _new(cls, items: dict[ResourceKey, values.Value], shared: SharedCounts | None) -> Resources:
        # Hot-path constructor: trusts that `items` holds only non-empty, merged values.
        r = object.__new__(cls)
        r._items = items
        r._shared = shared or None
        r._q = None
        r._plain = None
        return r

    # ------------------------------------------------------------------ construction

    @classmethod
    def parse(cls, text: str, default_role: str = DEFAULT_ROLE) -> Resources:
        """Parse `cpus:4;mem:1024;ports:[31000-32000];disk(ops):100` or a JSON array."""
        items = parse_items(text, default_role)
        check_totals(items)
        return cls(items)

    @classmethod
    def from_wire(cls, resources: Iterable[api.Resource]) -> Resources:
        """Validate and convert wire resources (either reservation format)."""
        items = items_from_wire(resources)
        check_totals(items)
        return cls(items)

    @classmethod
    def from_quantities(
        cls, quantities: Mapping[str, float], role: str = DEFAULT_ROLE
    ) -> Resources:
        """Scalar resources from `{"cpus": 1, "mem": 32}` (unreserved, or statically reserved)."""
        from mezzo.resources.keys import STATIC

        reservations = () if role == DEFAULT_ROLE else (Reservation(STATIC, validate_role(role)),)
        return cls(
            ResourceItem(ResourceKey(name, _SCALAR, reservations), values.scalar_to_fixed(v))
            for name, v in quantities.items()
        )

    def to_wire(
        self, *, refinement: bool = True, with_allocation: bool = False
    ) -> list[api.Resource]:
        """Wire records. `refinement=False` gives the pre-refinement format (`role`, plus
        `reservation` on dynamic reservations); `allocation_info` only if `with_allocation`."""
        return [
            item_to_wire(it, refinement=refinement, with_allocation=with_allocation) for it in self
        ]

    # ------------------------------------------------------------------ arithmetic

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items and not other._shared:
            return self
        if not self._items and not self._shared:
            return other
        items = self._items.copy()
        for k, v in other._items.items():
            cur = items.get(k)
            if cur is None:
                items[k] = v
            elif type(v) is int:
                items[k] = cur + v  # type: ignore[operator]
            else:
                items[k] = _add(cur, v)
        shared = self._shared
        if other._shared:
            shared = dict(shared) if shared else {}
            for it, n in other._shared.items():
                shared[it] = shared.get(it, 0) + n
        return Resources._new(items, shared)

    def __sub__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items and not other._shared:
            return self
        items = self._items.copy()
        for k, v in other._items.items():
            cur = items.get(k)
            if cur is None:
                continue
            if type(v) is int:
                d = cur - v  # type: ignore[operator]
                if d > 0:
                    if k[4] is None or not _atomic(k):  # a volume or MOUNT disk goes only whole
                        items[k] = d
                elif d == 0 or k[4] is None or not _atomic(k):
                    del items[k]
            else:
                left = _sub(cur, v)
                if left:
                    items[k] = left
                else:
                    del items[k]
        shared = self._shared
        if shared and other._shared:
            shared = dict(shared)
            for it, n in other._shared.items():
                cur_n = shared.get(it)
                if cur_n is not None:
                    if cur_n > n:
                        shared[it] = cur_n - n
                    else:
                        del shared[it]
        return Resources._new(items, shared)

    def contains(self, other: Resources) -> bool:
        """True when `other` fits in `self` identity by identity (`other <= self`)."""
        items = self._items
        for k, v in other._items.items():
            cur = items.get(k)
            if cur is None:
                return False
            if type(v) is int:
                if cur != v and (cur < v or _atomic(k)):  # type: ignore[operator]
                    return False
            elif not _contains(cur, v):
                return False
        if other._shared:
            mine = self._shared or {}
            for it, n in other._shared.items():
                if mine.get(it, 0) < n:
                    return False
        return True

    def __le__(self, other: Resources) -> bool:
        return other.contains(self)

    def __ge__(self, other: Resources) -> bool:
        return self.contains(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self._items == other._items and (self._shared or {}) == (other._shared or {})

    __hash__ = None  # type: ignore[assignment]

    def shape(self) -> tuple[tuple[ResourceKey, values.Value], ...] | None:
        """A hashable value equal for equal resources (None when shared resources are in):
        for keeping one copy of each shape that many holders share (the master's tasks)."""
        if self._shared:
            return None
        return tuple(self._items.items())

    def __bool__(self) -> bool:
        return bool(self._items) or bool(self._shared)

    def is_empty(self) -> bool:
        return not self._items and not self._shared

    def __len__(self) -> int:
        """Number of single resources (each shared copy counts once)."""
        return len(self._items) + (sum(self._shared.values()) if self._shared else 0)

    def __iter__(self) -> Iterator[ResourceItem]:
        for k, v in self._items.items():
            yield ResourceItem(k, v)
        if self._shared:
            for it, n in self._shared.items():
                for _ in range(n):
                    yield it

    def __str__(self) -> str:
        return format_items(self)

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    # ------------------------------------------------------------------ quantities

    def quantities(self) -> dict[str, float]:
        """Amount per resource name, across all identities: scalars summed, ranges and sets
        counted by items. Each distinct shared resource counts once. Computed once, copied out."""
        q = self._q
        if q is None:
            acc: dict[str, int | float] = {}
            fixed: dict[str, int] = {}
            for k, v in self._items.items():
                name = k[0]  # index, not .name: NamedTuple properties cost on this path
                if isinstance(v, int):  # isinstance, not type() is: mypy narrows both branches
                    fixed[name] = fixed.get(name, 0) + v
                elif isinstance(v, tuple):
                    acc[name] = acc.get(name, 0) + _ranges_count(v)
                else:
                    acc[name] = acc.get(name, 0) + len(v)
            if self._shared:
                for it in self._shared:
                    if type(it.value) is int:
                        fixed[it.key.name] = fixed.get(it.key.name, 0) + it.value
                    else:
                        acc[it.key.name] = acc.get(it.key.name, 0) + values.quantity(it.value)
            q = {name: n / _SCALE for name, n in fixed.items()}
            for name, n in acc.items():
                q[name] = q.get(name, 0.0) + float(n)
            self._q = q
        return q.copy()

    def scalar(self, name: str) -> float:
        """Sum of the scalar resources called `name` across identities (0.0 if none)."""
        total = 0
        for k, v in self._items.items():
            if k.name == name and type(v) is int:
                total += v
        if self._shared:
            for it in self._shared:
                if it.key.name == name and type(it.value) is int:
                    total += it.value
        return total / _SCALE

    def cpus(self) -> float:
        return self.scalar("cpus")

    def mem(self) -> float:
        return self.scalar("mem")

    def disk(self) -> float:
        return self.scalar("disk")

    def gpus(self) -> float:
        return self.scalar("gpus")

    def ranges(self, name: str) -> list[tuple[int, int]]:
        """Union of the ranges resources called `name`, merged, as (begin, end) pairs."""
        acc: values.RangesValue = ()
        for k, v in self._items.items():
            if k.name == name and type(v) is tuple:
                acc = values.ranges_add(acc, v)
        return list(acc)

    def ports(self) -> list[tuple[int, int]]:
        return self.ranges("ports")

    def names(self) -> set[str]:
        out = {k.name for k in self._items}
        if self._shared:
            out.update(it.key.name for it in self._shared)
        return out

    # ------------------------------------------------------------------ filters

    def filter(self, keep: Callable[[ResourceKey], bool]) -> Resources:
        """The resources whose identity satisfies `keep`."""
        items = {k: v for k, v in self._items.items() if keep(k)}
        shared = {it: n for it, n in self._shared.items() if keep(it.key)} if self._shared else None
        return Resources._new(items, shared)

    def unreserved(self) -> Resources:
        return self.filter(lambda k: not k.reservations)

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources; with `role`, only those reserved to exactly that role."""
        if role is None:
            return self.filter(lambda k: bool(k.reservations))
        return self.filter(lambda k: bool(k.reservations) and k.reservations[-1].role == role)

    def allocatable_to(self, role: str) -> Resources:
        """What `role` may be offered: unreserved resources plus those reserved to `role`
        or to one of its ancestors (a reservation to `eng` serves `eng/web`)."""
        roles = _usable_roles(role)
        return self.filter(lambda k: not k.reservations or k.reservations[-1].role in roles)

    # Same meaning as allocatable_to (the name the allocator brief uses); for resources
    # reserved to exactly one role, use `reserved(role)`.
    reserved_to = allocatable_to

    def revocable(self) -> Resources:
        return self.filter(lambda k: k.revocable)

    def non_revocable(self) -> Resources:
        return self.filter(lambda k: not k.revocable)

    def shared(self) -> Resources:
        # Usually none: then the one empty value (the allocator keeps this per agent).
        return Resources._new({}, dict(self._shared)) if self._shared else EMPTY

    def non_shared(self) -> Resources:
        return Resources._new(self._items, None) if self._shared else self

    def persistent_volumes(self) -> Resources:
        """The persistent volumes (disk resources with `disk.persistence`)."""
        return self.filter(lambda k: k.disk is not None and b'"persistence"' in k.disk)

    def scalars(self) -> Resources:
        # Usually everything is scalar: then the same object (and its cached quantities).
        if not self._shared and all(k[1] == _SCALAR for k in self._items):
            return self
        return self.filter(lambda k: k.kind == _SCALAR)

    def named(self, *names: str) -> Resources:
        wanted = frozenset(names)
        return self.filter(lambda k: k.name in wanted)

    # ------------------------------------------------------------------ allocation

    def _map_keys(self, fn: Callable[[ResourceKey], ResourceKey]) -> Resources:
        # Re-keying can make two identities collide (e.g. unallocating cpus allocated to two
        # roles), so merge rather than overwrite.
        items: dict[ResourceKey, values.Value] = {}
        for k, v in self._items.items():
            nk = fn(k)
            cur = items.get(nk)
            items[nk] = v if cur is None else _add(cur, v)
        shared: SharedCounts | None = None
        if self._shared:
            shared = {}
            for it, n in self._shared.items():
                nit = ResourceItem(fn(it.key), it.value)
                shared[nit] = shared.get(nit, 0) + n
        return Resources._new(items, shared)

    def allocate(self, role: str) -> Resources:
        """The same resources with `allocation_info.role = role` on every one."""
        # Not memoized like `unallocate`: a result kept alive by a long-lived agent's free
        # resources outlives the young GC generations, and with the collector on the extra
        # promotions cost more full collections than the re-keying saves (measured).
        return self._map_keys(lambda k: k if k[3] == role else _with_allocation(k, role))

    def unallocate(self) -> Resources:
        """The same resources with allocation info removed."""
        plain = self._plain
        if plain is not None:
            return plain
        if all(k[3] is None for k in self._items) and not self._shared:
            return self  # not kept: a reference to itself would make a cycle only GC frees
        plain = self._map_keys(lambda k: k if k[3] is None else _with_allocation(k, None))
        self._plain = plain
        return plain

    def sole_allocation_role(self) -> str | None:
        """The allocation role every resource carries when they all carry the same one and
        none is shared (the common shape of a task's resources); otherwise None."""
        if self._shared:
            return None
        role = None
        for k in self._items:
            r = k[3]
            if r is None or (role is not None and r != role):
                return None
            role = r
        return role

    def allocations(self) -> dict[str, Resources]:
        """Allocated resources grouped by allocation role (unallocated ones are left out)."""
        groups: dict[str, dict[ResourceKey, values.Value]] = {}
        for k, v in self._items.items():
            if k.allocation_role is not None:
                groups.setdefault(k.allocation_role, {})[k] = v
        shared_groups: dict[str, SharedCounts] = {}
        if self._shared:
            for it, n in self._shared.items():
                if it.key.allocation_role is not None:
                    shared_groups.setdefault(it.key.allocation_role, {})[it] = n
        return {
            role: Resources._new(groups.get(role, {}), shared_groups.get(role))
            for role in {*groups, *shared_groups}
        }

    def without_allocation(self) -> Resources:
        """The resources that carry no allocation info (a filter; compare `unallocate`)."""
        return self.filter(lambda k: k.allocation_role is None)

    # ------------------------------------------------------------------ reservations

    def push_reservation(self, reservation: Reservation) -> Resources:
        """Refine every resource with one more reservation on top of its stack (RESERVE)."""
        return self._map_keys(lambda k: k._replace(reservations=(*k.reservations, reservation)))

    def pop_reservation(self) -> Resources:
        """Drop the top reservation of every reserved resource (UNRESERVE)."""
        return self._map_keys(
            lambda k: k._replace(reservations=k.reservations[:-1]) if k.reservations else k
        )

    def to_unreserved(self) -> Resources:
        """Every resource with its whole reservation stack removed (quota accounting)."""
        return self._map_keys(lambda k: k._replace(reservations=()) if k.reservations else k)


EMPTY = Resources()
