"""`ScalarTally`: a running sum of the scalar resources of many `Resources` values, exact.

What `/metrics/snapshot` needs of a sum of thousands of values (the agents' totals, the tasks'
resources, the outstanding offers) is the scalar quantities of that sum, all and revocable
only. Kept as values come and go, the sum costs O(1) per change instead of O(values) per
snapshot (issue 12). It is exact, not an approximation: scalars are fixed-point integers
(`values.SCALE`), so adding and removing integers gives what `Resources` addition then
`quantities()` would, and a shared resource counts once however many values hold it, as in
`quantities()` of a sum. Ranges and sets are not kept (no metric reads them).
"""

from __future__ import annotations

from collections.abc import Iterable

from mezzo.resources import values
from mezzo.resources.keys import ResourceItem
from mezzo.resources.resources import Resources


class ScalarTally:
    """The scalar quantities of the sum of the `Resources` added and not removed."""

    __slots__ = ("_fixed", "_revocable", "_shared")

    def __init__(self) -> None:
        self._fixed: dict[str, int] = {}  # name -> fixed-point sum (non-shared)
        self._revocable: dict[str, int] = {}  # the revocable part of `_fixed`
        self._shared: dict[ResourceItem, int] = {}  # shared scalar item -> holders

    def add(self, resources: Resources, sign: int = 1) -> None:
        fixed = self._fixed
        for key, value in resources._items.items():
            if type(value) is int:
                name = key[0]
                fixed[name] = fixed.get(name, 0) + sign * value
                if key.revocable:
                    self._revocable[name] = self._revocable.get(name, 0) + sign * value
        if resources._shared:
            shared = self._shared
            for item, n in resources._shared.items():
                if type(item.value) is int:
                    left = shared.get(item, 0) + sign * n
                    if left:
                        shared[item] = left
                    else:
                        del shared[item]

    def remove(self, resources: Resources) -> None:
        self.add(resources, -1)

    def absorb(self, other: ScalarTally) -> None:
        """Add everything `other` holds (to combine per-holder tallies into one sum)."""
        for mine, theirs in ((self._fixed, other._fixed), (self._revocable, other._revocable)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n
        for item, n in other._shared.items():
            self._shared[item] = self._shared.get(item, 0) + n

    def quantities(self, *, revocable: bool = False) -> dict[str, float]:
        """`quantities()` of the sum's scalars (of its revocable part if `revocable`)."""
        fixed = dict(self._revocable if revocable else self._fixed)
        for item, n in self._shared.items():
            if n > 0 and (item.key.revocable or not revocable):
                name = item.key.name
                fixed[name] = fixed.get(name, 0) + item.value  # type: ignore[operator]
        return {name: n / values.SCALE for name, n in fixed.items() if n}

    @classmethod
    def of(cls, items: Iterable[Resources]) -> ScalarTally:
        tally = cls()
        for resources in items:
            tally.add(resources)
        return tally
