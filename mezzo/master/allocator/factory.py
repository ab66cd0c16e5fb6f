"""Picks an allocator implementation by name or by import path.

`"hierarchical"` (the default; DRF sorters), `"random"` (hierarchical walk with random sorters),
or a third-party class named `package.module:Class` or `package.module.Class`, which must
subclass `Allocator` and accept an `AllocatorOptions` as its one argument.
"""

from __future__ import annotations

from mezzo.core.plugins import load_class
from mezzo.master.allocator.base import Allocator, AllocatorOptions
from mezzo.master.allocator.hierarchical import HierarchicalAllocator

DEFAULT_ALLOCATOR = "hierarchical"


def _load_class(path: str) -> type[Allocator]:
    found: type[Allocator] = load_class(path, Allocator, "allocator")
    return found


def create_allocator(
    name_or_path: str = DEFAULT_ALLOCATOR, options: AllocatorOptions | None = None
) -> Allocator:
    """Build the allocator called `name_or_path` with `options` (defaults if None)."""
    options = options or AllocatorOptions()
    if name_or_path in ("hierarchical", "HierarchicalDRF", "drf"):
        return HierarchicalAllocator(options, sorter="drf")
    if name_or_path == "random":
        return HierarchicalAllocator(options, sorter="random")
    cls = _load_class(name_or_path)
    return cls(options)
