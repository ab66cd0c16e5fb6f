"""Resource conversions: what an offer operation turns into what (Mesos's `ResourceConversion`,
`getResourceConversions`, `Resources::apply` and `applyCheckpointedResources`).

A `Conversion` consumes some resources and produces others of the same quantities: RESERVE
pushes one reservation onto the stack of what it consumes (a refinement when the stack was not
empty: `eng` -> `eng/backend`), UNRESERVE pops the top one. Persistent volumes (CREATE,
DESTROY, GROW_VOLUME, SHRINK_VOLUME) are conversions too, built by `mezzo.resources.volumes`.

`apply(resources, conversions)` is all or nothing: each conversion in turn must find what it
consumes (`ConversionError("<resources> does not contain <consumed>")`, Mesos's words), so a
list that fails half-way changes nothing for the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from mezzo.api import common as api
from mezzo.core.errors import ValidationError
from mezzo.resources.disk import DiskKey, as_disk_key
from mezzo.resources.keys import DYNAMIC, ResourceItem, ResourceKey
from mezzo.resources.resources import Resources


class ConversionError(ValidationError):
    """A conversion could not be applied (what it consumes is not there)."""


class Conversion(NamedTuple):
    consumed: Resources
    converted: Resources

    def unallocated(self) -> Conversion:
        return Conversion(self.consumed.unallocate(), self.converted.unallocate())


def apply(resources: Resources, conversions: Iterable[Conversion]) -> Resources:
    """`resources` after every conversion, in order; ConversionError if one does not fit."""
    result = resources
    for conversion in conversions:
        if not result.contains(conversion.consumed):
            raise ConversionError(f"{result} does not contain {conversion.consumed}")
        result = result - conversion.consumed + conversion.converted
    return result


def reserve(resources: Resources, source: Resources | None = None) -> list[Conversion]:
    """RESERVE: `resources` carry the new reservation on top of their stack; what they
    consume is `source` if given, else the same resources with that reservation popped."""
    consumed = source if source is not None and source else resources.pop_reservation()
    return [Conversion(consumed, resources)]


def unreserve(resources: Resources) -> list[Conversion]:
    """UNRESERVE: each resource loses its top reservation (one level at a time, as Mesos)."""
    return [
        Conversion(Resources([item]), Resources([item]).pop_reservation()) for item in resources
    ]


def of_operation(operation: api.OfferOperation) -> list[Conversion]:
    """The conversions of a RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME or
    SHRINK_VOLUME operation, its resources validated and without allocation info (as the agent
    and the agent's total hold them)."""
    from mezzo.resources import volumes

    match operation.type:
        case api.OfferOperationType.RESERVE if operation.reserve is not None:
            source = Resources.from_wire(operation.reserve.source).unallocate()
            return reserve(Resources.from_wire(operation.reserve.resources).unallocate(), source)
        case api.OfferOperationType.UNRESERVE if operation.unreserve is not None:
            return unreserve(Resources.from_wire(operation.unreserve.resources).unallocate())
        case api.OfferOperationType.CREATE if operation.create is not None:
            return volumes.create(Resources.from_wire(operation.create.volumes).unallocate())
        case api.OfferOperationType.DESTROY if operation.destroy is not None:
            return volumes.destroy(Resources.from_wire(operation.destroy.volumes).unallocate())
        case api.OfferOperationType.GROW_VOLUME if operation.grow_volume is not None:
            grow = operation.grow_volume
            return volumes.grow(Resources.from_wire([grow.volume]).unallocate(),
                                Resources.from_wire([grow.addition]).unallocate())
        case api.OfferOperationType.SHRINK_VOLUME if operation.shrink_volume is not None:
            shrink = operation.shrink_volume
            return volumes.shrink(Resources.from_wire([shrink.volume]).unallocate(),
                                  volumes.scalar_fixed(shrink.subtract.value))
    raise ConversionError(f"Operation {operation.type} is not supported on agent default resources")


def consumed(conversions: Sequence[Conversion]) -> Resources:
    total = Resources()
    for conversion in conversions:
        total = total + conversion.consumed
    return total


# --------------------------------------------------------------------------- checkpointed


def needs_checkpointing(key: ResourceKey) -> bool:
    """Mesos's `needCheckpointing`: dynamically reserved resources and persistent volumes."""
    if key.reservations and key.reservations[-1].type == DYNAMIC:
        return True
    disk = as_disk_key(key.disk)
    return disk is not None and disk.persistence_id is not None


def _stripped_key(key: ResourceKey) -> ResourceKey:
    """What a checkpointed resource was carved out of: the resource without its dynamic
    reservations and without persistence (a volume's disk source stays)."""
    stack = key.reservations
    while stack and stack[-1].type == DYNAMIC:
        stack = stack[:-1]
    disk = as_disk_key(key.disk)
    if disk is not None:
        info = disk.info()
        if info.persistence is not None or info.volume is not None:
            disk = None if info.source is None else DiskKey(api.DiskInfo(source=info.source))
    return key._replace(reservations=stack, disk=disk, shared=False, allocation_role=None)


def checkpointed_after(checkpointed: Resources, conversions: Sequence[Conversion]) -> Resources:
    """The checkpointed resources after (unallocated) conversions: what they consume leaves,
    what they make joins if it is checkpointed."""
    for c in conversions:
        checkpointed = (checkpointed - c.consumed.filter(needs_checkpointing)
                        + c.converted.filter(needs_checkpointing))
    return checkpointed


def strip_checkpointed(resources: Resources) -> Resources:
    """Checkpointed resources as the agent's static resources hold them."""
    return Resources(ResourceItem(_stripped_key(it.key), it.value) for it in resources)


def apply_checkpointed(total: Resources, checkpointed: Resources) -> Resources:
    """The agent's total: its static resources with the checkpointed (dynamically reserved,
    persistent) ones carved out of them. ConversionError if the static resources do not hold
    them (the agent's `--resources` shrank incompatibly)."""
    result = total
    for item in checkpointed:
        one = Resources([item])
        stripped = strip_checkpointed(one)
        if not result.contains(stripped):
            raise ConversionError(
                f"Checkpointed resources {one} are incompatible with agent resources {total}"
            )
        result = result - stripped + one
    return result
