"""Weighted dominant resource fairness (DRF) sorter.

A client's share is the largest fraction of the pool it holds of any one resource, divided by its
weight; resources named in `excluded` (--fair_sharing_excluded_resource_names) do not count.
Clients are ordered by share, then by the number of allocations they currently hold, then by
name — the same order as Apache Mesos's DRF sorter, so equal clients are served predictably.

Shares are maintained incrementally and lazily, as Apache Mesos's DRFSorter does with its
`dirty` flag: charging or crediting a client only updates its allocation and marks it dirty; the
next ordering request recomputes the share of each dirty client alone and moves its key within a
`SortedList` (O(log n)) — once, however often the client was charged and credited in between
(a master charges and credits a framework several times per task between allocation runs).
Only a change of the pool (an agent added or removed) makes every share stale; then the order is
rebuilt once, lazily, on the next ordering request — never per agent of an allocation cycle.

Invariant: an active client's `key` is the key it has in `_order`; for a dirty client that key
(and `share`) may be stale until the next ordering request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from operator import itemgetter

from sortedcontainers import SortedList

from mezzo.master.allocator.sorter.base import (
    Quantities,
    Sorter,
    Totals,
    add_quantities,
    subtract_quantities,
)

_NAME = itemgetter(2)  # of a client's order key (share, count, name)


class _Client:
    __slots__ = ("active", "allocation", "count", "key", "name", "share", "weight")

    def __init__(self, name: str, weight: float, active: bool) -> None:
        self.name = name
        self.weight = weight
        self.active = active
        self.share = 0.0
        self.count = 0  # allocations currently held (charges minus credits)
        self.allocation: Quantities = {}
        self.key: tuple[float, int, str] = (0.0, 0, name)


class DRFSorter(Sorter):
    """Orders active clients by weighted dominant share (see module docstring)."""

    def __init__(
        self,
        totals: Totals | None = None,
        *,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(totals, excluded=excluded)
        self._clients: dict[str, _Client] = {}
        self._order: SortedList[tuple[float, int, str]] = SortedList()  # keys of active clients
        # 1/total per counted resource, valid for `_seen_version` of the pool.
        self._inverse: dict[str, float] = {}
        self._seen_version = -1
        # Clients charged, credited or reweighted since their key was last computed.
        self._dirty: dict[str, _Client] = {}

    # -- share arithmetic --------------------------------------------------------------------
    def _refresh_inverse(self) -> bool:
        """Recompute 1/total if the pool changed; True when every share is now stale."""
        if self._seen_version == self.totals.version:
            return False
        excluded = self.excluded
        self._inverse = {
            name: 1.0 / total
            for name, total in self.totals.quantities.items()
            if total > 0.0 and name not in excluded
        }
        self._seen_version = self.totals.version
        return True

    def _compute_share(self, client: _Client) -> float:
        inverse = self._inverse
        share = 0.0
        for name, value in client.allocation.items():
            fraction = value * inverse.get(name, 0.0)
            if fraction > share:
                share = fraction
        return share / client.weight

    def _rebuild(self) -> None:
        """Recompute every share and the whole order (pool or weights changed)."""
        keys = []
        for client in self._clients.values():
            client.share = self._compute_share(client)
            client.key = (client.share, client.count, client.name)
            if client.active:
                keys.append(client.key)
        self._order = SortedList(keys)
        self._dirty.clear()

    def _ensure_fresh(self) -> None:
        if self._refresh_inverse():
            self._rebuild()  # covers the dirty clients too
        elif self._dirty:
            order = self._order
            for client in self._dirty.values():
                new_share = self._compute_share(client)
                new_key = (new_share, client.count, client.name)
                if client.active and new_key != client.key:
                    order.remove(client.key)
                    order.add(new_key)
                client.share = new_share
                client.key = new_key
            self._dirty.clear()

    def _get(self, client: str) -> _Client:
        try:
            return self._clients[client]
        except KeyError:
            raise KeyError(f"unknown sorter client {client!r}") from None

    # -- membership --------------------------------------------------------------------------
    def add(self, client: str, *, weight: float = 1.0, active: bool = True) -> None:
        if client in self._clients:
            raise ValueError(f"sorter client {client!r} already added")
        if weight <= 0:
            raise ValueError(f"weight must be positive, not {weight}")
        record = _Client(client, weight, active)
        self._clients[client] = record
        if active:
            self._order.add(record.key)

    def remove(self, client: str) -> None:
        record = self._clients.pop(client)
        self._dirty.pop(client, None)
        if record.active:
            self._order.remove(record.key)

    def activate(self, client: str) -> None:
        record = self._get(client)
        if not record.active:
            record.active = True
            self._order.add(record.key)

    def deactivate(self, client: str) -> None:
        record = self._get(client)
        if record.active:
            record.active = False
            self._order.remove(record.key)

    def update_weight(self, client: str, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"weight must be positive, not {weight}")
        record = self._get(client)
        record.weight = weight
        self._dirty[client] = record

    def __contains__(self, client: object) -> bool:
        return client in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    # -- allocations -------------------------------------------------------------------------
    def allocated(self, client: str, quantities: Mapping[str, float]) -> None:
        record = self._get(client)
        add_quantities(record.allocation, quantities)
        record.count += 1
        self._dirty[client] = record

    def unallocated(self, client: str, quantities: Mapping[str, float]) -> None:
        record = self._get(client)
        subtract_quantities(record.allocation, quantities)
        if record.count > 0:
            record.count -= 1
        self._dirty[client] = record

    def allocation(self, client: str) -> Quantities:
        return dict(self._get(client).allocation)

    def share(self, client: str) -> float:
        self._ensure_fresh()
        return self._get(client).share

    # -- ordering ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        self._ensure_fresh()
        return map(_NAME, self._order)

    def sort(self) -> list[str]:
        self._ensure_fresh()
        return [key[2] for key in self._order]

    def walk_order(self) -> Iterator[str]:
        # Lazy: an allocation cycle usually reads only the first few clients.
        if self._dirty or self._seen_version != self.totals.version:
            self._ensure_fresh()
        return map(_NAME, self._order)
