"""The identity of a resource: everything except its amount.

Two resources with equal `ResourceKey`s are the same kind of thing and their values add up;
different keys never mix (reserved cpus are not unreserved cpus, revocable memory is not
regular memory). Keys are small hashable tuples so `Resources` can be a plain dict
`ResourceKey -> value` with no msgspec objects on the hot path.
"""

from __future__ import annotations

from typing import NamedTuple

from mezzo.resources import values

STATIC = "STATIC"
DYNAMIC = "DYNAMIC"

LabelPairs = tuple[tuple[str, str | None], ...]


class Reservation(NamedTuple):
    """One entry of a reservation stack (post-refinement `ReservationInfo`)."""

    type: str  # STATIC | DYNAMIC
    role: str
    principal: str | None = None
    labels: LabelPairs | None = None


class ResourceKey(NamedTuple):
    name: str
    kind: int  # values.SCALAR | values.RANGES | values.SET
    # Bottom first; empty means unreserved. The last entry names the role it is reserved to.
    reservations: tuple[Reservation, ...] = ()
    allocation_role: str | None = None
    # DiskInfo canonically encoded as JSON bytes (hashable); decoded again only for output.
    disk: bytes | None = None
    revocable: bool = False
    shared: bool = False
    provider_id: str | None = None

    @property
    def reservation_role(self) -> str:
        """The role this resource is reserved to, or `*` when unreserved."""
        return self.reservations[-1].role if self.reservations else "*"

    @property
    def is_reserved(self) -> bool:
        return bool(self.reservations)


class ResourceItem(NamedTuple):
    """One resource as seen when iterating a `Resources`: its identity and its value."""

    key: ResourceKey
    value: values.Value

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def role(self) -> str:
        return self.key.reservation_role

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        return self.key.reservations

    @property
    def allocation_role(self) -> str | None:
        return self.key.allocation_role

    @property
    def revocable(self) -> bool:
        return self.key.revocable

    @property
    def shared(self) -> bool:
        return self.key.shared

    @property
    def quantity(self) -> float:
        return values.quantity(self.value)

    @property
    def scalar(self) -> float:
        """The scalar amount as a float (thousandths resolution); 0.0 for non-scalars."""
        return self.value / values.SCALE if type(self.value) is int else 0.0
