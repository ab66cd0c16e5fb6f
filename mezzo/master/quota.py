"""Quota configuration as the operator API sees it (Mesos 1.9+): validation and conversions.

A quota config is `{"role", "guarantees": {name: {"value": v}}, "limits": {...}}` on the wire
(`QuotaConfig`); the master keeps `role -> {"guarantees": {name: v}, "limits": {name: v}}`
(what the registry stores) and hands the allocator `Quota` records. The older SET_QUOTA takes a
`QuotaRequest` (role, guarantee as a list of scalar Resources, force) and, as in Mesos 1.9+,
sets both the guarantees and the limits to it. Messages follow Mesos's quota handler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mezzo.master.allocator import Quota
from mezzo.resources import role_error

StoredQuota = dict[str, dict[str, float]]  # {"guarantees": {...}, "limits": {...}}

_EXABYTE_MB = 1024.0**4
_TRILLION = 1e12


class QuotaError(ValueError):
    """An invalid quota request (a 400 with this message)."""


def _scalars(field: str, raw: object) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise QuotaError(f"Invalid 'QuotaConfig.{field}': expected a map of name to scalar")
    out: dict[str, float] = {}
    for name, scalar in raw.items():
        value = scalar.get("value") if isinstance(scalar, Mapping) else scalar
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise QuotaError(f"Invalid 'QuotaConfig.{field}': '{name}' needs a numeric 'value'")
        value = float(value)
        kind = "guarantee" if field == "guarantees" else "limit"
        if math.isnan(value) or math.isinf(value) or value < 0:
            problem = ("NaN not supported" if math.isnan(value) else
                       "Infinite values not supported" if math.isinf(value) else
                       "Negative values not supported")
            raise QuotaError(f"Invalid {kind} configuration {{'{name}': {value:g}}}: {problem}")
        too_large = value > (_EXABYTE_MB if name in ("mem", "disk") else _TRILLION)
        if too_large:
            raise QuotaError(
                f"Invalid 'QuotaConfig.{field}': {{'{name}': {value:g}}} is invalid: values "
                "greater than " + ("1 exabyte" if name in ("mem", "disk") else "1 trillion")
                + " are not supported"
            )
        out[name] = value
    return out


def parse_config(raw: object, allowed_roles: frozenset[str] | None) -> tuple[str, StoredQuota]:
    """One wire QuotaConfig -> (role, stored quota). Raises QuotaError (Mesos's messages)."""
    if not isinstance(raw, Mapping):
        raise QuotaError("Invalid QuotaConfig: expected an object")
    role = raw.get("role")
    if not role or not isinstance(role, str):
        raise QuotaError("Invalid QuotaConfig: 'QuotaConfig.role' must be set")
    problem = role_error(role)
    if problem is not None:
        raise QuotaError(f"Invalid QuotaConfig: Invalid 'QuotaConfig.role': {problem}")
    if allowed_roles is not None and role not in allowed_roles:
        raise QuotaError(f"Invalid QuotaConfig: '{role}' is not on the roles whitelist")
    if "/" in role:
        raise QuotaError(f"Updating quota on nested role '{role}' is not supported yet")
    try:
        guarantees = _scalars("guarantees", raw.get("guarantees"))
        limits = _scalars("limits", raw.get("limits"))
    except QuotaError as exc:
        raise QuotaError(f"Invalid QuotaConfig: {exc}") from None
    for name, guarantee in guarantees.items():
        limit = limits.get(name)
        if limit is not None and guarantee > limit:
            raise QuotaError(
                f"Invalid QuotaConfig: guarantee {{'{name}': {guarantee:g}}} of role '{role}'"
                f" is larger than its limit {{'{name}': {limit:g}}}"
            )
    return role, {"guarantees": guarantees, "limits": limits}


def from_quota_request(raw: object) -> tuple[str, StoredQuota, bool]:
    """SET_QUOTA's QuotaRequest -> (role, guarantees = limits, force)."""
    if not isinstance(raw, Mapping):
        raise QuotaError("Failed to validate set quota request: expected 'quota_request'")
    role = raw.get("role")
    if not role or not isinstance(role, str):
        raise QuotaError("Failed to validate set quota request: QuotaInfo must specify a role")
    problem = role_error(role)
    if problem is not None:
        raise QuotaError(
            f"Failed to validate set quota request: QuotaInfo with invalid role: {problem}")
    resources = raw.get("guarantee") or []
    if not isinstance(resources, list):
        raise QuotaError("Failed to validate set quota request: 'guarantee' must be a list of "
                         "resources")
    if not resources:
        raise QuotaError("Failed to validate set quota request: QuotaInfo with empty 'guarantee'")
    quantities: dict[str, Any] = {}
    for resource in resources:
        if not isinstance(resource, Mapping) or resource.get("type", "SCALAR") != "SCALAR":
            raise QuotaError("Failed to validate set quota request: "
                             "QuotaInfo must not include non-scalar resources")
        if resource.get("reservations") or resource.get("reservation"):
            raise QuotaError("Failed to validate set quota request: "
                             "QuotaInfo must not contain any ReservationInfo")
        name = resource.get("name")
        if not isinstance(name, str) or not name:
            raise QuotaError("Failed to validate set quota request: "
                             "each resource of 'guarantee' needs a 'name' string")
        if name in quantities:
            raise QuotaError("Failed to validate set quota request: "
                             f"QuotaInfo contains duplicate resource name '{name}'")
        quantities[name] = resource.get("scalar") or {}
    _, stored = parse_config({"role": role, "guarantees": quantities, "limits": quantities}, None)
    return role, stored, bool(raw.get("force"))


def to_quota(stored: Mapping[str, Mapping[str, float]]) -> Quota:
    return Quota(guarantees=dict(stored.get("guarantees", {})),
                 limits=dict(stored.get("limits", {})))


def quota_status(quotas: Mapping[str, StoredQuota]) -> dict[str, Any]:
    """QuotaStatus JSON: `configs` and the deprecated `infos` (guarantees as Resources)."""
    configs, infos = [], []
    for role in sorted(quotas):
        q = quotas[role]
        configs.append({
            "role": role,
            "guarantees": {n: {"value": v} for n, v in sorted(q["guarantees"].items())},
            "limits": {n: {"value": v} for n, v in sorted(q["limits"].items())},
        })
        infos.append({"role": role, "guarantee": [
            {"name": n, "type": "SCALAR", "scalar": {"value": v}}
            for n, v in sorted(q["guarantees"].items())
        ]})
    return {"infos": infos, "configs": configs}


def exceeds(consumed: Mapping[str, float], limits: Mapping[str, float]) -> bool:
    return any(consumed.get(name, 0.0) > limit + 1e-9 for name, limit in limits.items())


def format_quantities(q: Mapping[str, float]) -> str:
    return "; ".join(f"{name}:{value:g}" for name, value in sorted(q.items()))
