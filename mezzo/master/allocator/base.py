"""The allocator plug-in contract, its options and its output record.

An allocator is a pure decision core: the master feeds it events (frameworks and agents coming
and going, resources recovered, suppress/revive, weights) with `now` passed in, and calls
`allocate(now)` every allocation interval (and after events). It returns `Allocation`s; it never
calls the master. Resources in a returned allocation count as allocated to that framework and
role until the master hands them back with `recover_resources` (declined, rescinded, or used by
tasks that ended) or the framework or agent is removed.

Resource conventions: `Allocation.resources` are the agent's resources as the agent reported them
(reservations intact) *without* allocation info; the master tags them with the role when it
builds the offer. `recover_resources` and `add_agent(used=...)` accept tagged or untagged
resources; tags name the role the resources were allocated to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mezzo.core.errors import ConfigError
from mezzo.master.allocator.constraints import AgentTraits, FrameworkPolicy
from mezzo.master.allocator.quota import Quota
from mezzo.resources import Resources
from mezzo.resources.conversions import Conversion

DEFAULT_MIN_ALLOCATABLE = "cpus:0.01|mem:32"


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources of one agent allocated to one framework for one role (becomes an offer)."""

    framework_id: str
    agent_id: str
    role: str
    resources: Resources


def parse_min_allocatable(text: str) -> tuple[dict[str, float], ...]:
    """Parse Mesos's `--min_allocatable_resources`: `|`-separated alternatives, each a
    `;`-separated list of `name:quantity` (`cpus:0.01|mem:32`, `cpus:1;mem:512|gpus:1`).
    A chunk may be offered when it holds at least one alternative in full."""
    alternatives: list[dict[str, float]] = []
    for alternative in text.split("|"):
        quantities: dict[str, float] = {}
        for part in alternative.split(";"):
            part = part.strip()
            if not part:
                continue
            name, sep, amount = part.partition(":")
            name = name.strip()
            try:
                value = float(amount) if sep else float("nan")
            except ValueError:
                value = float("nan")
            if not name or not value >= 0.0:  # also rejects NaN
                raise ConfigError(
                    f"invalid --min_allocatable_resources entry {part!r}: "
                    "expected name:quantity with a non-negative number"
                )
            quantities[name] = quantities.get(name, 0.0) + value
        if not quantities:
            raise ConfigError(f"invalid --min_allocatable_resources {text!r}: empty alternative")
        alternatives.append(quantities)
    return tuple(alternatives)


@dataclass(frozen=True, slots=True)
class AllocatorOptions:
    """Everything an allocator is configured with (one record, not a parameter list)."""

    # Role weights (--weights); roles not named weigh 1.
    weights: Mapping[str, float] = field(default_factory=dict)
    # Resource names left out of DRF shares (--fair_sharing_excluded_resource_names).
    fair_sharing_excluded_resource_names: frozenset[str] = frozenset()
    # Alternatives of minimum offerable quantities; empty means any non-empty chunk.
    min_allocatable_resources: tuple[dict[str, float], ...] = field(
        default_factory=lambda: parse_min_allocatable(DEFAULT_MIN_ALLOCATABLE)
    )
    # Seed of the allocator's RNG (agent shuffling, random sorter).
    seed: int = 0
    # Mesos's --filter_gpu_resources: agents with GPUs are offered only to frameworks with
    # the GPU_RESOURCES capability.
    filter_gpu_resources: bool = True

    @classmethod
    def from_flags(
        cls,
        *,
        weights: Mapping[str, float] | None = None,
        fair_sharing_excluded_resource_names: Iterable[str] = (),
        min_allocatable_resources: str = DEFAULT_MIN_ALLOCATABLE,
        seed: int = 0,
        filter_gpu_resources: bool = True,
    ) -> AllocatorOptions:
        return cls(
            filter_gpu_resources=filter_gpu_resources,
            weights=dict(weights or {}),
            fair_sharing_excluded_resource_names=frozenset(fair_sharing_excluded_resource_names),
            min_allocatable_resources=parse_min_allocatable(min_allocatable_resources),
            seed=seed,
        )


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """What one role or framework holds: scalar quantities and its (weighted) share."""

    allocated: dict[str, float]
    share: float


