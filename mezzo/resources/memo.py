"""A bounded memo for values derived from wire resource lists, keyed by their JSON encoding.

Tasks mostly come in a few shapes, and turning a wire resource list into `Resources` (parsing
with its validation) is the largest single cost of a launch decision, in the master (ACCEPT)
as in the agent (RUN_TASK). `Resources` values are immutable, so sharing them is safe. A value
whose computation raises (a ValidationError) is not stored, so bad input is checked every time.
The memo is bounded by clearing it when full.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 4096


class WireMemo(Generic[T]):
    """`get(key, make)`: the memoized `make()` for `key` (see the module docstring)."""

    __slots__ = ("_limit", "_values")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._values: dict[Hashable, T] = {}
        self._limit = limit

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        value = self._values.get(key)
        if value is None:
            value = make()  # raises before anything is stored
            if len(self._values) >= self._limit:
                self._values.clear()
            self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
