"""Records shared by the scheduler, executor and operator APIs (Mesos `mesos.proto`).

Only the resource-related records are here so far; the rest of the common records follow.
"""

from __future__ import annotations

from enum import StrEnum

from mezzo.api.base import Message


class ValueType(StrEnum):
    SCALAR = "SCALAR"
    RANGES = "RANGES"
    SET = "SET"
    TEXT = "TEXT"


class Scalar(Message):
    value: float


class Range(Message):
    begin: int
    end: int


class Ranges(Message):
    range: list[Range] = []


class ValueSet(Message):
    item: list[str] = []


class Text(Message):
    value: str


class Label(Message):
    key: str
    value: str | None = None


class Labels(Message):
    labels: list[Label] = []


class ReservationType(StrEnum):
    UNKNOWN = "UNKNOWN"
    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"


class ReservationInfo(Message):
    """One entry of a resource's reservation stack (or the pre-refinement `reservation`)."""

    type: ReservationType | None = None
    role: str | None = None
    principal: str | None = None
    labels: Labels | None = None


class AllocationInfo(Message):
    role: str | None = None


class Persistence(Message):
    id: str
    principal: str | None = None


class Volume(Message):
    container_path: str
    mode: str | None = None
    host_path: str | None = None


class DiskSource(Message):
    type: str | None = None
    path: dict | None = None
    mount: dict | None = None
    id: str | None = None
    profile: str | None = None


class DiskInfo(Message):
    persistence: Persistence | None = None
    volume: Volume | None = None
    source: DiskSource | None = None


class RevocableInfo(Message):
    pass


class SharedInfo(Message):
    pass


class ResourceProviderID(Message):
    value: str


class Resource(Message):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: ValueSet | None = None
    role: str | None = None
    allocation_info: AllocationInfo | None = None
    reservation: ReservationInfo | None = None
    reservations: list[ReservationInfo] = []
    disk: DiskInfo | None = None
    revocable: RevocableInfo | None = None
    shared: SharedInfo | None = None
    provider_id: ResourceProviderID | None = None


class Attribute(Message):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: ValueSet | None = None
    text: Text | None = None
