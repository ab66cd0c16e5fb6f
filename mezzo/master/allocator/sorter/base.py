"""The Sorter contract: orders clients (roles or frameworks) for the allocator.

A sorter knows nothing of agents, offers or filters. It tracks, per client, the quantities
allocated to it (a plain `dict[str, float]`, scalar resources only) and a weight, and yields the
*active* clients in the order the allocator should serve them. Implementations: `drf` (weighted
dominant resource fairness) and `random` (weighted random order).

The pool the shares are computed against (the cluster total) is a `Totals` object that several
sorters may share: the hierarchical allocator keeps one per cluster and hands it to every sorter,
so adding an agent is one update rather than one per sorter. A sorter notices a changed pool by
its version number and recomputes lazily, on the next ordering request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping

Quantities = dict[str, float]


class Totals:
    """The shared pool of resource quantities shares are measured against (versioned)."""

    __slots__ = ("quantities", "version")

    def __init__(self, quantities: Mapping[str, float] | None = None) -> None:
        self.quantities: Quantities = dict(quantities or {})
        self.version = 0

    def add(self, quantities: Mapping[str, float]) -> None:
        q = self.quantities
        for name, value in quantities.items():
            q[name] = q.get(name, 0.0) + value
        self.version += 1

    def remove(self, quantities: Mapping[str, float]) -> None:
        q = self.quantities
        for name, value in quantities.items():
            left = q.get(name, 0.0) - value
            # Float sums drift; treat a residue as nothing so a share never divides by ~0.
            if left <= 1e-9:
                q.pop(name, None)
            else:
                q[name] = left
        self.version += 1


def add_quantities(into: Quantities, other: Mapping[str, float]) -> None:
    """`into += other`, in place."""
    for name, value in other.items():
        into[name] = into.get(name, 0.0) + value


def subtract_quantities(into: Quantities, other: Mapping[str, float]) -> None:
    """`into -= other`, in place; names that reach (about) zero are dropped."""
    for name, value in other.items():
        left = into.get(name, 0.0) - value
        if left <= 1e-9:
            into.pop(name, None)
        else:
            into[name] = left


class Sorter(ABC):
    """Orders clients. Every client starts active with weight 1 unless told otherwise."""

    def __init__(
        self,
        totals: Totals | None = None,
        *,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.totals = totals if totals is not None else Totals()
        # Resource names left out of shares (--fair_sharing_excluded_resource_names).
        self.excluded = excluded

    # -- membership --------------------------------------------------------------------------
    @abstractmethod
    def add(self, client: str, *, weight: float = 1.0, active: bool = True) -> None:
        """Start tracking `client` (no allocation). Adding a known client is an error."""

    @abstractmethod
    def remove(self, client: str) -> None:
        """Forget `client` and its allocation."""

    @abstractmethod
    def activate(self, client: str) -> None: ...

    @abstractmethod
    def deactivate(self, client: str) -> None:
        """Keep the client's allocation but leave it out of the order."""

    @abstractmethod
    def update_weight(self, client: str, weight: float) -> None: ...

    @abstractmethod
    def __contains__(self, client: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int:
        """Number of clients, active or not."""

    # -- allocations -------------------------------------------------------------------------
    @abstractmethod
    def allocated(self, client: str, quantities: Mapping[str, float]) -> None:
        """Charge `quantities` to `client`."""

    @abstractmethod
    def unallocated(self, client: str, quantities: Mapping[str, float]) -> None:
        """Credit `quantities` back from `client`."""

    @abstractmethod
    def allocation(self, client: str) -> Quantities:
        """A copy of the quantities currently charged to `client`."""

    @abstractmethod
    def share(self, client: str) -> float:
        """The client's weighted share (0 for sorters without a notion of share)."""

    # -- ordering ----------------------------------------------------------------------------
    @abstractmethod
    def __iter__(self) -> Iterator[str]:
        """Active clients in order, lazily. The iterator is invalidated by any mutation of the
        sorter: consumers stop iterating before they charge or credit a client."""

    def sort(self) -> list[str]:
        """A snapshot of the active clients in order."""
        return list(self)

    def walk_order(self) -> Iterator[str]:
        """The order a role-tree walk reads (`RoleWalk`): the snapshot `sort()` by default. A
        sorter whose lazy `__iter__` has no side effects (no random draws) returns that
        instead; the walk snapshots what it has not read yet before anything changes."""
        return iter(self.sort())
