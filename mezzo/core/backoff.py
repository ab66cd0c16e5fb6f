"""Exponential backoff with an optional jitter source (injected for determinism)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays start at `initial`, multiply by `factor` after each failure, stop at `maximum`."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._jitter = jitter if jitter is not None else random.random
        self._current = initial

    def next(self) -> float:
        """The delay before the next attempt (with jitter in [0.5, 1.0] of the nominal delay)."""
        delay = self._current * (0.5 + 0.5 * self._jitter())
        self._current = min(self._current * self.factor, self.maximum)
        return delay

    def first(self) -> float:
        """A delay of the first step (jittered as `next`), leaving the progression as it is."""
        return self.initial * (0.5 + 0.5 * self._jitter())

    def reset(self) -> None:
        self._current = self.initial
