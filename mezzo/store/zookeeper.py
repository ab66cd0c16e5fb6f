"""ZooKeeper store: the registry replicated by a ZooKeeper ensemble (HA masters).

Layout: every key is one znode directly under the root path (default ``/mezzo/registry``), its
name the key percent-encoded (``agents/S1`` -> ``agents%2FS1``), its data the value. A flat
layout keeps ``list(prefix)`` one ``getChildren`` round trip, and a key is never both a value
and a directory, so there are no placeholder nodes to tell apart from real values.

Versions are the znode's ``version`` (0 at creation, +1 per ``setData``), so compare-and-swap is
ZooKeeper's own conditional ``create``/``setData``/``delete``: the ensemble orders concurrent
writers, and two masters can never both win.

Failure semantics: a lost connection raises ``StoreError``. A write that failed with a connection
loss may still have been applied (ZooKeeper cannot tell); callers re-read and retry with the
version they see, which CAS makes safe. Values are limited by ZooKeeper's ``jute.maxbuffer``
(1 MiB by default); larger values are refused up front with a clear error.

Where the root goes: Mesos keeps its replicated log under ``<zk path>/log_replicas`` and clients
such as pymesos skip exactly that child name when they look for the leading master (spec §13.1).
Any *other* child of the election path would be mistaken for a master by pymesos when no master
is elected, so keep the registry root outside the election path (e.g. ``/mezzo-registry``), or use
``registry_root(election_path)`` which places it at ``<election path>/log_replicas``.
"""

from __future__ import annotations

import threading
from urllib.parse import quote, unquote

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)
from kazoo.handlers.threading import KazooTimeoutError

from mezzo.core.errors import ConfigError
from mezzo.store.base import (
    Entry,
    Put,
    Remove,
    Store,
    StoreError,
    StoreOp,
    VersionConflict,
    check_key,
    check_value,
)

DEFAULT_ROOT = "/mezzo/registry"
# jute.maxbuffer defaults to 0xfffff bytes for the whole packet; leave room for the header/path.
MAX_VALUE_BYTES = 0xFFFFF - 4096


def registry_root(election_path: str) -> str:
    """The registry root beside the masters' ``json.info_`` nodes, under the name clients skip."""
    return election_path.rstrip("/") + "/log_replicas"


def encode_key(key: str) -> str:
    """A key as one znode name: no "/" and never the reserved names "." or ".."."""
    name = quote(check_key(key), safe="")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return name


def decode_key(name: str) -> str:
    return unquote(name)


