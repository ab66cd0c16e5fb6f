"""Allocators: a pure library (no I/O, time passed in) deciding who is offered what.

Public API:
- `Allocator` — the plug-in contract; `Allocation` — its output record.
- `AllocatorOptions`, `parse_min_allocatable` — configuration.
- `AllocatorStatistics`, `ClientStatistics` — `statistics()` snapshots for metrics and state.
- `HierarchicalAllocator` — hierarchical weighted DRF (the default).
- `create_allocator(name_or_path, options)` — by name (`hierarchical`, `random`) or class path.
"""

from mezzo.master.allocator.base import (
    DEFAULT_MIN_ALLOCATABLE,
    Allocation,
    Allocator,
    AllocatorOptions,
    AllocatorStatistics,
    ClientStatistics,
    parse_min_allocatable,
)
from mezzo.master.allocator.factory import DEFAULT_ALLOCATOR, create_allocator
from mezzo.master.allocator.hierarchical import HierarchicalAllocator

__all__ = [
    "DEFAULT_ALLOCATOR",
    "DEFAULT_MIN_ALLOCATABLE",
    "Allocation",
    "Allocator",
    "AllocatorOptions",
    "AllocatorStatistics",
    "ClientStatistics",
    "HierarchicalAllocator",
    "create_allocator",
    "parse_min_allocatable",
]
