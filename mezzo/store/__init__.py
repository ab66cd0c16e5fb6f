"""Durable versioned key/value stores for the registry: memory, sqlite, zookeeper.

``open_store(spec)`` builds one from a flag value; see ``base`` for the contract.
"""

from mezzo.store.base import Entry, Put, Remove, Store, StoreError, StoreOp, VersionConflict
from mezzo.store.factory import open_store
from mezzo.store.memory import MemoryStore

__all__ = [
    "Entry",
    "MemoryStore",
    "Put",
    "Remove",
    "Store",
    "StoreError",
    "StoreOp",
    "VersionConflict",
    "open_store",
]