class ZooKeeperStore(Store):
    """A store whose keys are znodes under ``root``.

    Pass ``client`` to share an already started KazooClient (it is not stopped by ``close``), or
    ``hosts`` to let the store own its client.
    """

    def __init__(
        self,
        *,
        client: KazooClient | None = None,
        hosts: str | None = None,
        root: str = DEFAULT_ROOT,
        auth: tuple[str, str] | None = None,
        connect_timeout: float = 15.0,
    ) -> None:
        if (client is None) == (hosts is None):
            raise ConfigError("ZooKeeperStore needs exactly one of client= or hosts=")
        if not root.startswith("/") or root == "/":
            raise ConfigError(f"ZooKeeper store root must be an absolute path below /: {root!r}")
        self.root = root.rstrip("/")
        self._owns_client = client is None
        if client is None:
            auth_data = [("digest", f"{auth[0]}:{auth[1]}")] if auth else None
            client = KazooClient(hosts=hosts, auth_data=auth_data)
            try:
                client.start(timeout=connect_timeout)
            except KazooTimeoutError as e:
                client.close()
                raise StoreError(
                    f"cannot connect to ZooKeeper at {hosts} within {connect_timeout}s"
                ) from e
        self._client: KazooClient | None = client
        self._lock = threading.Lock()
        try:
            client.ensure_path(self.root)
        except KazooException as e:
            raise StoreError(f"cannot create ZooKeeper store root {self.root}: {e!r}") from e

    def _zk(self) -> KazooClient:
        client = self._client
        if client is None:
            raise StoreError("store is closed")
        return client

    def _path(self, key: str) -> str:
        return f"{self.root}/{encode_key(key)}"

    def _version_of(self, path: str) -> int | None:
        stat = self._zk().exists(path)
        return None if stat is None else int(stat.version)

    def get(self, key: str) -> Entry | None:
        path = self._path(key)
        try:
            data, stat = self._zk().get(path)
        except NoNodeError:
            return None
        except KazooException as e:
            raise StoreError(f"ZooKeeper get {key!r}: {e!r}") from e
        return Entry(bytes(data), int(stat.version))

    def get_many(self, keys: list[str]) -> list[Entry | None]:
        # All requests go out before the first answer is awaited: one round trip for the
        # batch instead of one per key (a new leader reads every agent's entry at once).
        zk = self._zk()
        pending = [zk.get_async(self._path(key)) for key in keys]
        entries: list[Entry | None] = []
        for key, result in zip(keys, pending, strict=True):
            try:
                data, stat = result.get()
            except NoNodeError:
                entries.append(None)
                continue
            except KazooException as e:
                raise StoreError(f"ZooKeeper get {key!r}: {e!r}") from e
            entries.append(Entry(bytes(data), int(stat.version)))
        return entries

    def set(self, key: str, value: bytes, expected_version: int | None) -> int:
        path = self._path(key)
        value = check_value(value)
        if len(value) > MAX_VALUE_BYTES:
            raise StoreError(
                f"value for {key!r} is {len(value)} bytes; ZooKeeper allows about {MAX_VALUE_BYTES}"
            )
        zk = self._zk()
        try:
            if expected_version is None:
                try:
                    zk.create(path, value)
                except NodeExistsError:
                    raise VersionConflict(key, None, self._version_of(path)) from None
                return 0
            try:
                stat = zk.set(path, value, version=expected_version)
            except NoNodeError:
                raise VersionConflict(key, expected_version, None) from None
            except BadVersionError:
                raise VersionConflict(key, expected_version, self._version_of(path)) from None
            return int(stat.version)
        except KazooException as e:
            raise StoreError(f"ZooKeeper set {key!r}: {e!r}") from e

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        path = self._path(key)
        zk = self._zk()
        try:
            zk.delete(path, version=-1 if expected_version is None else expected_version)
            return True
        except NoNodeError:
            if expected_version is not None:
                raise VersionConflict(key, expected_version, None) from None
            return False
        except BadVersionError:
            raise VersionConflict(key, expected_version, self._version_of(path)) from None
        except KazooException as e:
            raise StoreError(f"ZooKeeper delete {key!r}: {e!r}") from e

    def commit(self, ops: list[StoreOp]) -> list[int | None]:
        # A ZooKeeper multi: the ensemble applies every operation or none, in one round trip.
        zk = self._zk()
        txn = zk.transaction()
        for op in ops:
            path = self._path(check_key(op.key))
            if isinstance(op, Put):
                value = check_value(op.value)
                if len(value) > MAX_VALUE_BYTES:
                    raise StoreError(f"value for {op.key!r} is {len(value)} bytes; "
                                     f"ZooKeeper allows about {MAX_VALUE_BYTES}")
                if op.expected_version is None:
                    txn.create(path, value)
                else:
                    txn.set_data(path, value, version=op.expected_version)
            else:
                txn.delete(path, version=op.expected_version)
        try:
            answers = txn.commit()
        except KazooException as e:
            raise StoreError(f"ZooKeeper commit of {len(ops)} operation(s): {e!r}") from e
        failed = [(op, a) for op, a in zip(ops, answers, strict=True)
                  if isinstance(a, Exception) and not isinstance(a, RolledBackError)]
        if failed:
            op, error = failed[0]
            if isinstance(error, BadVersionError | NoNodeError | NodeExistsError):
                raise VersionConflict(op.key, op.expected_version, self._version_of(self._path(op.key)))
            raise StoreError(f"ZooKeeper commit, {op.key!r}: {error!r}")
        results: list[int | None] = []
        for op, answer in zip(ops, answers, strict=True):
            if isinstance(op, Remove):
                results.append(None)
            elif op.expected_version is None:
                results.append(0)  # a created znode starts at version 0
            else:
                results.append(int(answer.version))  # set_data answers the new ZnodeStat
        return results

    def list(self, prefix: str = "") -> list[str]:
        try:
            names = self._zk().get_children(self.root)
        except NoNodeError:
            return []
        except KazooException as e:
            raise StoreError(f"ZooKeeper list {prefix!r}: {e!r}") from e
        return sorted(k for k in map(decode_key, names) if k.startswith(prefix))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.stop()
            client.close()
