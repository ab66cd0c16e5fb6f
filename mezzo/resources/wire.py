"""Conversion between wire `mezzo.api.common.Resource` records and internal resource items,
and validation of wire resources (what the master checks before accepting them).

Input accepts both reservation formats (spec §5.3):
- post-refinement: `reservations` = stack of `{type, role, principal, labels}`, bottom first;
- pre-refinement: `role` (`"*"` = unreserved) plus an optional `reservation`
  `{principal, labels}` marking a dynamic reservation; converted to a one-entry stack.
Output produces either format on request, and `allocation_info` only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from mezzo.api import common as api
from mezzo.core.errors import ValidationError
from mezzo.resources import values
from mezzo.resources.disk import DiskKey
from mezzo.resources.keys import DYNAMIC, STATIC, LabelPairs, Reservation, ResourceItem, ResourceKey
from mezzo.resources.roles import DEFAULT_ROLE, is_ancestor, role_error

_KIND_OF_TYPE = {
    api.ValueType.SCALAR: values.SCALAR,
    api.ValueType.RANGES: values.RANGES,
    api.ValueType.SET: values.SET,
}
_TYPE_OF_KIND = (api.ValueType.SCALAR, api.ValueType.RANGES, api.ValueType.SET)
_DISK_DECODER = msgspec.json.Decoder(api.DiskInfo)


def _labels_in(labels: api.Labels | None) -> LabelPairs | None:
    if labels is None:
        return None
    return tuple((lab.key, lab.value) for lab in labels.labels)


def _labels_out(labels: LabelPairs | None) -> api.Labels | None:
    if labels is None:
        return None
    return api.Labels(labels=[api.Label(key=k, value=v) for k, v in labels])


def _check_role(role: str | None, where: str) -> str:
    if role is None:
        raise ValidationError(f"{where}: reservation has no role")
    err = role_error(role)
    if err is not None:
        raise ValidationError(f"{where}: invalid role: {err}")
    return role


def reservations_from_wire(r: api.Resource, where: str) -> tuple[Reservation, ...]:
    """The reservation stack of a wire resource in either format, validated."""
    if r.reservations:
        stack: list[Reservation] = []
        for info in r.reservations:
            role = _check_role(info.role, where)
            if role == DEFAULT_ROLE:
                raise ValidationError(f"{where}: cannot reserve to role '*'")
            # As Mesos's Resources::validate: the type must be set (an unknown name, which
            # the JSON decoding drops as stout does, leaves it unset).
            if info.type is None:
                raise ValidationError(
                    f"{where}: Invalid reservation: 'Resource.ReservationInfo.type' field must be set")
            if info.type == api.ReservationType.UNKNOWN:
                raise ValidationError(f"{where}: reservation type UNKNOWN")
            rtype = STATIC if info.type == api.ReservationType.STATIC else DYNAMIC
            if stack:
                below = stack[-1]
                if rtype == STATIC and below.type == DYNAMIC:
                    raise ValidationError(
                        f"{where}: a STATIC reservation cannot refine a DYNAMIC one"
                    )
                if not is_ancestor(below.role, role):
                    raise ValidationError(
                        f"{where}: reservation to '{role}' does not refine '{below.role}'"
                        " (each entry must reserve to a sub-role of the one below)"
                    )
            stack.append(Reservation(rtype, role, info.principal, _labels_in(info.labels)))
        return tuple(stack)
    given: str | None = r.role
    if given is None or given == DEFAULT_ROLE:
        if r.reservation is None:
            return ()
        given = r.reservation.role  # some old clients put the role inside `reservation`
        if given is None or given == DEFAULT_ROLE:
            raise ValidationError(f"{where}: a dynamic reservation needs a role other than '*'")
    role = _check_role(given, where)
    if r.reservation is None:
        return (Reservation(STATIC, role),)
    res = r.reservation
    return (Reservation(DYNAMIC, role, res.principal, _labels_in(res.labels)),)


def value_from_wire(r: api.Resource, where: str) -> values.Value:
    kind = _KIND_OF_TYPE.get(r.type)
    if kind is None:
        raise ValidationError(f"{where}: resources must be SCALAR, RANGES or SET, not {r.type}")
    present = [
        f for f, v in (("scalar", r.scalar), ("ranges", r.ranges), ("set", r.set)) if v is not None
    ]
    expected = ("scalar", "ranges", "set")[kind]
    for field in present:
        if field != expected:
            raise ValidationError(f"{where}: a {r.type} resource must not carry '{field}'")
    if kind == values.SCALAR:
        if r.scalar is None:
            raise ValidationError(f"{where}: SCALAR resource without 'scalar'")
        try:
            return values.scalar_to_fixed(r.scalar.value)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
    if kind == values.RANGES:
        if r.ranges is None:
            raise ValidationError(f"{where}: RANGES resource without 'ranges'")
        return values.check_ranges(
            ((x.begin, x.end) for x in r.ranges.range), what=f"{where} ranges"
        )
    if r.set is None:
        raise ValidationError(f"{where}: SET resource without 'set'")
    items = r.set.item
    out = frozenset(items)
    if len(out) != len(items):
        raise ValidationError(f"{where}: duplicate items in set")
    return out


def item_from_wire(r: api.Resource) -> ResourceItem:
    """Validate one wire resource and convert it; raises ValidationError naming the problem."""
    name = r.name
    if (  # fast path: the plain unreserved scalar of nearly every task (`cpus:1`, `mem:32`)
        r.type is api.ValueType.SCALAR
        and r.scalar is not None
        and r.scalar.value >= 0
        and r.ranges is None
        and r.set is None
        and not r.reservations
        and r.reservation is None
        and (r.role is None or r.role == DEFAULT_ROLE)
        and r.allocation_info is None
        and r.disk is None
        and r.revocable is None
        and r.shared is None
        and r.provider_id is None
        and name
        and name != "gpus"
        and name == name.strip()
    ):
        try:
            fixed = values.scalar_to_fixed(r.scalar.value)
        except ValidationError as exc:
            raise ValidationError(f"invalid resource '{name}': {exc}") from None
        return ResourceItem(ResourceKey(name, values.SCALAR, (), None, None, False, False, None), fixed)
    where = f"invalid resource '{name}'"
    if not name or name != name.strip():
        raise ValidationError(f"invalid resource name {name!r}")
    value = value_from_wire(r, where)
    reservations = reservations_from_wire(r, where)
    alloc: str | None = None
    if r.allocation_info is not None and r.allocation_info.role is not None:
        alloc = _check_role(r.allocation_info.role, where)
    if name == "gpus" and type(value) is int and value % values.SCALE:
        raise ValidationError(
            f"{where}: gpus must be a whole number, not {values.format_scalar(value)}"
        )
    shared = r.shared is not None
    if shared and (r.disk is None or r.disk.persistence is None):
        raise ValidationError(f"{where}: only persistent volumes can be shared")
    if shared and r.revocable is not None:
        raise ValidationError(f"{where}: a shared resource cannot be revocable")
    disk = DiskKey(r.disk) if r.disk is not None else None
    provider = r.provider_id.value if r.provider_id is not None else None
    key = ResourceKey(
        name,
        _KIND_OF_TYPE[r.type],
        reservations,
        alloc,
        disk,
        r.revocable is not None,
        shared,
        provider,
    )
    return ResourceItem(key, value)


def items_from_wire(resources: Iterable[api.Resource]) -> list[ResourceItem]:
    return [item_from_wire(r) for r in resources]


def validate(resources: Iterable[api.Resource]) -> None:
    """Raise ValidationError if any wire resource is malformed (negative, non-finite or too
    large, empty name, fractional gpus, bad ranges or sets, bad reservation stack or role, bad
    sharing) or if the amounts of one resource add up beyond the scalar bound."""
    check_totals(items_from_wire(resources))


def check_totals(items: Iterable[ResourceItem]) -> None:
    """The scalars of one resource (same identity) must not add up beyond the bound."""
    totals: dict[ResourceKey, int] = {}
    for key, value in items:
        if type(value) is int:
            total = totals[key] = totals.get(key, 0) + value
            values.check_total(total, f"invalid resource '{key.name}'")


def item_to_wire(
    item: ResourceItem, *, refinement: bool = True, with_allocation: bool = False
) -> api.Resource:
    key, value = item
    r = api.Resource(name=key.name, type=_TYPE_OF_KIND[key.kind])
    # The key's kind and the value's type agree (values.kind_of); test the value so the
    # type checker follows.
    if isinstance(value, int):
        r.scalar = api.Scalar(value=value / values.SCALE)
    elif isinstance(value, tuple):
        r.ranges = api.Ranges(range=[api.Range(begin=b, end=e) for b, e in value])
    else:
        r.set = api.ValueSet(item=sorted(value))
    stack = key.reservations
    if refinement:
        if stack:
            r.reservations = [
                api.ReservationInfo(
                    type=api.ReservationType(res.type),
                    role=res.role,
                    principal=res.principal,
                    labels=_labels_out(res.labels),
                )
                for res in stack
            ]
    elif not stack:
        r.role = DEFAULT_ROLE
    else:
        # Pre-refinement can express one level only: the role reserved to, plus the
        # dynamic reservation's principal/labels. Refined resources are not offered to
        # frameworks lacking RESERVATION_REFINEMENT, so the top entry is what matters.
        top = stack[-1]
        r.role = top.role
        if top.type == DYNAMIC:
            r.reservation = api.ReservationInfo(
                principal=top.principal, labels=_labels_out(top.labels)
            )
    if with_allocation and key.allocation_role is not None:
        r.allocation_info = api.AllocationInfo(role=key.allocation_role)
    if key.disk is not None:
        r.disk = _DISK_DECODER.decode(key.disk)  # a DiskKey holds the whole DiskInfo
    if key.revocable:
        r.revocable = api.RevocableInfo()
    if key.shared:
        r.shared = api.SharedInfo()
    if key.provider_id is not None:
        r.provider_id = api.ResourceProviderID(value=key.provider_id)
    return r
