"""`DiskKey`: a resource's `DiskInfo` inside its identity (`ResourceKey.disk`), compared as
Mesos compares DiskInfo (`src/common/resources.cpp`, `operator==(DiskInfo)`).

A DiskKey is the DiskInfo encoded as JSON bytes (so it hashes, and decodes back to the wire
record unchanged), but two DiskKeys are equal when their *identity* is: the disk `source`
(type, root, id, profile...) and the persistence `id`. The `volume` (container_path, mode) and
the persistence `principal` are left out, as Mesos leaves them out: they say how a framework
uses the volume, not which volume it is, so a task may name a volume with another
container_path or mode RO and still consume it.

Two kinds of disk are *atomic* (Mesos's `addable`/`subtractable`): persistent volumes and MOUNT
disks. They are never split: `Resources` subtracts or contains one only whole (same size).
"""

from __future__ import annotations

from typing import Any

import msgspec

from mezzo.api import common as api

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(api.DiskInfo)

MOUNT = "MOUNT"
PATH = "PATH"


def _identity(info: api.DiskInfo) -> bytes:
    # The DiskInfo without volume and persistence principal. A disk with only a source encodes
    # exactly as a plain `DiskInfo(source=...)` does, so such keys also match plain bytes.
    persistence = api.Persistence(id=info.persistence.id) if info.persistence is not None else None
    return _ENCODER.encode(api.DiskInfo(source=info.source, persistence=persistence))


class DiskKey(bytes):
    """DiskInfo as JSON bytes, equal and hashed by identity (see the module docstring)."""

    identity: bytes
    atomic: bool
    persistence_id: str | None
    source_type: str | None

    def __new__(cls, info: api.DiskInfo) -> DiskKey:
        self = super().__new__(cls, _ENCODER.encode(info))
        self.identity = _identity(info)
        self.persistence_id = info.persistence.id if info.persistence is not None else None
        self.source_type = info.source.type if info.source is not None else None
        self.atomic = self.persistence_id is not None or self.source_type == MOUNT
        return self

    @classmethod
    def from_json(cls, data: bytes) -> DiskKey:
        return cls(_DECODER.decode(data))

    def info(self) -> api.DiskInfo:
        """The wire DiskInfo (a fresh record each call)."""
        return _DECODER.decode(self)

    def _other_identity(self, other: object) -> bytes | None:
        if isinstance(other, DiskKey):
            return other.identity
        if isinstance(other, bytes):  # a plain encoded DiskInfo
            try:
                return _identity(_DECODER.decode(other))
            except msgspec.DecodeError:
                return None
        return None

    def __eq__(self, other: object) -> bool:
        ident = self._other_identity(other)
        return ident is not None and ident == self.identity

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.identity)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DiskKey.from_json, (bytes(self),))

    def describe(self) -> str:
        """Mesos's `operator<<(DiskInfo)`: `PATH:/mnt/a,id:data` (source, id, container path)."""
        info = self.info()
        out = ""
        if info.source is not None:
            src = info.source
            root = (src.mount or {}).get("root") if src.type == MOUNT else (
                (src.path or {}).get("root") if src.type == PATH else None)
            out += f"{src.type}" + (f":{root}" if root else "")
        if info.persistence is not None:
            out += ("," if info.source is not None else "") + info.persistence.id
        if info.volume is not None:
            out += ":" + info.volume.container_path
        return out


def disk_key(info: api.DiskInfo | None) -> DiskKey | None:
    return None if info is None else DiskKey(info)


def as_disk_key(disk: bytes | None) -> DiskKey | None:
    """A key's disk as a DiskKey (plain bytes from older code are decoded)."""
    if disk is None or isinstance(disk, DiskKey):
        return disk
    return DiskKey.from_json(disk)


def source_root(info: api.DiskInfo) -> str | None:
    """The `root` of a PATH or MOUNT source, or None."""
    src = info.source
    if src is None:
        return None
    holder = src.mount if src.type == MOUNT else src.path if src.type == PATH else None
    root = (holder or {}).get("root")
    return root if isinstance(root, str) else None
