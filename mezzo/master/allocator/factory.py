"""Picks an allocator implementation by name or by import path.

`"hierarchical"` (the default; DRF sorters), `"random"` (hierarchical walk with random sorters),
or a third-party class named `package.module:Class` or `package.module.Class`, which must
subclass `Allocator` and accept an `AllocatorOptions` as its one argument.
"""

from __future__ import annotations

import importlib

from mezzo.core.errors import ConfigError
from mezzo.master.allocator.base import Allocator, AllocatorOptions
from mezzo.master.allocator.hierarchical import HierarchicalAllocator

DEFAULT_ALLOCATOR = "hierarchical"


def _load_class(path: str) -> type[Allocator]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"allocator {path!r} is neither a known name nor 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import allocator module {module_name!r}: {exc}") from exc
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no allocator {attr!r}") from None
    if not isinstance(found, type) or not issubclass(found, Allocator):
        raise ConfigError(f"{path!r} is not an Allocator subclass")
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
