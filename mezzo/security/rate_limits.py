"""Framework rate limiting (`--rate_limits`), as Mesos's master does it (mesos.proto
`RateLimits`, src/master/master.cpp `Master::consume`).

The flag is Mesos's JSON, inline or a file (`file:///path` or `/path`):

    {"limits": [{"principal": "analytics", "qps": 10, "capacity": 50},
                {"principal": "ops"}],
     "aggregate_default_qps": 5, "aggregate_default_capacity": 100}

- a principal in `limits` with `qps` gets its own limiter: its calls are let through at most
  `qps` per second, evenly spaced (libprocess's `RateLimiter`: no burst), later ones wait;
  once `capacity` calls are waiting, the next one is refused (Mesos: "Message ... dropped:
  capacity(N) exceeded"; mezzo answers 429). No `capacity`: they all wait;
- a principal in `limits` without `qps` is not throttled;
- every other call of a registered framework (no principal, or one not listed) shares the
  aggregate limiter of `aggregate_default_qps` / `aggregate_default_capacity`, if given.

`RateLimits.admit(principal, registered, now)` is pure (time is passed in): it answers how
long the call must wait, or raises `RateLimited`; the caller calls `done(ticket)` once the
wait is over (the call no longer counts against the capacity). The master's HTTP shell
(`mezzo.master.http`) does the waiting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from mezzo.core.errors import ConfigError
from mezzo.security.credentials import read_path_flag

__all__ = ["Limiter", "RateLimited", "RateLimits", "load_rate_limits"]


class RateLimited(Exception):
    """The limiter's capacity is exhausted: the call is dropped (429)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"capacity({capacity}) exceeded")
        self.capacity = capacity


@dataclass
class Limiter:
    """One bounded rate limiter: `qps` permits a second, at most `capacity` calls waiting."""

    qps: float
    capacity: int | None = None
    waiting: int = 0  # calls admitted that have not had their permit yet
    next_permit: float = -math.inf

    def admit(self, now: float) -> float:
        """Seconds until the call's permit (0: at once); RateLimited when full."""
        if self.capacity is not None and self.waiting >= self.capacity:
            raise RateLimited(self.capacity)
        at = max(now, self.next_permit)
        self.next_permit = at + 1.0 / self.qps
        self.waiting += 1
        return at - now

    def done(self) -> None:
        self.waiting = max(0, self.waiting - 1)


@dataclass
class RateLimits:
    # principal -> its limiter, or None for "listed without qps: not throttled".
    limiters: dict[str, Limiter | None] = field(default_factory=dict)
    default: Limiter | None = None

    @classmethod
    def parse(cls, doc: Any) -> RateLimits:
        """From the JSON document, with Mesos's checks (one-line ConfigError)."""
        if not isinstance(doc, dict):
            raise ConfigError("--rate_limits: expected a JSON object")
        unknown = set(doc) - {"limits", "aggregate_default_qps", "aggregate_default_capacity"}
        if unknown:
            raise ConfigError(f"--rate_limits: unknown field(s) {sorted(unknown)}")
        entries = doc.get("limits", [])
        if not isinstance(entries, list):
            raise ConfigError("--rate_limits: 'limits' must be a list")
        out = cls()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("principal"), str):
                raise ConfigError("--rate_limits: every limit needs a string 'principal'")
            extra = set(entry) - {"principal", "qps", "capacity"}
            if extra:
                raise ConfigError(f"--rate_limits: unknown field(s) {sorted(extra)} in a limit")
            principal = entry["principal"]
            if principal in out.limiters:
                raise ConfigError(f"--rate_limits: Duplicate principal {principal} found in "
                                  f"RateLimits configuration")
            qps = _qps(entry.get("qps"), "qps")
            out.limiters[principal] = None if qps is None else Limiter(
                qps, _capacity(entry.get("capacity"), "capacity"))
        qps = _qps(doc.get("aggregate_default_qps"), "aggregate_default_qps")
        if qps is not None:
            out.default = Limiter(qps, _capacity(doc.get("aggregate_default_capacity"),
                                                 "aggregate_default_capacity"))
        return out

    def limiter_for(self, principal: str | None, registered: bool) -> Limiter | None:
        """Which limiter a call of `principal` (None: none) goes through, if any; the
        aggregate one only for a registered framework's calls, as Mesos."""
        if principal is not None and principal in self.limiters:
            return self.limiters[principal]
        return self.default if registered else None

    def admit(self, principal: str | None, registered: bool, now: float) -> tuple[float, Limiter | None]:
        """(seconds to wait, the limiter to call `done` on after the wait)."""
        limiter = self.limiter_for(principal, registered)
        if limiter is None:
            return 0.0, None
        return limiter.admit(now), limiter


def _qps(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
            or math.isinf(value):
        raise ConfigError(f"--rate_limits: Invalid {name}: {value}. It must be a positive number")
    return float(value)


def _capacity(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"--rate_limits: {name} must be a non-negative integer, got {value!r}")
    return value


def load_rate_limits(value: str) -> RateLimits:
    """`--rate_limits`: inline JSON or a path (`file://` allowed) to a JSON file."""
    text = value if value.lstrip().startswith("{") else read_path_flag("rate_limits", value)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--rate_limits: invalid JSON: {exc}") from None
    return RateLimits.parse(doc)
