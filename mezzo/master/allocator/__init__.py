"""Allocators: a pure library (no I/O, time passed in) deciding who is offered what.

Public API:
- `Allocator` — the plug-in contract; `Allocation` — its output record.
- `AllocatorOptions`, `parse_min_allocatable` — configuration.
- `AllocatorStatistics`, `ClientStatistics` — `statistics()` snapshots for metrics and state.
- `FrameworkPolicy`, `AgentTraits`, `compile_offer_constraints`, `ConstraintError` — per-framework
  offer constraints, per-role minimums and GPU capability, and what of an agent they see.
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
from mezzo.master.allocator.constraints import (
    NON_TEXT,
    AgentTraits,
    ConstraintError,
    FrameworkPolicy,
    compile_offer_constraints,
)
from mezzo.master.allocator.factory import DEFAULT_ALLOCATOR, create_allocator
from mezzo.master.allocator.hierarchical import HierarchicalAllocator
from mezzo.master.allocator.quota import Quota

__all__ = [
    "DEFAULT_ALLOCATOR",
    "DEFAULT_MIN_ALLOCATABLE",
    "NON_TEXT",
    "AgentTraits",
    "Allocation",
    "Allocator",
    "AllocatorOptions",
    "AllocatorStatistics",
    "ClientStatistics",
    "ConstraintError",
    "FrameworkPolicy",
    "HierarchicalAllocator",
    "Quota",
    "compile_offer_constraints",
    "create_allocator",
    "parse_min_allocatable",
]
