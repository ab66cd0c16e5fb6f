"""The default allocator: hierarchical weighted DRF over roles, then frameworks.

One allocation cycle: the agents with something available are shuffled (seeded RNG); for each,
roles are walked in the role tree's order (DRF between siblings, `eng/web` charged to `eng`),
and within a role the frameworks in their sorter's order. The first framework that is active,
has not suppressed the role and has no live refuse filter covering what is on offer receives
everything on the agent allocatable to the role (unreserved plus reserved to the role or an
ancestor), provided the chunk reaches `min_allocatable_resources`. Shares update incrementally
as allocations happen, so later agents of the same cycle see the new order.

Why it is fast: agents with nothing available are not visited (`_free`), nor, unless some
framework has its own minimum, agents whose leftovers are below `min_allocatable_resources`
(`_offerable`: e.g. only disk or ports left, as on a busy cluster); an agent that every
eligible (framework, role) pair filters is skipped with one integer test (`filters.py`: one bit
per pair, cached per agent until the agent's resources grow or a filter expires); the sorters
reposition only the client that changed; no msgspec objects and little `Resources` arithmetic
(an agent offered whole hands over its `available` object as is); the role tree is read lazily
per agent (`RoleWalk`: an agent is usually taken by the first role or two); offer constraints
are decided once per distinct agent signature (the agent's values of the selectors in use:
agents share few) and (framework, role) pair, so a pair that rejects an agent costs one bit
test; quota limits are checked against a per-cycle list per role.

Shared resources (shared persistent volumes), as Mesos: offered only to frameworks with the
SHARED_RESOURCES capability, and to them even while other frameworks hold copies (each copy
allocated is booked), at most once per agent and allocation cycle; `available` holds a shared
resource only while no copy of it is allocated.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from mezzo.master.allocator.base import (
    Allocation,
    Allocator,
    AllocatorOptions,
    AllocatorStatistics,
    ClientStatistics,
)
from mezzo.master.allocator.constraints import (
    AgentTraits,
    FrameworkPolicy,
    RoleConstraints,
    role_accepts,
)
from mezzo.master.allocator.filters import AgentFilters
from mezzo.master.allocator.quota import Quota, QuotaBook, within
from mezzo.master.allocator.role_tree import RoleTree, RoleWalk
from mezzo.master.allocator.sorter.base import Quantities, Sorter, Totals
from mezzo.master.allocator.sorter.drf import DRFSorter
from mezzo.master.allocator.sorter.random import RandomSorter
from mezzo.resources import EMPTY, Resources
from mezzo.resources.conversions import Conversion
from mezzo.resources.conversions import apply as apply_conversions

_INF = float("inf")


def scalar_quantities(resources: Resources) -> Quantities:
    """Scalar quantities only: like Mesos, shares ignore ranges and sets (ports)."""
    return resources.scalars().quantities()


def _without_refined(resources: Resources) -> Resources:
    """`resources` without those whose reservation stack is refined (more than one entry);
    the same object when there are none."""
    if all(len(item.key.reservations) <= 1 for item in resources):
        return resources
    return resources.filter(lambda k: len(k.reservations) <= 1)


class _Verdicts:
    """Offer-constraint verdicts for the agents of one signature (their values of the
    selectors in use): `decided` and `rejects` are bit masks over the (framework, role) bits;
    `by_constraints` answers per compiled constraints (frameworks with the same constraints
    share them: `constraints.compile_offer_constraints`)."""

    __slots__ = ("by_constraints", "decided", "rejects")

    def __init__(self) -> None:
        self.decided = 0
        self.rejects = 0
        self.by_constraints: dict[RoleConstraints, bool] = {}


def _decide(verdicts: _Verdicts, flag: int, constraints: RoleConstraints, traits: AgentTraits) -> bool:
    """Decide offer constraints for the pair with bit `flag` and record the verdict in the
    entry of the agent's signature: `role_accepts` depends on nothing but the selected values,
    so every agent with the same signature gets the same answer."""
    accepted = verdicts.by_constraints.get(constraints)
    if accepted is None:
        accepted = verdicts.by_constraints[constraints] = role_accepts(constraints, traits)
    verdicts.decided |= flag
    if not accepted:
        verdicts.rejects |= flag
    return accepted


# The verdicts of an agent while no framework has offer constraints (never written).
_NO_VERDICTS = _Verdicts()


class _Framework:
    __slots__ = ("active", "added", "agents", "id", "policy", "roles", "suppressed")

    def __init__(self, framework_id: str) -> None:
        self.id = framework_id
        self.roles: set[str] = set()  # subscribed roles
        self.suppressed: set[str] = set()
        self.active = False
        self.added = False  # False: known only from allocations reported by agents
        self.agents: dict[str, None] = {}  # agents where it holds allocations
        # Offer constraints, per-role minimums, GPU capability; None: no checks at all (fast).
        self.policy: FrameworkPolicy | None = None


class _Agent(msgspec.Struct, gc=False):
    """One agent as the allocator keeps it (make one with `_new_agent`).

    Not tracked by the garbage collector (`gc=False`): each tracked object per agent is walked
    by every full collection (issue 12: 9,000 agents). Sound because nothing it holds leads
    back to it: ids, numbers, `Resources`, its filters and traits (untracked too) and the
    shared `_Verdicts`, none of which holds an agent."""

    id: str
    active: bool
    traits: AgentTraits
    total: Resources
    total_q: Quantities
    has_gpu: bool
    reserved: bool
    shared: Resources  # one copy of each shared resource of the agent
    available: Resources
    # Cached scalar quantities of `available` and whether they reach the minimum.
    available_q: Quantities | None = None
    available_ok: bool = False
    allocated: dict[tuple[str, str], Resources] = msgspec.field(default_factory=dict)
    filters: AgentFilters = msgspec.field(default_factory=AgentFilters)
    # Pairs whose filters cover all of `available`, valid while `version` is unchanged
    # (it grows whenever `available` grows) and until `valid_until`.
    version: int = 0
    valid_mask: int = 0
    valid_until: float = -_INF
    valid_version: int = -1
    # Offer-constraint verdicts of the agents that look alike to the constraints (shared,
    # see `HierarchicalAllocator._verdicts_of`), valid for `verdicts_epoch`.
    verdicts: _Verdicts = _NO_VERDICTS
    verdicts_epoch: int = -1


def _new_agent(agent_id: str, total: Resources, active: bool, traits: AgentTraits) -> _Agent:
    total_q = scalar_quantities(total)
    return _Agent(
        id=agent_id,
        active=active,
        traits=traits,
        total=total,
        total_q=total_q,
        has_gpu=total_q.get("gpus", 0.0) > 0.0,
        reserved=not total.reserved().is_empty(),
        shared=total.shared(),
        available=total,
    )


class HierarchicalAllocator(Allocator):
    """Hierarchical DRF (or random, with `sorter="random"`) allocator."""

    def __init__(self, options: AllocatorOptions | None = None, *, sorter: str = "drf") -> None:
        super().__init__(options)
        if sorter not in ("drf", "random"):
            raise ValueError(f"unknown sorter {sorter!r} (expected 'drf' or 'random')")
        self._rng = random.Random(self.options.seed)
        self._sorter_kind = sorter
        self._totals = Totals()
        self._roles = RoleTree(self._new_sorter)
        self._fsorters: dict[str, Sorter] = {}  # role -> framework sorter
        self._frameworks: dict[str, _Framework] = {}
        self._agents: dict[str, _Agent] = {}
        self._free: dict[str, _Agent] = {}  # agents whose `available` is not empty
        # Those of them that could be offered under the global minimum (or that hold
        # reservations, checked per role): all an allocation run visits unless a framework has
        # its own minimum.
        self._offerable: dict[str, _Agent] = {}
        # One bit per tracked (framework, role) pair; `_eligible` has the bits of the pairs
        # that may receive offers now (active framework, role not suppressed).
        self._bits: dict[str, dict[str, int]] = {}  # role -> framework id -> bit
        self._free_bits: list[int] = []
        self._next_bit = 0
        self._eligible = 0
        self._mins = self.options.min_allocatable_resources
        self._filter_gpus = self.options.filter_gpu_resources
        # Frameworks whose policy overrides the minimum for some role: while there are any,
        # an agent below the global minimum may still be offered to them.
        self._custom_mins = 0
        self._quota = QuotaBook()
        # Offer-constraint verdicts per distinct agent signature (the agent's values of every
        # selector some framework's constraints use; agents share few): signature ->
        # its `_Verdicts` (which (framework, role) pairs were decided, which reject). A
        # pair's verdicts are dropped when its policy changes or its bit is freed; a change
        # of the selectors in use starts a new epoch (new signatures).
        self._selectors: tuple[tuple[str, str], ...] = ()
        self._verdicts: dict[tuple[object, ...], _Verdicts] = {}
        self._verdicts_epoch = 0
        self._runs = 0
        self._last_run_ms = 0.0
        self._shared_offered: dict[str, Resources] = {}  # this cycle's, per agent
        for role, weight in self.options.weights.items():
            self._roles.update_weight(role, weight)

    def _new_sorter(self) -> Sorter:
        excluded = self.options.fair_sharing_excluded_resource_names
        if self._sorter_kind == "random":
            return RandomSorter(self._totals, excluded=excluded, rng=self._rng)
        return DRFSorter(self._totals, excluded=excluded)

    # -- (framework, role) pairs ---------------------------------------------------------------
    def _track(self, fw: _Framework, role: str) -> None:
        bits = self._bits.get(role)
        if bits is None:
            bits = self._bits[role] = {}
            self._fsorters[role] = self._new_sorter()
            self._roles.add_role(role)
        if fw.id in bits:
            return
        bits[fw.id] = self._free_bits.pop() if self._free_bits else self._alloc_bit()
        self._fsorters[role].add(fw.id, active=False)

    def _alloc_bit(self) -> int:
        self._next_bit += 1
        return self._next_bit - 1

    def _untrack_if_unused(self, fw: _Framework, role: str) -> None:
        """Drop the pair once the framework neither subscribes to the role nor holds
        anything in it."""
        bits = self._bits.get(role)
        if bits is None or fw.id not in bits or role in fw.roles:
            return
        sorter = self._fsorters[role]
        if sorter.allocation(fw.id):
            return
        bit = bits.pop(fw.id)
        self._forget_verdicts(1 << bit)  # the bit may go to another pair
        self._clear_filters(1 << bit)
        self._eligible &= ~(1 << bit)
        self._free_bits.append(bit)
        sorter.remove(fw.id)
        if not bits:
            del self._bits[role], self._fsorters[role]
            self._roles.remove_role(role)

    def _sync(self, fw: _Framework, role: str) -> None:
        """Make the pair's sorter activity and eligibility bit match the framework state."""
        bit = self._bits[role][fw.id]
        sorter = self._fsorters[role]
        if fw.added and fw.active and role in fw.roles and role not in fw.suppressed:
            sorter.activate(fw.id)
            self._eligible |= 1 << bit
        else:
            sorter.deactivate(fw.id)
            self._eligible &= ~(1 << bit)

    def _sync_all(self, fw: _Framework) -> None:
        for role, bits in self._bits.items():
            if fw.id in bits:
                self._sync(fw, role)

    def _clear_filters(self, bits: int) -> None:
        for agent in self._agents.values():
            if agent.filters.mask & bits:
                agent.filters.clear(bits)
                agent.valid_version = -1

    # -- frameworks --------------------------------------------------------------------------
    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        suppressed_roles: Iterable[str] = (),
        active: bool = True,
        now: float,
        policy: FrameworkPolicy | None = None,
    ) -> None:
        fw = self._frameworks.get(framework_id)
        if fw is not None and fw.added:
            raise ValueError(f"framework {framework_id} already added")
        if fw is None:
            fw = self._frameworks[framework_id] = _Framework(framework_id)
        fw.added = True
        fw.active = active
        fw.roles = set(roles)
        fw.suppressed = set(suppressed_roles) & fw.roles
        self._set_policy(fw, policy)
        for role in sorted(fw.roles):
            self._track(fw, role)
        self._sync_all(fw)

    def _set_policy(self, fw: _Framework, policy: FrameworkPolicy | None) -> None:
        if fw.policy is not None and fw.policy.min_allocatable:
            self._custom_mins -= 1
        had_constraints = fw.policy is not None and bool(fw.policy.constraints)
        fw.policy = policy
        if policy is not None and policy.min_allocatable:
            self._custom_mins += 1
        if had_constraints or (policy is not None and policy.constraints):
            selectors = tuple(sorted({
                selector
                for other in self._frameworks.values() if other.policy is not None
                for rc in other.policy.constraints.values()
                for group in rc
                for selector, _ in group
            }))
            if selectors != self._selectors:
                # Signatures change: start over (agents recompute theirs when next asked).
                self._selectors = selectors
                self._verdicts = {}
                self._verdicts_epoch += 1
            else:
                mask = 0
                for bits in self._bits.values():
                    if fw.id in bits:
                        mask |= 1 << bits[fw.id]
                self._forget_verdicts(mask)

    def _forget_verdicts(self, mask: int) -> None:
        """Drop the verdicts of the pairs in `mask` (their constraints or owner changed)."""
        if mask:
            keep = ~mask
            for entry in self._verdicts.values():
                entry.decided &= keep
                entry.rejects &= keep

    def _verdicts_of(self, agent: _Agent) -> _Verdicts:
        """The agent's entry of `_verdicts` (shared by agents with the same signature)."""
        if agent.verdicts_epoch != self._verdicts_epoch:
            traits = agent.traits
            signature = tuple([traits.select(selector) for selector in self._selectors])
            found = self._verdicts.get(signature)
            if found is None:
                found = self._verdicts[signature] = _Verdicts()
            agent.verdicts = found
            agent.verdicts_epoch = self._verdicts_epoch
        return agent.verdicts

    def remove_framework(self, framework_id: str) -> None:
        fw = self._frameworks.pop(framework_id, None)
        if fw is None:
            return
        self._set_policy(fw, None)
        for agent_id in list(fw.agents):
            agent = self._agents[agent_id]
            for key in [key for key in agent.allocated if key[0] == framework_id]:
                self._release(agent, fw, key[1], agent.allocated[key])
        fw.roles = set()
        for role in [role for role, bits in self._bits.items() if framework_id in bits]:
            self._untrack_if_unused(fw, role)

    def activate_framework(self, framework_id: str) -> None:
        fw = self._frameworks[framework_id]
        fw.active = True
        self._sync_all(fw)

    def deactivate_framework(self, framework_id: str) -> None:
        fw = self._frameworks[framework_id]
        fw.active = False
        self._sync_all(fw)

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        suppressed_roles: Iterable[str],
        *,
        policy: FrameworkPolicy | None = None,
    ) -> None:
        fw = self._frameworks[framework_id]
        self._set_policy(fw, policy)
        old = fw.roles
        fw.roles = set(roles)
        fw.suppressed = set(suppressed_roles) & fw.roles
        for role in sorted(fw.roles - old):
            self._track(fw, role)
        self._sync_all(fw)
        for role in sorted(old - fw.roles):
            self._untrack_if_unused(fw, role)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        fw = self._frameworks[framework_id]
        fw.suppressed |= fw.roles if roles is None else set(roles) & fw.roles
        self._sync_all(fw)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        fw = self._frameworks[framework_id]
        chosen = set(fw.roles) if roles is None else set(roles) & fw.roles
        fw.suppressed -= chosen
        bits = 0
        for role in chosen:
            bits |= 1 << self._bits[role][framework_id]
        self._clear_filters(bits)
        self._sync_all(fw)

    # -- agents ------------------------------------------------------------------------------
    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Resources],
        *,
        active: bool = True,
        traits: AgentTraits | None = None,
    ) -> None:
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id} already added")
        agent = _new_agent(agent_id, total, active, traits or AgentTraits())
        self._agents[agent_id] = agent
        if self._selectors:
            self._verdicts_of(agent)  # its signature now rather than in an allocation cycle
        self._totals.add(agent.total_q)
        # What is left is settled once, at the end: a re-registering agent reports tasks of
        # many frameworks, and settling after each charge was a third of this method's cost.
        available = agent.available
        for framework_id, resources in used.items():
            fw = self._frameworks.get(framework_id)
            if fw is None:
                fw = self._frameworks[framework_id] = _Framework(framework_id)
            for role, part in self._split_by_role(fw, resources).items():
                self._track(fw, role)
                self._charge(agent, fw, role, part, scalar_quantities(part), settle=False)
                available = available - part if available is not part else EMPTY
            self._sync_all(fw)
        self._set_available(agent, available, grew=False)

    def _split_by_role(self, fw: _Framework, resources: Resources) -> dict[str, Resources]:
        role = resources.sole_allocation_role()
        if role is not None:
            # The common case (a framework's tasks on an agent, all allocated to its role):
            # one re-keying instead of grouping, filtering and re-keying. After a failover
            # this ran for each framework on each re-registering agent, the largest part of
            # `add_agent` (issue 12).
            return {role: resources.unallocate()}
        parts = resources.allocations()
        untagged = resources.without_allocation()
        if untagged:
            role = min(fw.roles) if fw.roles else "*"
            parts[role] = parts[role] + untagged if role in parts else untagged
        return {role: part.unallocate() for role, part in parts.items()}

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._free.pop(agent_id, None)
        self._offerable.pop(agent_id, None)
        for (framework_id, role), resources in list(agent.allocated.items()):
            fw = self._frameworks[framework_id]
            self._uncharge(agent, fw, role, resources)
            self._untrack_if_unused(fw, role)
        self._totals.remove(agent.total_q)

    def update_agent(self, agent_id: str, total: Resources) -> None:
        agent = self._agents[agent_id]
        self._set_total(agent, total)
        in_use = EMPTY
        for resources in agent.allocated.values():
            in_use = in_use + resources
        self._set_available(agent, total - in_use if in_use else total, grew=True)

    def _set_total(self, agent: _Agent, total: Resources) -> None:
        self._totals.remove(agent.total_q)
        agent.total = total
        agent.total_q = scalar_quantities(total)
        agent.has_gpu = agent.total_q.get("gpus", 0.0) > 0.0
        agent.reserved = not total.reserved().is_empty()
        agent.shared = total.shared()
        self._totals.add(agent.total_q)

    # -- offer operations --------------------------------------------------------------------
    def update_allocation(
        self, framework_id: str, agent_id: str, consumed: Resources, converted: Resources
    ) -> None:
        agent = self._agents[agent_id]
        fw = self._frameworks[framework_id]
        if not consumed and converted and converted == converted.shared():
            self._add_shared_copies(agent, fw, converted)
            return
        roles = list(consumed.allocations())
        if len(roles) != 1 or consumed.without_allocation():
            raise ValueError("consumed resources must be allocated to exactly one role")
        role = roles[0]
        key = (framework_id, role)
        held = agent.allocated.get(key, EMPTY)
        gone, made = consumed.unallocate(), converted.unallocate()
        if not held.contains(gone):
            raise ValueError(f"framework {framework_id} does not hold {gone} on agent {agent_id}")
        agent.allocated[key] = held - gone + made
        before, after = scalar_quantities(gone), scalar_quantities(made)
        if before != after:
            self._fsorters[role].unallocated(fw.id, before)
            self._roles.unallocated(role, before)
            self._fsorters[role].allocated(fw.id, after)
            self._roles.allocated(role, after)
        self._set_total(agent, agent.total - gone + made)

    def _add_shared_copies(self, agent: _Agent, fw: _Framework, copies: Resources) -> None:
        """More copies of shared resources the framework was offered once (several tasks of
        one ACCEPT use one volume: Mesos's "additional" shared resources)."""
        for role, part in copies.allocations().items():
            plain = part.unallocate()
            if not agent.shared.contains(plain.shared()):
                raise ValueError(f"agent {agent.id} has no shared {plain}")
            key = (fw.id, role)
            agent.allocated[key] = agent.allocated.get(key, EMPTY) + plain
            fw.agents[agent.id] = None
            q = scalar_quantities(plain)
            self._fsorters[role].allocated(fw.id, q)
            self._roles.allocated(role, q)

    def update_available(self, agent_id: str, conversions: Sequence[Conversion]) -> None:
        agent = self._agents[agent_id]
        plain = [c.unallocated() for c in conversions]
        available = apply_conversions(agent.available, plain)  # raises: nothing changed
        self._set_total(agent, apply_conversions(agent.total, plain))
        self._set_available(agent, available, grew=True)

    def activate_agent(self, agent_id: str) -> None:
        self._agents[agent_id].active = True

    def deactivate_agent(self, agent_id: str) -> None:
        self._agents[agent_id].active = False

    # -- bookkeeping -------------------------------------------------------------------------
    def _set_available(self, agent: _Agent, available: Resources, *, grew: bool) -> None:
        agent.available = available
        if grew:
            agent.version += 1
        if available:
            self._free[agent.id] = agent
            # An agent offered whole still has its `total` object as `available`: reuse the
            # quantities computed when it was added.
            q = agent.total_q if available is agent.total else scalar_quantities(available)
            agent.available_q = q
            agent.available_ok = self._allocatable(q)
            if agent.available_ok or agent.reserved:
                self._offerable[agent.id] = agent
            else:
                self._offerable.pop(agent.id, None)
        else:
            agent.available_q = None
            self._free.pop(agent.id, None)
            self._offerable.pop(agent.id, None)

    def _charge(
        self, agent: _Agent, fw: _Framework, role: str, resources: Resources, q: Quantities,
        *, settle: bool = True,
    ) -> None:
        """Record `resources` (of `agent`) as allocated to the framework in `role`; with
        `settle`, take them off the agent's available resources too (else the caller does)."""
        key = (fw.id, role)
        held = agent.allocated.get(key)
        agent.allocated[key] = resources if held is None else held + resources
        fw.agents[agent.id] = None
        if settle:
            remaining = agent.available - resources if agent.available is not resources else EMPTY
            self._set_available(agent, remaining, grew=False)
        self._fsorters[role].allocated(fw.id, q)
        self._roles.allocated(role, q)

    def _uncharge(self, agent: _Agent, fw: _Framework, role: str, resources: Resources) -> None:
        """Take `resources` off the framework's books in `role` (not back to the agent)."""
        key = (fw.id, role)
        left = agent.allocated[key] - resources
        if left:
            agent.allocated[key] = left
        else:
            del agent.allocated[key]
            if not any(k[0] == fw.id for k in agent.allocated):
                fw.agents.pop(agent.id, None)
        q = scalar_quantities(resources)
        self._fsorters[role].unallocated(fw.id, q)
        self._roles.unallocated(role, q)

    def _release(self, agent: _Agent, fw: _Framework, role: str, resources: Resources) -> None:
        self._uncharge(agent, fw, role, resources)
        if agent.shared and resources.shared():
            # A shared copy is available again only once no copy of it is allocated.
            free = agent.shared
            for held in agent.allocated.values():
                free = free - held.shared()
            available = agent.available.non_shared() + resources.non_shared() + free
        else:
            available = agent.available + resources
        self._set_available(agent, available, grew=True)

    # -- resources and offers ----------------------------------------------------------------
    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None,
        now: float,
    ) -> None:
        agent = self._agents.get(agent_id)
        fw = self._frameworks.get(framework_id)
        if agent is None or fw is None or not resources:
            return  # the agent or framework is gone: its resources were released then
        parts = self._sole_role_part(agent, framework_id, resources)
        if parts is None:
            parts = self._recovered_parts(agent, framework_id, resources)
        for role, part in parts.items():
            self._release(agent, fw, role, part)
            bits = self._bits.get(role)
            if refuse_seconds is not None and refuse_seconds > 0 and bits and fw.id in bits:
                agent.filters.install(bits[fw.id], part, now + refuse_seconds)
                agent.valid_version = -1

    def _sole_role_part(
        self, agent: _Agent, framework_id: str, resources: Resources
    ) -> dict[str, Resources] | None:
        """The common case of `_recovered_parts` (a finished task) without the split: every
        resource allocated to one role in which the framework holds them all, nothing shared.
        None when the resources are not of that shape."""
        role = resources.sole_allocation_role()
        if role is None:
            return None
        held = agent.allocated.get((framework_id, role))
        plain = resources.unallocate()
        return {role: plain} if held is not None and held.contains(plain) else None

    def _recovered_parts(
        self, agent: _Agent, framework_id: str, resources: Resources
    ) -> dict[str, Resources]:
        """Split recovered resources by the role they were allocated to, keeping only what
        the framework actually holds there (so nothing is ever credited twice)."""
        tagged = resources.allocations()
        untagged = resources.without_allocation()
        parts: dict[str, Resources] = {}
        for (fid, role), held in agent.allocated.items():
            if fid != framework_id:
                continue
            wanted = tagged[role].unallocate() if role in tagged else EMPTY
            if untagged:
                wanted = wanted + untagged
            if not wanted:
                continue
            # Intersection by saturating subtraction: held - (held - wanted).
            part = wanted if held.contains(wanted) else held - (held - wanted)
            if part:
                parts[role] = part
                if untagged:
                    untagged = untagged - part
        return parts

    def refuse(
        self,
        framework_ids: Iterable[str],
        agent_ids: Iterable[str],
        refuse_seconds: float,
        now: float,
    ) -> None:
        """Install, for each framework (all its roles) on each agent, the filter a decline of
        the agent's whole available resources would install — without the offers. Lets
        simulations and benchmarks reach "everyone declined everything" without
        frameworks-many offer rounds."""
        mask = 0
        for framework_id in framework_ids:
            for bits in self._bits.values():
                if framework_id in bits:
                    mask |= 1 << bits[framework_id]
        if not mask or refuse_seconds <= 0:
            return
        expiry = now + refuse_seconds
        for agent_id in agent_ids:
            agent = self._agents[agent_id]
            if agent.available:
                agent.filters.install_mask(mask, agent.available, expiry)
                agent.valid_version = -1

    def update_weights(self, weights: Mapping[str, float]) -> None:
        for role, weight in weights.items():
            if weight <= 0:
                raise ValueError(f"weight of role {role} must be positive, not {weight}")
            self._roles.update_weight(role, weight)

    def _allocatable(self, q: Quantities, mins: tuple[dict[str, float], ...] | None = None) -> bool:
        if mins is None:
            mins = self._mins
        if not mins:
            return bool(q)
        for alternative in mins:
            for name, minimum in alternative.items():
                if q.get(name, 0.0) < minimum:
                    break
            else:
                return True
        return False

    def allocate(self, now: float) -> list[Allocation]:
        started = time.perf_counter()
        offers: list[Allocation] = []
        eligible = self._eligible
        candidates: list[_Agent] = []
        if eligible:
            visit = self._free if self._custom_mins else self._offerable
            for agent in visit.values():
                if not agent.active:
                    continue
                if agent.filters.mask:
                    if agent.valid_version != agent.version or now >= agent.valid_until:
                        agent.valid_mask, agent.valid_until = agent.filters.valid(
                            agent.available, now
                        )
                        agent.valid_version = agent.version
                    if not eligible & ~agent.valid_mask:
                        continue  # every eligible pair refuses this agent
                candidates.append(agent)
            self._rng.shuffle(candidates)
        if self._quota and candidates:
            self._begin_quota_cycle()
        self._shared_offered = {}
        for agent in candidates:
            self._allocate_agent(agent, now, eligible, offers)
        self._runs += 1
        self._last_run_ms = (time.perf_counter() - started) * 1000.0
        return offers

    def _allocate_agent(
        self, agent: _Agent, now: float, eligible: int, offers: list[Allocation]
    ) -> None:
        filters = agent.filters
        fmask = filters.mask
        open_pairs = eligible & ~agent.valid_mask if fmask else eligible
        custom_mins = self._custom_mins
        frameworks = self._frameworks
        filter_gpus = self._filter_gpus
        # The agent's offer-constraint verdicts (shared with alike agents): a pair known to
        # reject it costs one bit test below.
        constrained = bool(self._selectors)
        verdicts = self._verdicts_of(agent) if constrained else _NO_VERDICTS
        book = self._quota if self._quota else None
        walk = self._roles.walk()
        for role in self._role_order(walk) if book is not None else walk:
            available = agent.available
            if agent.reserved:
                offer = available.allocatable_to(role)
                if not offer:
                    continue
                q = scalar_quantities(offer)
                ok = self._allocatable(q)
                if not ok and not custom_mins:
                    continue
            else:
                offer = available
                cached = agent.available_q
                if cached is None:
                    # An agent offered whole still has its `total` object as `available`:
                    # reuse the quantities computed when it was added.
                    if available is agent.total:
                        cached = agent.total_q
                    else:
                        cached = scalar_quantities(available)
                    agent.available_q = cached
                    agent.available_ok = self._allocatable(cached)
                q = cached
                ok = agent.available_ok
                if not ok and not custom_mins:
                    return
            q_quota: Quantities | None = None
            if book is not None:
                # Only unreserved resources add to consumption: reservations count already.
                q_quota = scalar_quantities(offer.unreserved()) if agent.reserved else q
                if not book.fits(role, q_quota):
                    continue
                if book.any_short and not book.prioritized(role) and not book.headroom_ok(q_quota):
                    continue  # held back for guarantees not met yet
            bits = self._bits[role]
            chosen = None
            whole = offer
            for framework_id in self._fsorters[role]:
                bit = bits[framework_id]
                if constrained and verdicts.rejects >> bit & 1:
                    continue  # its offer constraints reject this agent (decided before)
                policy = frameworks[framework_id].policy
                offer, q_fw, ok_fw = whole, q, ok
                if policy is not None and not policy.refinement_capable and agent.reserved:
                    # Refined reservations only for RESERVATION_REFINEMENT frameworks.
                    offer = _without_refined(whole)
                    if not offer:
                        continue
                    if offer is not whole:
                        q_fw = scalar_quantities(offer)
                        ok_fw = self._allocatable(q_fw)
                if fmask:
                    flag = 1 << bit
                    if not open_pairs & flag:
                        continue
                    if fmask & flag and filters.is_filtered(bit, offer, now):
                        continue
                if policy is None:
                    # No policy: the global minimum, and no GPU agents (no GPU_RESOURCES).
                    if not ok_fw or (agent.has_gpu and self._filter_gpus):
                        continue
                else:
                    # The framework's own checks (all must hold): GPU capability, its minimum
                    # for the role, its offer constraints (decided once per agent signature).
                    if filter_gpus and agent.has_gpu and not policy.gpu_capable:
                        continue
                    mins = policy.min_allocatable.get(role)
                    if mins is not None:
                        if not self._allocatable(q_fw, mins):
                            continue
                    elif not ok_fw:
                        continue
                    constraints = policy.constraints.get(role)
                    if (
                        constraints is not None
                        and not verdicts.decided >> bit & 1
                        and not _decide(verdicts, 1 << bit, constraints, agent.traits)
                    ):
                        continue
                chosen = framework_id
                q = q_fw
                break
            if chosen is None:
                continue
            if agent.shared:
                offer = self._with_shared(agent, frameworks[chosen].policy, role, offer)
                if not offer:
                    continue
                q = scalar_quantities(offer)
            if offer is not whole and q_quota is not None:
                q_quota = scalar_quantities(offer.unreserved())
            if offer is not agent.available:
                walk.freeze()  # the agent may keep something: the walk goes on after the charge
            self._charge(agent, self._frameworks[chosen], role, offer, q)
            if q_quota is not None:
                self._quota.charge(role, q_quota)
            offers.append(Allocation(chosen, agent.id, role, offer))
            if not agent.available:
                return

    def _with_shared(
        self, agent: _Agent, policy: FrameworkPolicy | None, role: str, offer: Resources
    ) -> Resources:
        """The chunk for one framework on an agent with shared resources: without them for
        frameworks lacking SHARED_RESOURCES; with every shared resource of the agent usable
        by the role (held by others or not) not yet offered this cycle, for the others."""
        base = offer.non_shared()
        if policy is None or not policy.shared_capable:
            return base
        offered = self._shared_offered.get(agent.id, EMPTY)
        extra = agent.shared.allocatable_to(role) - offered
        if extra:
            self._shared_offered[agent.id] = offered + extra
        return base + extra

    # -- quota -------------------------------------------------------------------------------
    def update_quota(self, role: str, quota: Quota | None) -> None:
        """Set (or with None, remove) the role's quota; applies from the next allocation."""
        self._quota.set(role, quota)

    def quotas(self) -> dict[str, Quota]:
        return dict(self._quota.quotas)

    def consumption(self, roles: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """Role (default: every quota role) -> consumed: allocated to it and its descendants
        plus their unallocated reservations."""
        consumed, _ = self._consumption(self._quota.quotas if roles is None else roles)
        return consumed

    def _consumption(self, roles: Iterable[str]) -> tuple[dict[str, Quantities], Quantities]:
        quota_roles = list(roles)
        nodes = set(self._roles.nodes())
        consumed = {role: self._roles.allocation(role) if role in nodes else {}
                    for role in quota_roles}
        free = dict(self._totals.quantities)
        for role in nodes:
            if "/" not in role:
                for name, value in self._roles.allocation(role).items():
                    free[name] = free.get(name, 0.0) - value
        for agent in self._agents.values():
            if not agent.reserved or not agent.available:
                continue
            reserved = agent.available.reserved()
            if not reserved:
                continue
            for name, value in scalar_quantities(reserved).items():
                free[name] = free.get(name, 0.0) - value
            for role in quota_roles:
                mine = reserved.filter(
                    lambda k, r=role: within(k.reservations[-1].role, r)  # type: ignore[misc]
                )
                if mine:
                    used = consumed[role]
                    for name, value in scalar_quantities(mine).items():
                        used[name] = used.get(name, 0.0) + value
        return consumed, free

    def _begin_quota_cycle(self) -> None:
        consumed, free = self._consumption(self._quota.quotas)
        self._quota.begin(consumed, free)

    def _role_order(self, walk: RoleWalk) -> Iterable[str]:
        """Roles short of their guarantee first (in the tree's order), then the others.
        Lazy: an agent is usually taken by the first role, so the rest is never walked."""
        book = self._quota
        if not book.any_short:
            yield from walk
            return
        later: list[str] = []
        for role in walk:
            if book.prioritized(role):
                yield role
            else:
                later.append(role)
        yield from later

    # -- introspection -----------------------------------------------------------------------
    def statistics(self) -> AllocatorStatistics:
        roles = {
            role: ClientStatistics(self._roles.allocation(role), self._roles.share(role))
            for role in self._roles.nodes()
        }
        by_framework: dict[str, dict[str, ClientStatistics]] = {}
        for role, sorter in self._fsorters.items():
            for framework_id in self._bits[role]:
                by_framework.setdefault(framework_id, {})[role] = ClientStatistics(
                    sorter.allocation(framework_id), sorter.share(framework_id)
                )
        allocated: Quantities = {}
        for per_role in by_framework.values():
            for entry in per_role.values():
                for name, value in entry.allocated.items():
                    allocated[name] = allocated.get(name, 0.0) + value
        role_of_bit = {bit: role for role, bits in self._bits.items() for bit in bits.values()}
        # An agent's filtered pairs are the bits of its filters' `mask` (the groups' masks are
        # disjoint): agents filtered alike are counted together, one pass over the agents
        # (a snapshot at 9,000 agents walked every group of every agent, twice).
        masks: dict[int, int] = {}
        for agent in self._agents.values():
            mask = agent.filters.mask
            if mask:
                masks[mask] = masks.get(mask, 0) + 1
        filters_by_role: dict[str, int] = {}
        offer_filters = 0
        for mask, agents in masks.items():
            offer_filters += mask.bit_count() * agents
            while mask:
                low = mask & -mask
                filtered_role = role_of_bit.get(low.bit_length() - 1)
                if filtered_role is not None:
                    filters_by_role[filtered_role] = filters_by_role.get(filtered_role, 0) + agents
                mask ^= low
        return AllocatorStatistics(
            allocation_runs=self._runs,
            last_allocation_run_ms=self._last_run_ms,
            agents=len(self._agents),
            frameworks=sum(1 for fw in self._frameworks.values() if fw.added),
            offer_filters=offer_filters,
            total=dict(self._totals.quantities),
            allocated=allocated,
            roles=roles,
            frameworks_by_role=by_framework,
            offer_filters_by_role=filters_by_role,
        )
