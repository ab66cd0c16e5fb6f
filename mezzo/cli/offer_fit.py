"""Which of an offer's resources a `mezzo run` task takes, on wire dicts, without the SDK.

`take_from_offer(offer, wanted)` returns the task's resources (wire dicts, drawn from the
offer's own entries, so that they keep its roles, reservations and allocation) or None when
`wanted` does not fit.

Fast path: a `--resources` text of plain scalars (`cpus:0.1;mem:32`, the default and by far
the common case) is matched here exactly as `mezzo.scheduler.offers.take` matches it — per
name, reserved entries first, then in offer order; revocable and shared entries never — in
Mesos's fixed-point arithmetic (thousandths). Any other text (roles, ranges, sets, JSON) goes
through the SDK's `take` and `Resources` (imported then, paying their start-up time);
`tests/test_cli_run_lean.py` checks that both paths agree.
"""

from __future__ import annotations

import re

# Typing names for the checker only: importing `typing` costs `mezzo run` start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCALE = 1000  # mezzo.resources.values.SCALE: scalars are kept in thousandths
_SCALAR_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-/]*)\s*:\s*(\d+(?:\.\d*)?|\.\d+)\s*")


def plain_scalars(text: str) -> dict[str, int] | None:
    """`cpus:0.1;mem:32` → {"cpus": 100, "mem": 32000} (thousandths, summed per name); None
    when the text is anything but plain unreserved scalars (the SDK handles those)."""
    wanted: dict[str, int] = {}
    for token in text.split(";"):
        if not token.strip():
            continue
        match = _SCALAR_TOKEN.fullmatch(token)
        if match is None or match.group(1) == "gpus":  # gpus have their own rule: the SDK's
            return None
        name, value = match.group(1), round(float(match.group(2)) * SCALE)
        wanted[name] = wanted.get(name, 0) + value
    return wanted or None


def _reserved(resource: dict[str, Any]) -> bool:
    return bool(resource.get("reservations")) or resource.get("role") not in (None, "*")


def take_scalars(offered: list[dict[str, Any]], wanted: dict[str, int]) -> list[dict[str, Any]] | None:
    """The entries of `offered` that cover `wanted` (see the module docstring), or None."""
    picked: list[dict[str, Any]] = []
    for name, need in wanted.items():
        candidates = [
            r
            for r in offered
            if r.get("name") == name
            and r.get("type", "SCALAR") == "SCALAR"
            and "shared" not in r
            and "revocable" not in r
        ]
        candidates.sort(key=lambda r: not _reserved(r))  # stable: offer order otherwise
        for resource in candidates:
            if need <= 0:
                break
            have = round(float((resource.get("scalar") or {}).get("value", 0.0)) * SCALE)
            part = min(need, have)
            if part <= 0:
                continue
            picked.append({**resource, "scalar": {"value": part / SCALE}})
            need -= part
        if need > 0:
            return None
    return picked


def take_with_sdk(offer: dict[str, Any], wanted: str) -> list[dict[str, Any]] | None:
    """The general case, through the SDK's offer helpers (slow to import, complete)."""
    from mezzo.api.codec import convert, to_builtins
    from mezzo.api.common import Offer
    from mezzo.scheduler.offers import take

    resources = take(convert(offer, Offer), wanted)
    if resources is None:
        return None
    return list(to_builtins(resources.to_wire(refinement=False, with_allocation=True)))


def take_from_offer(offer: dict[str, Any], wanted: str) -> list[dict[str, Any]] | None:
    """The resources a task wanting `wanted` (a `--resources` text) takes from `offer`."""
    scalars = plain_scalars(wanted)
    if scalars is None:
        return take_with_sdk(offer, wanted)
    return take_scalars(offer.get("resources") or [], scalars)