@dataclass(frozen=True, slots=True)
class AllocatorStatistics:
    """An immutable snapshot for metrics and state endpoints."""

    allocation_runs: int
    last_allocation_run_ms: float
    agents: int
    frameworks: int
    offer_filters: int
    total: dict[str, float]
    allocated: dict[str, float]
    # Every role node (inner nodes included): what it and its descendants hold.
    roles: dict[str, ClientStatistics]
    # framework id -> role -> what the framework holds in that role.
    frameworks_by_role: dict[str, dict[str, ClientStatistics]]
    # role -> refuse filters installed for its frameworks (Mesos's
    # allocator/mesos/offer_filters/roles/<role>/active).
    offer_filters_by_role: dict[str, int] = field(default_factory=dict)


class Allocator(ABC):
    """The allocator contract (see the module docstring). Ids are plain strings."""

    def __init__(self, options: AllocatorOptions | None = None) -> None:
        self.options = options or AllocatorOptions()

    # -- frameworks --------------------------------------------------------------------------
    @abstractmethod
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
        """`policy`: offer constraints, per-role minimums, GPU capability (None: none)."""

    @abstractmethod
    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework; whatever is still allocated to it becomes available."""

    @abstractmethod
    def activate_framework(self, framework_id: str) -> None: ...

    @abstractmethod
    def deactivate_framework(self, framework_id: str) -> None:
        """Stop offering to the framework; its allocations stay charged."""

    @abstractmethod
    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        suppressed_roles: Iterable[str],
        *,
        policy: FrameworkPolicy | None = None,
    ) -> None:
        """Takes effect at the next allocation (the policy replaces the previous one)."""

    # -- agents ------------------------------------------------------------------------------
    @abstractmethod
    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Resources],
        *,
        active: bool = True,
        traits: AgentTraits | None = None,
    ) -> None:
        """`used`: framework id -> resources already in use there (re-registration);
        `traits`: attributes and pseudo-attributes that offer constraints select."""

    @abstractmethod
    def remove_agent(self, agent_id: str) -> None: ...

    @abstractmethod
    def update_agent(self, agent_id: str, total: Resources) -> None: ...

    @abstractmethod
    def activate_agent(self, agent_id: str) -> None: ...

    @abstractmethod
    def deactivate_agent(self, agent_id: str) -> None: ...

    # -- resources and offers ----------------------------------------------------------------
    @abstractmethod
    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None,
        now: float,
    ) -> None:
        """Resources allocated to the framework on the agent come back. With
        `refuse_seconds > 0` a filter keeps them (or any subset) from that framework and
        role on that agent until `now + refuse_seconds`."""

    @abstractmethod
    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Stop offering to the given roles of the framework (all its roles if None)."""

    @abstractmethod
    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Clear the framework's filters for the given roles (all if None); un-suppress them."""

    @abstractmethod
    def update_weights(self, weights: Mapping[str, float]) -> None: ...

    # -- operations (optional for plug-ins: the defaults say they are not supported) ----------
    def update_allocation(
        self, framework_id: str, agent_id: str, consumed: Resources, converted: Resources
    ) -> None:
        """A framework's offer operation (RESERVE, UNRESERVE, CREATE, DESTROY) turned
        `consumed`, part of what it was offered (tagged with the allocation role), into
        `converted`: the framework's allocation and the agent's total change alike."""
        raise NotImplementedError(f"{type(self).__name__} does not support offer operations")

    def update_available(self, agent_id: str, conversions: Sequence[Conversion]) -> None:
        """An operator's operation on unallocated resources of the agent: apply the
        conversions to what is available there (and to the total). Raises ConversionError,
        changing nothing, when what they consume is not available (allocated or offered)."""
        raise NotImplementedError(f"{type(self).__name__} does not support offer operations")

    # -- quota (optional for plug-ins: the defaults say it is not supported) -------------------
    def update_quota(self, role: str, quota: Quota | None) -> None:
        """Set the role's guarantees and limits (None removes them); from the next cycle."""
        raise NotImplementedError(f"{type(self).__name__} does not support quota")

    def quotas(self) -> dict[str, Quota]:
        return {}

    def consumption(self, roles: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """Role (default: every quota role) -> consumed quantities (allocated plus
        unallocated reservations)."""
        return {}

    @abstractmethod
    def allocate(self, now: float) -> list[Allocation]:
        """Run one allocation cycle."""

    # -- introspection -----------------------------------------------------------------------
    @abstractmethod
    def statistics(self) -> AllocatorStatistics: ...
