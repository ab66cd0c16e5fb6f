"""In-memory store: the contract without durability, for tests, `mezzo local` and the simulator."""

from __future__ import annotations

import threading

from mezzo.store.base import (
    Entry,
    Put,
    Store,
    StoreError,
    StoreOp,
    VersionConflict,
    check_key,
    check_value,
)


class MemoryStore(Store):
    """A dict behind a lock (the master may call from a worker thread via the ``a*`` wrappers)."""

    def __init__(self) -> None:
        self._data: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    def get(self, key: str) -> Entry | None:
        check_key(key)
        with self._lock:
            self._check_open()
            return self._data.get(key)

    def set(self, key: str, value: bytes, expected_version: int | None) -> int:
        version = self.commit([Put(key, value, expected_version)])[0]
        assert version is not None
        return version

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        check_key(key)
        with self._lock:
            self._check_open()
            current = self._data.get(key)
            if expected_version is not None:
                actual = None if current is None else current.version
                if actual != expected_version:
                    raise VersionConflict(key, expected_version, actual)
            return self._data.pop(key, None) is not None

    def commit(self, ops: list[StoreOp]) -> list[int | None]:
        for op in ops:
            check_key(op.key)
        with self._lock:
            self._check_open()
            # Check everything against the state as each earlier op would leave it, then apply.
            staged: dict[str, Entry | None] = {}
            results: list[int | None] = []
            for op in ops:
                current = staged[op.key] if op.key in staged else self._data.get(op.key)
                actual = None if current is None else current.version
                if actual != op.expected_version:
                    raise VersionConflict(op.key, op.expected_version, actual)
                if isinstance(op, Put):
                    version = 0 if current is None else current.version + 1
                    staged[op.key] = Entry(check_value(op.value), version)
                    results.append(version)
                else:
                    staged[op.key] = None
                    results.append(None)
            for key, entry in staged.items():
                if entry is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = entry
            return results

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(k for k in self._data if k.startswith(prefix))

    def close(self) -> None:
        with self._lock:
            self._closed = True
