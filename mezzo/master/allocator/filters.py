"""Refuse ("decline") filters of one agent, stored compactly as bit masks.

A filter says: framework F, for role R, does not want (a subset of) resources `refused` from this
agent until `expiry`. Each (framework, role) pair the allocator tracks owns one bit; filters that
share an expiry and refused resources share one group whose mask has a bit per pair. Declines
made in the same allocation cycle with the same `refuse_seconds` land in one group, so an agent
declined by a thousand frameworks costs one small integer, not a thousand records — which is what
lets a 50,000-agent cluster with every framework declining everything stay cheap.

A filter applies when the resources about to be offered are contained in `refused` (Mesos's
semantics): if more becomes available on the agent, the framework sees the agent again.
Expired groups are dropped lazily, when the agent is next looked at.

Neither the filters nor their groups are tracked by the garbage collector (`gc=False`, and the
groups in a tuple, which the collector untracks, rather than a list, which it never does):
every agent has its filters, and each tracked object per agent is walked by every full
collection (issue 12: 9,000 agents). Sound because they cannot be part of a reference cycle:
they hold numbers, `Resources` (which hold no filters) and their own groups.
"""

from __future__ import annotations

import msgspec

from mezzo.resources import Resources


class _Group(msgspec.Struct, gc=False):
    expiry: float
    refused: Resources
    mask: int


def _same(a: Resources, b: Resources) -> bool:
    return a is b or a == b


class AgentFilters(msgspec.Struct, gc=False):
    """The refuse filters installed on one agent."""

    groups: tuple[_Group, ...] = ()
    # The union of all group masks (some may have expired); the groups' masks are
    # disjoint (a pair's new filter replaces its old one), so its bits are the pairs.
    mask: int = 0

    def __bool__(self) -> bool:
        return self.mask != 0

    def count(self) -> int:
        """Number of (framework, role) pairs with a filter here (expired ones included)."""
        return self.mask.bit_count()

    def install(self, bit: int, refused: Resources, expiry: float) -> None:
        """Filter `refused` for the pair owning `bit` until `expiry` (replacing its filter)."""
        self.install_mask(1 << bit, refused, expiry)

    def install_mask(self, flag: int, refused: Resources, expiry: float) -> None:
        """`install` for every pair whose bit is set in `flag`."""
        if self.mask & flag:
            self.clear(flag)
        # Newest groups are the likeliest match: declines of one cycle share expiry and refusal.
        for group in reversed(self.groups):
            if group.expiry == expiry and _same(group.refused, refused):
                group.mask |= flag
                break
        else:
            self.groups = (*self.groups, _Group(expiry, refused, flag))
        self.mask |= flag

    def clear(self, bits: int) -> None:
        """Remove the filters of every pair whose bit is set in `bits`."""
        if not self.mask & bits:
            return
        keep = ~bits
        groups = []
        for group in self.groups:
            group.mask &= keep
            if group.mask:
                groups.append(group)
        self.groups = tuple(groups)
        self.mask &= keep

    def valid(self, available: Resources, now: float) -> tuple[int, float]:
        """The pairs filtering all of `available` at `now`, and until when that answer holds
        (the earliest expiry among the live groups). Drops expired groups."""
        mask = 0
        until = float("inf")
        live = []
        union = 0
        for group in self.groups:
            if group.expiry <= now:
                continue
            live.append(group)
            union |= group.mask
            if group.expiry < until:
                until = group.expiry
            if _same(group.refused, available) or group.refused.contains(available):
                mask |= group.mask
        if len(live) != len(self.groups):
            self.groups = tuple(live)
            self.mask = union
        return mask, until

    def is_filtered(self, bit: int, offer: Resources, now: float) -> bool:
        """Whether the pair owning `bit` refuses `offer` at `now`."""
        flag = 1 << bit
        if not self.mask & flag:
            return False
        for group in self.groups:
            if group.mask & flag and group.expiry > now:
                return _same(group.refused, offer) or group.refused.contains(offer)
        return False
