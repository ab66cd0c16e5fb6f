"""Quota bookkeeping for one allocation cycle (Mesos 1.9+ semantics, pure).

A role's quota is a guarantee (resources it is assured of, held back from other roles as
headroom) and a limit (resources it may never exceed). Both apply to the role's consumption:
what is allocated to the role and its descendants plus what is reserved to them and not
allocated. `QuotaBook` keeps the configured quotas; at the start of a cycle the allocator hands
it every quota role's consumption and the unreserved resources nobody holds, and it answers:
- `fits(role, q)`: may `q` more (unreserved) go to `role` without any quota'd ancestor-or-self
  exceeding its limit?
- `prioritized(role)`: is `role` (or an ancestor) still short of its guarantee? Such roles are
  offered to first.
- `headroom_ok(q)`: after giving `q` to a role that is not short of its guarantee, is enough left
  unallocated for the guarantees still unmet?
and `charge(role, q)` keeps the answers current as the cycle allocates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Quantities = dict[str, float]


@dataclass(frozen=True, slots=True)
class Quota:
    """Guarantees and limits of one role (scalar resource name -> quantity)."""

    guarantees: Mapping[str, float] = field(default_factory=dict)
    limits: Mapping[str, float] = field(default_factory=dict)


def lineage(role: str) -> list[str]:
    """The role and its ancestors: `a/b/c` -> [`a/b/c`, `a/b`, `a`]."""
    parts = role.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def within(role: str, ancestor: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


def _names_of(quota: Quota | None) -> set[str]:
    return set() if quota is None else {*quota.guarantees, *quota.limits}


class QuotaBook:
    """Configured quotas and, during a cycle, the consumption they are checked against."""

    def __init__(self) -> None:
        self.quotas: dict[str, Quota] = {}
        self.consumed: dict[str, Quantities] = {}
        self._free: Quantities = {}  # unreserved, unallocated quantities in the cluster
        self._required: Quantities = {}  # headroom the unmet guarantees need
        self._short: set[str] = set()  # quota roles below their guarantee
        self._prioritized: dict[str, bool] = {}  # answers of `prioritized` while `_short` holds
        self._lineage: dict[str, list[str]] = {}  # role -> its quota'd ancestors-or-self
        # The resource names some quota names: the only ones `charge` has to follow.
        self._names: tuple[str, ...] = ()
        self._name_counts: dict[str, int] = {}  # name -> how many quotas name it
        self._limit_checks: dict[str, tuple[tuple[Quantities, str, float], ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.quotas)

    def set(self, role: str, quota: Quota | None) -> None:
        old = self.quotas.get(role)
        if quota is None or (not quota.guarantees and not quota.limits):
            self.quotas.pop(role, None)
            quota = None
        else:
            self.quotas[role] = quota
        self._lineage.clear()
        self._limit_checks = {}
        # The names are counted per quota, so that setting one role's quota costs what that
        # quota names, not what every quota names (an UPDATE_QUOTA of thousands of roles).
        changed = False
        for name in _names_of(old):
            self._name_counts[name] -= 1
            if not self._name_counts[name]:
                del self._name_counts[name]
                changed = True
        for name in _names_of(quota):
            changed = changed or name not in self._name_counts
            self._name_counts[name] = self._name_counts.get(name, 0) + 1
        if changed:
            self._names = tuple(sorted(self._name_counts))

    def _quota_roles(self, role: str) -> list[str]:
        found = self._lineage.get(role)
        if found is None:
            found = self._lineage[role] = [r for r in lineage(role) if r in self.quotas]
        return found

    # -- one cycle ---------------------------------------------------------------------------
    def begin(self, consumed: Mapping[str, Quantities], free: Quantities) -> None:
        self.consumed = {role: dict(consumed.get(role, {})) for role in self.quotas}
        self._free = dict(free)
        self._limit_checks = {}
        self._recompute()

    def _limits_of(self, role: str) -> tuple[tuple[Quantities, str, float], ...]:
        """(consumption, name, limit) of every limit on `role` and its ancestors, for `fits`
        (built once per role and cycle: the consumption dicts are this cycle's)."""
        checks = self._limit_checks.get(role)
        if checks is None:
            checks = self._limit_checks[role] = tuple(
                (self.consumed[quota_role], name, limit + 1e-9)
                for quota_role in self._quota_roles(role)
                for name, limit in self.quotas[quota_role].limits.items()
            )
        return checks

    def _recompute(self) -> None:
        required: Quantities = {}
        short: set[str] = set()
        for role, quota in self.quotas.items():
            used = self.consumed.get(role, {})
            for name, guarantee in quota.guarantees.items():
                missing = guarantee - used.get(name, 0.0)
                if missing > 1e-9:
                    short.add(role)
                    required[name] = required.get(name, 0.0) + missing
        self._required = required
        self._short = short
        self._prioritized = {}

    def prioritized(self, role: str) -> bool:
        answer = self._prioritized.get(role)
        if answer is None:
            short = self._short
            answer = self._prioritized[role] = any(r in short for r in self._quota_roles(role))
        return answer

    @property
    def any_short(self) -> bool:
        return bool(self._short)

    def fits(self, role: str, q: Mapping[str, float]) -> bool:
        checks = self._limit_checks.get(role)
        if checks is None:
            checks = self._limits_of(role)
        for used, name, ceiling in checks:
            if used.get(name, 0.0) + q.get(name, 0.0) > ceiling:
                return False
        return True

    def headroom_ok(self, q: Mapping[str, float]) -> bool:
        for name, needed in self._required.items():
            if self._free.get(name, 0.0) - q.get(name, 0.0) < needed - 1e-9:
                return False
        return True

    def charge(self, role: str, q: Mapping[str, float]) -> None:
        """`q` more went to `role`. Only the names some quota names are followed (the others
        decide nothing), so `consumed` is current for those names only."""
        names = [(name, q[name]) for name in self._names if name in q]
        if not names:
            return
        free = self._free
        for name, value in names:
            free[name] = free.get(name, 0.0) - value
        for quota_role in self._quota_roles(role):
            used = self.consumed[quota_role]
            guarantees = self.quotas[quota_role].guarantees
            for name, value in names:
                before = used.get(name, 0.0)
                used[name] = before + value
                guarantee = guarantees.get(name)
                if guarantee is not None:
                    # Only this role's shortfall changes: adjust the headroom it needs.
                    old_missing = max(0.0, guarantee - before)
                    new_missing = max(0.0, guarantee - before - value)
                    if old_missing != new_missing:
                        self._required[name] = self._required.get(name, 0.0) - old_missing + new_missing
            if quota_role in self._short:
                for name, guarantee in guarantees.items():
                    if guarantee - used.get(name, 0.0) > 1e-9:
                        break
                else:
                    self._short.discard(quota_role)
                    self._prioritized = {}
