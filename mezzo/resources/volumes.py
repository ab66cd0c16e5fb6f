"""Persistent volumes as resource conversions, and the resource-level checks Mesos makes of them.

Conversions (Mesos's `getResourceConversions`, `src/common/resources_utils.cpp`): each is a
`(consumed, converted)` pair of `Resources` with the same quantities.

- CREATE: the volume's disk *stripped* of persistence and volume (a ROOT disk loses its
  DiskInfo, a PATH/MOUNT disk keeps its source; never shared) becomes the volume;
- DESTROY: the volume becomes its stripped disk again;
- GROW_VOLUME: the volume plus the addition (stripped disk of the same kind) becomes one
  bigger volume;
- SHRINK_VOLUME: the volume becomes a smaller one plus the freed stripped disk.

Checks (Mesos's `src/master/validation.cpp`, `namespace resource`), each returning the message
Mesos gives or None: `disk_info_problem` (validateDiskInfo), `persistent_volume_problem`
(validatePersistentVolume), `unique_persistence_id_problem` (validateUniquePersistenceID),
`id_problem` (common validateID). Master-level rules (principals, capabilities, what is
checkpointed or in use) are the master's (`mezzo.master.volumes`).
"""

from __future__ import annotations

import os.path
from collections.abc import Iterable

from mezzo.api import common as api
from mezzo.resources import values
from mezzo.resources.conversions import Conversion
from mezzo.resources.disk import MOUNT, DiskKey, as_disk_key, source_root
from mezzo.resources.keys import ResourceItem, ResourceKey
from mezzo.resources.resources import Resources

Conversions = list[Conversion]

_NAME_MAX = 255


def id_problem(value: str) -> str | None:
    """Mesos's `common::validation::validateID`."""
    if not value:
        return "ID must not be empty"
    if len(value) > _NAME_MAX:
        return f"ID must not be greater than {_NAME_MAX} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"'{value}' contains invalid characters"
    return None


def disk_of(key: ResourceKey) -> api.DiskInfo | None:
    disk = as_disk_key(key.disk)
    return None if disk is None else disk.info()


def is_persistent_volume(key: ResourceKey) -> bool:
    disk = as_disk_key(key.disk)
    return disk is not None and disk.persistence_id is not None


def stripped_key(key: ResourceKey) -> ResourceKey:
    """The disk a volume was carved out of: no persistence, no volume, not shared."""
    info = disk_of(key)
    disk: DiskKey | None = None
    if info is not None and info.source is not None:
        disk = DiskKey(api.DiskInfo(source=info.source))
    return key._replace(disk=disk, shared=False)


def strip(resources: Resources) -> Resources:
    return Resources(ResourceItem(stripped_key(it.key), it.value) for it in resources)


# --------------------------------------------------------------------------- conversions


def create(volumes: Resources) -> Conversions:
    return [Conversion(strip(one), one) for one in _each(volumes)]


def destroy(volumes: Resources) -> Conversions:
    return [Conversion(one, strip(one)) for one in _each(volumes)]


def grow(volume: Resources, addition: Resources) -> Conversions:
    """`volume` (one volume) grown by `addition` (scalar disk)."""
    (item,) = list(volume)
    extra = sum(it.value for it in addition if isinstance(it.value, int))
    size = item.value if isinstance(item.value, int) else 0
    grown = Resources([ResourceItem(item.key, size + extra)])
    return [Conversion(volume + addition, grown)]


def shrink(volume: Resources, subtract: int) -> Conversions:
    """`volume` (one volume) shrunk by `subtract` thousandths; the rest is freed disk."""
    (item,) = list(volume)
    size = item.value if isinstance(item.value, int) else 0
    shrunk = ResourceItem(item.key, size - subtract)
    freed = ResourceItem(stripped_key(item.key), subtract)
    return [Conversion(volume, Resources([shrunk]) + Resources([freed]))]


def scalar_fixed(value: float) -> int:
    """A wire scalar in thousandths (ValidationError if it is not a usable amount)."""
    return values.scalar_to_fixed(value)


def _each(resources: Resources) -> Iterable[Resources]:
    for item in resources:
        yield Resources([item])


# --------------------------------------------------------------------------- checks


def disk_info_problem(resources: Resources) -> str | None:
    """Mesos's `validateDiskInfo` (callers prefix `Invalid DiskInfo: `)."""
    for item in resources:
        info = disk_of(item.key)
        if info is None:
            continue
        if info.persistence is not None:
            if item.key.revocable:
                return "Persistent volumes cannot be created from revocable resources"
            if not item.key.reservations:
                return "Persistent volumes cannot be created from unreserved resources"
            if info.volume is None:
                return "Expecting 'volume' to be set for persistent volume"
            if info.volume.host_path is not None:
                return "Expecting 'host_path' to be unset for persistent volume"
            problem = id_problem(info.persistence.id)
            if problem is not None:
                return f"Invalid persistence ID for persistent volume: {problem}"
        elif info.volume is not None:
            return "Non-persistent volume not supported"
        elif info.source is None:
            return "DiskInfo is set but empty"
    return None


def persistent_volume_problem(resources: Resources) -> str | None:
    """Mesos's `validatePersistentVolume`: every resource is a (read-write) volume."""
    for item in resources:
        info = disk_of(item.key)
        if info is None:
            return f"Resource {Resources([item])} does not have DiskInfo"
        if info.persistence is None:
            return "'persistence' is not set in DiskInfo"
        if info.volume is None:
            return "Expecting 'volume' to be set for persistent volume"
        if info.volume.mode == "RO":
            return "Read-only persistent volume not supported"
    return None


def unique_persistence_id_problem(resources: Iterable[ResourceItem]) -> str | None:
    """Mesos's `validateUniquePersistenceID`: ids are unique per role (on one agent). Give
    items, not a sum: `Resources` would merge two volumes with one id into one."""
    seen: set[tuple[str, str]] = set()
    for item in resources:
        disk = as_disk_key(item.key.disk)
        if disk is None or disk.persistence_id is None:
            continue
        ident = (item.key.reservation_role, disk.persistence_id)
        if ident in seen:
            return f"Persistence ID '{disk.persistence_id}' is not unique"
        seen.add(ident)
    return None


def volume_path(work_dir: str, item: ResourceItem) -> str:
    """Where a volume's data lives on its agent (Mesos's `paths::getPersistentVolumePath`):
    `<work_dir>/volumes/roles/<role>/<id>` for a ROOT disk (a `/` in a nested role is written
    as a space), the same under the root of a PATH disk (a relative root is under the work
    dir), and the root itself for a MOUNT disk."""
    info = disk_of(item.key)
    assert info is not None and info.persistence is not None
    role = item.key.reservation_role.replace("/", " ")
    base = work_dir
    if info.source is not None:
        root = source_root(info)
        if root is None:
            raise ValueError(f"{info.source.type} disk without a root")
        if info.source.type == MOUNT:
            return root
        base = root if os.path.isabs(root) else os.path.join(work_dir, root)
    return os.path.join(base, "volumes", "roles", role, info.persistence.id)

