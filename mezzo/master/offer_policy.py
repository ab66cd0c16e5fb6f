"""The master's side of per-framework offer policy: from wire messages to allocator inputs.

`framework_policy` turns a FrameworkInfo (its `offer_filters` and GPU_RESOURCES capability) and
the `offer_constraints` of a SUBSCRIBE or UPDATE_FRAMEWORK call into the allocator's
`FrameworkPolicy`, or a one-line error in Mesos's words (the call is then refused and nothing
changes). `agent_traits` is what offer constraints see of an agent: its attributes and the
HOSTNAME / REGION / ZONE pseudo-attributes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mezzo.api.common import AgentInfo, FrameworkCapabilityType, FrameworkInfo, ValueType
from mezzo.master.allocator import (
    NON_TEXT,
    AgentTraits,
    ConstraintError,
    FrameworkPolicy,
    compile_offer_constraints,
)


def _min_allocatable(info: FrameworkInfo) -> dict[str, tuple[dict[str, float], ...]]:
    """FrameworkInfo.offer_filters -> role -> alternatives (Mesos's validateOfferFilters)."""
    out: dict[str, tuple[dict[str, float], ...]] = {}
    for role, filters in (info.offer_filters or {}).items():
        spec = filters.min_allocatable_resources
        if spec is None:
            continue
        alternatives = []
        for entry in spec.quantities:
            if not entry.quantities:
                raise ValueError("Resource quantities must contain at least one quantity")
            quantities: dict[str, float] = {}
            for name, scalar in entry.quantities.items():
                value = scalar.value
                if math.isinf(value):
                    problem = "Infinite values not supported"
                elif math.isnan(value):
                    problem = "NaN not supported"
                elif value < 0:
                    problem = "Negative values not supported"
                else:
                    quantities[name] = value
                    continue
                raise ValueError(f"Invalid resource quantity for '{name}': {problem}")
            alternatives.append(quantities)
        out[role] = tuple(alternatives)
    return out


def framework_policy(
    info: FrameworkInfo, roles: Iterable[str], offer_constraints: Mapping[str, Any] | None
) -> FrameworkPolicy:
    """Raises ValueError (ConstraintError for constraints) with the message to send back."""
    mins = _min_allocatable(info)
    try:
        constraints = compile_offer_constraints(offer_constraints, roles)
    except ConstraintError as exc:
        raise ConstraintError(f"Offer constraints are not valid: {exc}") from None
    return FrameworkPolicy(
        constraints=constraints,
        min_allocatable=mins,
        gpu_capable=info.has_capability(FrameworkCapabilityType.GPU_RESOURCES),
        refinement_capable=info.has_capability(FrameworkCapabilityType.RESERVATION_REFINEMENT),
        shared_capable=info.has_capability(FrameworkCapabilityType.SHARED_RESOURCES),
    )


def agent_traits(info: AgentInfo) -> AgentTraits:
    attributes: dict[str, object] = {}
    for attribute in info.attributes:
        if attribute.type == ValueType.TEXT and attribute.text is not None:
            attributes[attribute.name] = attribute.text.value
        else:
            attributes[attribute.name] = NON_TEXT
    region = zone = None
    fault = info.domain.fault_domain if info.domain is not None else None
    if fault is not None:
        region, zone = fault.region.name, fault.zone.name
    return AgentTraits(hostname=info.hostname, region=region, zone=zone, attributes=attributes)
