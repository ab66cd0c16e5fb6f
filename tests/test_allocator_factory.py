"""Allocator factory (by name, by import path) and the random-sorter allocator."""

from __future__ import annotations

from collections import Counter

import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.allocator import (
    AllocatorOptions,
    HierarchicalAllocator,
    create_allocator,
)
from mezzo.resources import Resources


class ThirdParty(HierarchicalAllocator):
    """Stands in for an allocator shipped outside mezzo."""


def test_default_and_named_allocators() -> None:
    assert isinstance(create_allocator(), HierarchicalAllocator)
    assert isinstance(create_allocator("hierarchical"), HierarchicalAllocator)
    assert isinstance(create_allocator("random", AllocatorOptions(seed=3)), HierarchicalAllocator)


@pytest.mark.parametrize("sep", [":", "."])
def test_allocator_by_import_path(sep: str) -> None:
    allocator = create_allocator(f"{__name__}{sep}ThirdParty", AllocatorOptions(seed=9))
    assert type(allocator) is ThirdParty and allocator.options.seed == 9


@pytest.mark.parametrize(
    "path",
    [
        "nonexistent_pkg.mod:Cls",
        f"{__name__}:Missing",
        f"{__name__}:test_default_and_named_allocators",
        "justaname",
    ],
)
def test_bad_allocator_paths_are_config_errors(path: str) -> None:
    with pytest.raises(ConfigError):
        create_allocator(path)


def _random_run(seed: int) -> list[tuple[str, str]]:
    a = create_allocator("random", AllocatorOptions(seed=seed))
    for i in range(30):
        a.add_agent(f"s{i}", Resources.parse("cpus:1;mem:1024"), {})
    for i in range(3):
        a.add_framework(f"f{i}", ["*"], now=0)
    return [(o.framework_id, o.agent_id) for o in a.allocate(0)]


def test_random_sorter_allocator_is_seeded_and_spreads_offers() -> None:
    first = _random_run(1)
    assert first == _random_run(1)
    assert first != _random_run(2)
    assert len(first) == 30
    counts = Counter(fid for fid, _ in first)
    assert set(counts) == {"f0", "f1", "f2"}  # random, but nobody is starved
