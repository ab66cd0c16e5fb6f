"""``open_store(spec)``: the one place a store flag (``--registry``) becomes a Store.

Accepted specs:
- ``in_memory`` (or ``memory``): nothing survives the process;
- ``sqlite:<path>``: that file; ``sqlite``: ``<work_dir>/registry.sqlite``;
- ``zk://[user:pass@]h1:2181,h2:2181/path``: znodes under ``/path`` on that ensemble.
"""

from __future__ import annotations

import os
from pathlib import Path

from mezzo.core.errors import ConfigError
from mezzo.store.base import Store
from mezzo.store.memory import MemoryStore


def open_store(spec: str, *, work_dir: str | os.PathLike[str] | None = None) -> Store:
    """Open the store ``spec`` names; a bad spec raises ConfigError naming the accepted forms."""
    if spec in ("in_memory", "memory"):
        return MemoryStore()
    if spec == "sqlite" or spec.startswith("sqlite:"):
        from mezzo.store.sqlite import DEFAULT_FILENAME, SqliteStore

        path = spec[len("sqlite:") :] if spec.startswith("sqlite:") else ""
        if not path:
            if work_dir is None:
                raise ConfigError("registry 'sqlite' needs a work_dir (or use sqlite:<path>)")
            return SqliteStore(Path(work_dir) / DEFAULT_FILENAME)
        return SqliteStore(path)
    if spec.startswith("zk://"):
        # Imported lazily so that masters without ZooKeeper never load kazoo.
        from mezzo.core.zkurl import parse_zk_url
        from mezzo.store.zookeeper import ZooKeeperStore

        url = parse_zk_url(spec)
        hosts, path, auth = url.hosts, url.path, url.auth
        return ZooKeeperStore(hosts=hosts, root=path, auth=auth)
    raise ConfigError(
        f"unknown registry {spec!r}: expected in_memory, sqlite, sqlite:<path> or zk://hosts/path"
    )
