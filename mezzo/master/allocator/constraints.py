"""What one framework accepts beyond refuse filters: offer constraints, per-role minimums, GPUs.

`OfferConstraints` (Mesos's `scheduler.proto`, sent with SUBSCRIBE and UPDATE_FRAMEWORK) are
per role: a list of groups, at least one of which must hold for an agent to be offered to the
role, and within a group every attribute constraint must hold. A constraint selects an agent
attribute (by name) or a pseudo-attribute (HOSTNAME, REGION, ZONE) and applies a predicate:
exists, not_exists, text_equals, text_not_equals, text_matches, text_not_matches. Like Mesos,
the text predicates hold for an attribute that exists but is not TEXT (the scheduler filters
those itself), and the regex must match the whole value.

`FrameworkPolicy` bundles those with `FrameworkInfo.offer_filters` (per-role minimum allocatable
quantities, replacing the master's `--min_allocatable_resources` for that role) and whether the
framework has the GPU_RESOURCES capability. `AgentTraits` is what the allocator knows of an
agent for these checks. Everything here is plain data and pure functions: the master compiles a
policy once per SUBSCRIBE/UPDATE_FRAMEWORK (bad input → `ConstraintError` with Mesos's message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

# A predicate on a selected value: None (absent), NON_TEXT (present, not text) or the text.
NON_TEXT = object()
Predicate = Callable[[object], bool]

_PSEUDO = ("HOSTNAME", "REGION", "ZONE")


class ConstraintError(ValueError):
    """Offer constraints that Mesos would refuse (message as Mesos words it)."""


class AgentTraits(msgspec.Struct, frozen=True, gc=False):
    """An agent as the offer constraints see it: attributes (name -> text, or NON_TEXT for a
    scalar/ranges/set attribute) and the pseudo-attributes.

    One per agent, so not tracked by the garbage collector (`gc=False`; issue 12: every
    tracked object per agent is walked by each full collection). Sound: it holds strings and
    a dict of strings, never anything that could lead back to it."""

    hostname: str | None = None
    region: str | None = None
    zone: str | None = None
    attributes: Mapping[str, object] = msgspec.field(default_factory=dict)

    def select(self, selector: tuple[str, str]) -> object:
        kind, name = selector
        if kind == "attribute":
            return self.attributes.get(name)
        if name == "HOSTNAME":
            return self.hostname
        return self.region if name == "REGION" else self.zone


def _compile_regex(pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConstraintError(f"Failed to construct regex from pattern '{pattern}': not a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConstraintError(
            f"Failed to construct regex from pattern '{pattern}': {exc}"
        ) from None


def _text_value(body: object, key: str, what: str) -> str:
    value = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(value, str):
        raise ConstraintError(f"'{what}' requires a string '{key}'")
    return value


def _predicate(spec: object) -> Predicate:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConstraintError("Unknown predicate type")
    ((kind, body),) = spec.items()
    if kind == "exists":
        return lambda v: v is not None
    if kind == "not_exists":
        return lambda v: v is None
    if kind == "text_equals":
        want = _text_value(body, "value", kind)
        return lambda v: v is NON_TEXT or v == want
    if kind == "text_not_equals":
        want = _text_value(body, "value", kind)
        return lambda v: v is None or v is NON_TEXT or v != want
    if kind == "text_matches":
        rx = _compile_regex(_text_value(body, "regex", kind))
        return lambda v: v is NON_TEXT or (isinstance(v, str) and rx.fullmatch(v) is not None)
    if kind == "text_not_matches":
        rx = _compile_regex(_text_value(body, "regex", kind))
        # Unset (None) and non-text (NON_TEXT) values do not match, so they pass.
        return lambda v: not isinstance(v, str) or rx.fullmatch(v) is None
    raise ConstraintError("Unknown predicate type")


def _selector(spec: object) -> tuple[str, str]:
    if not isinstance(spec, Mapping):
        spec = {}
    name = spec.get("attribute_name")
    pseudo = spec.get("pseudoattribute_type")
    if (name is None) == (pseudo is None):
        raise ConstraintError(
            "Exactly one of 'AttributeConstraint::Selector::name' or"
            " 'AttributeConstraint::Selector::pseudoattribute_type' must be set"
        )
    if name is not None:
        if not isinstance(name, str):
            raise ConstraintError("'AttributeConstraint::Selector::attribute_name' must be a string")
        return ("attribute", name)
    if pseudo not in _PSEUDO:
        raise ConstraintError("Unknown pseudoattribute type")
    return ("pseudo", pseudo)


# One role's constraints: any group holds; within a group every (selector, predicate) holds.
RoleConstraints = tuple[tuple[tuple[tuple[str, str], Predicate], ...], ...]


def compile_offer_constraints(
    spec: Mapping[str, Any] | None, roles: Iterable[str]
) -> dict[str, RoleConstraints]:
    """Compile the JSON form of `OfferConstraints`; raise ConstraintError when invalid."""
    if not spec:
        return {}
    by_role = spec.get("role_constraints") or {}
    if not isinstance(by_role, Mapping):
        raise ConstraintError("'OfferConstraints::role_constraints' must be a map")
    known = set(roles)
    compiled: dict[str, RoleConstraints] = {}
    for role, body in by_role.items():
        if role not in known:
            raise ConstraintError(
                f"Offer constraints specify `role_constraints` for a role '{role}'"
                " not contained in the set of roles"
            )
        key = _canonical(body)
        shared = _COMPILED.get(key) if key is not None else None
        if shared is not None:
            compiled[role] = shared  # the same constraints as another framework's
            continue
        groups = body.get("groups") if isinstance(body, Mapping) else None
        if not groups:
            raise ConstraintError(
                "'OfferConstraints::role_constraints' has an empty"
                f" 'RoleConstraints::groups' for role {role}"
            )
        out = []
        for group in groups:
            items = group.get("attribute_constraints") if isinstance(group, Mapping) else None
            if not items:
                raise ConstraintError(
                    f"'OfferConstraints::RoleConstraints::groups' for role {role}"
                    " contains an empty RoleConstraints::Group"
                )
            try:
                out.append(tuple(
                    (_selector(c.get("selector")), _predicate(c.get("predicate")))
                    if isinstance(c, Mapping) else _bad()
                    for c in items
                ))
            except ConstraintError as exc:
                raise ConstraintError(
                    f"A role {role} has an invalid 'AttributeConstraint': {exc}"
                ) from None
        compiled[role] = role_constraints = tuple(out)
        if key is not None:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[key] = role_constraints
    return compiled


# Compiled role constraints by their canonical JSON: frameworks with the same constraints
# share one compiled value, so the allocator evaluates them once per agent signature
# (`HierarchicalAllocator`). Only valid ones are kept; bounded by clearing when full.
_COMPILED: dict[str, RoleConstraints] = {}
_COMPILED_MAX = 4096


def _canonical(body: object) -> str | None:
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _bad() -> tuple[tuple[str, str], Predicate]:
    raise ConstraintError("not an object")


def role_accepts(constraints: RoleConstraints, agent: AgentTraits) -> bool:
    # Plain loops: this runs per (framework, agent) in the allocation cycle.
    for group in constraints:
        for selector, predicate in group:
            if selector[0] == "attribute":
                value = agent.attributes.get(selector[1])
            else:
                value = agent.select(selector)
            if not predicate(value):
                break
        else:
            return True
    return False


@dataclass(frozen=True, slots=True)
class FrameworkPolicy:
    """What the allocator checks per framework besides refuse filters (module docstring)."""

    # role -> compiled offer constraints (roles without an entry accept every agent).
    constraints: Mapping[str, RoleConstraints] = field(default_factory=dict)
    # role -> alternatives of minimum quantities (from FrameworkInfo.offer_filters); an empty
    # tuple means any non-empty offer will do.
    min_allocatable: Mapping[str, tuple[dict[str, float], ...]] = field(default_factory=dict)
    gpu_capable: bool = False
    # RESERVATION_REFINEMENT: without it, resources whose reservation stack is refined (more
    # than one entry) are left out of the framework's offers, as Mesos's allocator does.
    refinement_capable: bool = True
    # SHARED_RESOURCES: offered shared persistent volumes (also while they are in use).
    shared_capable: bool = False

    def accepts(self, role: str, agent: AgentTraits) -> bool:
        rc = self.constraints.get(role)
        return rc is None or role_accepts(rc, agent)
