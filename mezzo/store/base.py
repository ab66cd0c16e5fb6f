"""The durable versioned key/value contract the registry is written against.

Every store keeps, per key, an opaque byte value and an integer version:

- ``get(key)`` returns ``Entry(value, version)`` or ``None``;
- ``set(key, value, expected_version)`` is compare-and-swap: with ``expected_version=None`` it
  creates the key and fails if it exists; otherwise it replaces the value only if the current
  version equals ``expected_version``. It returns the new version. Any mismatch (including a
  missing key when a version was expected) raises ``VersionConflict``;
- ``delete(key, expected_version=None)`` removes a key (unconditionally, or only at that version);
- ``list(prefix)`` returns the keys that start with ``prefix``, sorted;
- ``get_many(keys)`` is ``get`` of each, possibly pipelined;
- ``commit(ops)`` applies several conditional writes and deletes (``Put``, ``Remove``)
  atomically: all of them, or none and ``VersionConflict`` for the first that failed its check.

Versions follow ZooKeeper's znode semantics in every implementation, so that code tested against
the in-memory store behaves the same on ZooKeeper: a created key has version 0 and each
successful ``set`` adds one. A key deleted and created again starts at 0 again (the classic ABA
caveat of znode versions): a check that a key is absent, or at version 0, cannot see that
another writer created and deleted it meanwhile. The registrar's operations each touch several
keys in one ``commit``, so another master's changes show on at least one of them.

The API is synchronous: SQLite and the in-memory store are fast, and ZooKeeper calls are short
round trips. Asyncio callers use the ``a*`` wrappers, which run the call in a worker thread.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from types import TracebackType

from mezzo.core.errors import MezzoError, ValidationError

# Keys are text; they may contain "/" (the registry uses "agents/<id>"-style names).
MAX_KEY_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored value and the version to pass back to ``set``/``delete`` for compare-and-swap."""

    value: bytes
    version: int


class StoreError(MezzoError):
    """A store operation failed for a reason other than a version conflict (I/O, session...)."""


class VersionConflict(StoreError):
    """A compare-and-swap lost: the key's current version is not the expected one."""

    def __init__(self, key: str, expected: int | None, actual: int | None) -> None:
        def show(version: int | None) -> str:
            return "absent" if version is None else f"version {version}"

        super().__init__(
            f"version conflict on {key!r}: expected {show(expected)}, found {show(actual)}"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Put:
    """In a ``commit``: write ``value``; ``expected_version`` None means the key must be absent."""

    key: str
    value: bytes
    expected_version: int | None


@dataclass(frozen=True, slots=True)
class Remove:
    """In a ``commit``: delete the key, which must exist at ``expected_version``."""

    key: str
    expected_version: int


StoreOp = Put | Remove


def check_key(key: str) -> str:
    """Reject keys no implementation can store; returns the key for chaining."""
    if not isinstance(key, str) or not key:
        raise ValidationError("store key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"store key longer than {MAX_KEY_LENGTH} characters")
    if "\x00" in key:
        raise ValidationError("store key must not contain NUL")
    return key


def check_value(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValidationError(f"store value must be bytes, not {type(value).__name__}")
    return bytes(value)


class Store(abc.ABC):
    """A durable versioned key/value store (see the module docstring for the contract)."""

    @abc.abstractmethod
    def get(self, key: str) -> Entry | None:
        """The entry under ``key``, or None when absent."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes, expected_version: int | None) -> int:
        """Compare-and-swap; returns the new version or raises ``VersionConflict``."""

    @abc.abstractmethod
    def delete(self, key: str, expected_version: int | None = None) -> bool:
        """Remove ``key``; True if it existed. A version mismatch raises ``VersionConflict``."""

    @abc.abstractmethod
    def commit(self, ops: list[StoreOp]) -> list[int | None]:
        """Apply ``ops`` atomically, in order; the new version of each ``Put`` (None for a
        ``Remove``). If any check fails nothing is applied and ``VersionConflict`` names it."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection/file; further calls are errors. Idempotent."""

    # ---- conveniences built on the primitives -------------------------------------------

    def items(self, prefix: str = "") -> dict[str, Entry]:
        """Every entry under ``prefix`` (keys deleted between list and get are skipped)."""
        found: dict[str, Entry] = {}
        for key in self.list(prefix):
            entry = self.get(key)
            if entry is not None:
                found[key] = entry
        return found

    def get_many(self, keys: list[str]) -> list[Entry | None]:
        """``get`` of each key, in order. Stores with a network round trip per call override
        it to send all the reads at once (ZooKeeper pipelines them on its one connection)."""
        return [self.get(key) for key in keys]

    def put(self, key: str, value: bytes) -> int:
        """Unconditional write (create or overwrite), retrying CAS races; returns the version."""
        while True:
            current = self.get(key)
            try:
                return self.set(key, value, None if current is None else current.version)
            except VersionConflict:
                continue

    # ---- asyncio wrappers: run the synchronous call in a worker thread ------------------

    async def aget(self, key: str) -> Entry | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, expected_version: int | None) -> int:
        return await asyncio.to_thread(self.set, key, value, expected_version)

    async def adelete(self, key: str, expected_version: int | None = None) -> bool:
        return await asyncio.to_thread(self.delete, key, expected_version)

    async def alist(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self.list, prefix)

    async def aitems(self, prefix: str = "") -> dict[str, Entry]:
        return await asyncio.to_thread(self.items, prefix)

    async def aput(self, key: str, value: bytes) -> int:
        return await asyncio.to_thread(self.put, key, value)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
