"""Weighted random sorter: every ordering request draws a fresh random order.

A client of weight w comes before one of weight 1 about w times as often (weighted sampling
without replacement, drawn with the seeded RNG the sorter is given, so runs are reproducible).
Allocations are tracked only so the allocator can report them; they do not affect the order.
With equal weights the order is drawn lazily (one swap per client consumed), since the
allocator usually stops after the first few clients of each agent.
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterator, Mapping

from mezzo.master.allocator.sorter.base import (
    Quantities,
    Sorter,
    Totals,
    add_quantities,
    subtract_quantities,
)


class RandomSorter(Sorter):
    """Orders active clients in weighted random order (see module docstring)."""

    def __init__(
        self,
        totals: Totals | None = None,
        *,
        excluded: frozenset[str] = frozenset(),
        rng: _random.Random | None = None,
    ) -> None:
        super().__init__(totals, excluded=excluded)
        self._rng = rng if rng is not None else _random.Random(0)
        self._weights: dict[str, float] = {}
        self._allocations: dict[str, Quantities] = {}
        self._active: dict[str, None] = {}  # insertion-ordered set, for reproducibility
        self._unequal_weights = 0  # number of clients whose weight is not 1

    def add(self, client: str, *, weight: float = 1.0, active: bool = True) -> None:
        if client in self._weights:
            raise ValueError(f"sorter client {client!r} already added")
        if weight <= 0:
            raise ValueError(f"weight must be positive, not {weight}")
        self._weights[client] = weight
        self._unequal_weights += weight != 1.0
        self._allocations[client] = {}
        if active:
            self._active[client] = None

    def remove(self, client: str) -> None:
        weight = self._weights.pop(client)
        self._unequal_weights -= weight != 1.0
        del self._allocations[client]
        self._active.pop(client, None)

    def activate(self, client: str) -> None:
        if client not in self._weights:
            raise KeyError(f"unknown sorter client {client!r}")
        self._active[client] = None

    def deactivate(self, client: str) -> None:
        if client not in self._weights:
            raise KeyError(f"unknown sorter client {client!r}")
        self._active.pop(client, None)

    def update_weight(self, client: str, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"weight must be positive, not {weight}")
        old = self._weights[client]
        self._unequal_weights += (weight != 1.0) - (old != 1.0)
        self._weights[client] = weight

    def __contains__(self, client: object) -> bool:
        return client in self._weights

    def __len__(self) -> int:
        return len(self._weights)

    def allocated(self, client: str, quantities: Mapping[str, float]) -> None:
        add_quantities(self._allocations[client], quantities)

    def unallocated(self, client: str, quantities: Mapping[str, float]) -> None:
        subtract_quantities(self._allocations[client], quantities)

    def allocation(self, client: str) -> Quantities:
        return dict(self._allocations[client])

    def share(self, client: str) -> float:
        if client not in self._weights:
            raise KeyError(f"unknown sorter client {client!r}")
        return 0.0

    def __iter__(self) -> Iterator[str]:
        pool = list(self._active)
        rng = self._rng
        if self._unequal_weights == 0:
            # Lazy Fisher-Yates: each yielded client costs one random draw and one swap.
            n = len(pool)
            for i in range(n):
                j = rng.randrange(i, n)
                pool[i], pool[j] = pool[j], pool[i]
                yield pool[i]
            return
        # Weighted sampling without replacement (Efraimidis-Spirakis): key = u ** (1 / w).
        weights = self._weights
        keyed = sorted(
            ((rng.random() ** (1.0 / weights[c]), c) for c in pool),
            reverse=True,
        )
        for _, client in keyed:
            yield client
