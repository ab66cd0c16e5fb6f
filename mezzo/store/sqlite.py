"""SQLite store: the embedded, durable default registry (one file, WAL mode, transactional CAS).

Why these settings:
- WAL journal: readers never block the writer, and a crash leaves the last committed state.
- ``synchronous=FULL``: a registry write (an agent admitted, marked gone) must survive power
  loss once ``set`` returned, since the master acknowledges the agent afterwards.
- ``BEGIN IMMEDIATE`` around each compare-and-swap: the version check and the write happen under
  SQLite's write lock, so two processes sharing the file cannot both win a CAS.
- One connection shared by threads behind a lock (``check_same_thread=False``); the master's calls
  are short, so a connection pool would buy nothing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

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

DEFAULT_FILENAME = "registry.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key     TEXT PRIMARY KEY NOT NULL,
    value   BLOB NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID
"""


class SqliteStore(Store):
    """A store in one SQLite file; the parent directory is created if needed."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (sqlite3's implicit
            # transactions would start with a deferred BEGIN, which can deadlock-upgrade).
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open sqlite store {self.path}: {e}") from e
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is closed")
        return self._conn

    def get(self, key: str) -> Entry | None:
        check_key(key)
        with self._lock:
            try:
                row = (
                    self._db()
                    .execute("SELECT value, version FROM kv WHERE key = ?", (key,))
                    .fetchone()
                )
            except sqlite3.Error as e:
                raise StoreError(f"sqlite get {key!r}: {e}") from e
        return None if row is None else Entry(bytes(row[0]), int(row[1]))

    def _current_version(self, db: sqlite3.Connection, key: str) -> int | None:
        row = db.execute("SELECT version FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def set(self, key: str, value: bytes, expected_version: int | None) -> int:
        version = self.commit([Put(key, value, expected_version)])[0]
        assert version is not None
        return version

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        check_key(key)
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    actual = self._current_version(db, key)
                    if expected_version is not None and actual != expected_version:
                        raise VersionConflict(key, expected_version, actual)
                    db.execute("DELETE FROM kv WHERE key = ?", (key,))
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreError(f"sqlite delete {key!r}: {e}") from e
        return actual is not None

    def commit(self, ops: list[StoreOp]) -> list[int | None]:
        for op in ops:
            check_key(op.key)
        with self._lock:
            db = self._db()
            results: list[int | None] = []
            try:
                db.execute("BEGIN IMMEDIATE")  # one transaction, one fsync, for the whole batch
                try:
                    for op in ops:
                        actual = self._current_version(db, op.key)
                        if actual != op.expected_version:
                            raise VersionConflict(op.key, op.expected_version, actual)
                        if isinstance(op, Put):
                            version = 0 if actual is None else actual + 1
                            db.execute(
                                "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version",
                                (op.key, check_value(op.value), version),
                            )
                            results.append(version)
                        else:
                            db.execute("DELETE FROM kv WHERE key = ?", (op.key,))
                            results.append(None)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreError(f"sqlite commit of {len(ops)} operation(s): {e}") from e
        return results

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            try:
                # The range start uses the primary-key index; substr() filters the tail exactly
                # (LIKE would need escaping of % and _ and is case-insensitive for ASCII).
                rows = (
                    self._db()
                    .execute(
                        "SELECT key FROM kv WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 ORDER BY key",
                        (prefix,),
                    )
                    .fetchall()
                )
            except sqlite3.Error as e:
                raise StoreError(f"sqlite list {prefix!r}: {e}") from e
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
