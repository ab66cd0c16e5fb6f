"""Hierarchical DRF allocator: fairness, filters, suppression, roles, minimum chunks."""

from __future__ import annotations

from collections import Counter

import pytest

from mezzo.core.errors import ConfigError
from mezzo.master.allocator import (
    Allocation,
    AllocatorOptions,
    HierarchicalAllocator,
    parse_min_allocatable,
)
from mezzo.resources import Resources

R = Resources.parse


def make(**options: object) -> HierarchicalAllocator:
    return HierarchicalAllocator(AllocatorOptions(**options))  # type: ignore[arg-type]


def by_framework(offers: list[Allocation]) -> dict[str, list[Allocation]]:
    out: dict[str, list[Allocation]] = {}
    for offer in offers:
        out.setdefault(offer.framework_id, []).append(offer)
    return out


def test_drf_paper_example_settles_at_three_and_two_tasks() -> None:
    # NSDI 2011 §5.1 example: 9 cpus / 18 GB; A's tasks <1 cpu, 4 GB>, B's <3 cpus, 1 GB>.
    a = make()
    a.add_agent("s1", R("cpus:9;mem:18432"), {})
    a.add_framework("A", ["*"], now=0)
    a.add_framework("B", ["*"], now=0)
    task = {"A": R("cpus:1;mem:4096"), "B": R("cpus:3;mem:1024")}
    launched: Counter[str] = Counter()
    now = 0.0
    for _ in range(50):
        progress = False
        for offer in a.allocate(now):
            need = task[offer.framework_id]
            rest = offer.resources
            if offer.resources.contains(need):
                launched[offer.framework_id] += 1
                rest = offer.resources - need
                progress = True
            a.recover_resources(offer.framework_id, offer.agent_id, rest, 0, now)
        now += 1
        if not progress:
            break
    assert launched == {"A": 3, "B": 2}
    stats = a.statistics()
    assert stats.frameworks_by_role["A"]["*"].allocated == {"cpus": 3, "mem": 12288}
    assert stats.frameworks_by_role["B"]["*"].allocated == {"cpus": 6, "mem": 2048}


def test_role_weights_three_to_one_converge_to_three_to_one_split() -> None:
    a = make(weights={"gold": 3.0, "bronze": 1.0})
    for i in range(40):
        a.add_agent(f"s{i}", R("cpus:1;mem:1024"), {})
    a.add_framework("g", ["gold"], now=0)
    a.add_framework("b", ["bronze"], now=0)
    counts = Counter(offer.role for offer in a.allocate(0))
    assert counts == {"gold": 30, "bronze": 10}


def test_framework_shares_within_a_role_are_equal() -> None:
    a = make()
    for i in range(30):
        a.add_agent(f"s{i}", R("cpus:2;mem:2048"), {})
    for name in ("f1", "f2", "f3"):
        a.add_framework(name, ["r"], now=0)
    counts = Counter(offer.framework_id for offer in a.allocate(0))
    assert counts == {"f1": 10, "f2": 10, "f3": 10}


def test_decline_filter_keeps_agent_from_that_framework_for_its_duration() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], now=0)
    a.add_framework("f2", ["*"], now=0)
    [offer] = a.allocate(0)
    assert offer.framework_id == "f1"
    a.recover_resources("f1", "s1", offer.resources, 30, 0)

    [offer] = a.allocate(0)  # the other framework gets it at once
    assert offer.framework_id == "f2"
    a.recover_resources("f2", "s1", offer.resources, None, 0)
    assert [o.framework_id for o in a.allocate(29.9)] == ["f2"]
    a.recover_resources("f2", "s1", offer.resources, 100, 29.9)
    assert a.allocate(29.95) == []  # both filter it now
    assert [o.framework_id for o in a.allocate(30)] == ["f1"]  # f1's filter expired


def test_filter_does_not_hide_more_resources_than_were_declined() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], now=0)
    [offer] = a.allocate(0)
    part = R("cpus:2;mem:2048")
    a.recover_resources("f1", "s1", part, 60, 0)  # declines half, keeps half (task)
    assert a.allocate(1) == []  # available == declined: filtered
    a.recover_resources("f1", "s1", offer.resources - part, None, 1)  # task ends
    [again] = a.allocate(2)  # more than was declined is available: offered again
    assert again.resources == offer.resources


def test_suppressed_framework_gets_nothing_until_revive() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], suppressed_roles=["*"], now=0)
    assert a.allocate(0) == []
    a.revive("f1")
    assert [o.framework_id for o in a.allocate(1)] == ["f1"]


def test_suppress_then_revive_clears_filters() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], now=0)
    a.add_framework("f2", ["*"], now=0)
    a.suppress("f1")
    [offer] = a.allocate(0)
    assert offer.framework_id == "f2"
    a.recover_resources("f2", "s1", offer.resources, 1000, 0)
    assert a.allocate(1) == []
    a.revive("f2")
    assert [o.framework_id for o in a.allocate(2)] == ["f2"]


def test_inactive_framework_and_agent_get_and_give_nothing() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {}, active=False)
    a.add_framework("f1", ["*"], active=False, now=0)
    assert a.allocate(0) == []
    a.activate_framework("f1")
    assert a.allocate(0) == []
    a.activate_agent("s1")
    assert len(a.allocate(0)) == 1


def test_hierarchical_roles_charge_the_parent() -> None:
    a = make()
    for i in range(4):
        a.add_agent(f"s{i}", R("cpus:1;mem:1024"), {})
    a.add_framework("web", ["eng/web"], now=0)
    a.add_framework("db", ["eng/db"], now=0)
    a.add_framework("ops", ["ops"], now=0)
    counts = Counter(offer.role for offer in a.allocate(0))
    # Top level: eng (with both children) and ops share equally; flat DRF would give 1:1:2.
    assert counts == {"eng/web": 1, "eng/db": 1, "ops": 2}
    roles = a.statistics().roles
    assert roles["eng"].allocated == {"cpus": 2, "mem": 2048}
    assert roles["eng/web"].allocated == {"cpus": 1, "mem": 1024}


def test_role_with_children_competes_through_its_virtual_leaf() -> None:
    a = make()
    for i in range(4):
        a.add_agent(f"s{i}", R("cpus:1;mem:1024"), {})
    a.add_framework("parent", ["eng"], now=0)
    a.add_framework("child", ["eng/web"], now=0)
    counts = Counter(offer.role for offer in a.allocate(0))
    assert counts == {"eng": 2, "eng/web": 2}
    assert a.statistics().roles["eng"].allocated == {"cpus": 4, "mem": 4096}


def test_reserved_resources_go_only_to_their_role() -> None:
    a = make()
    a.add_agent("s1", R("cpus:2;mem:1024;cpus(db):4;mem(db):2048"), {})
    a.add_framework("web", ["web"], now=0)
    offers = a.allocate(0)
    assert [(o.framework_id, o.resources) for o in offers] == [("web", R("cpus:2;mem:1024"))]
    a.add_framework("db", ["db"], now=0)
    [offer] = a.allocate(1)
    assert offer.role == "db" and offer.resources == R("cpus(db):4;mem(db):2048")


def test_chunks_below_min_allocatable_are_not_offered() -> None:
    a = make()
    a.add_agent("tiny", R("cpus:0.005;mem:16"), {})
    a.add_framework("f1", ["*"], now=0)
    assert a.allocate(0) == []
    b = make(
        min_allocatable_resources=parse_min_allocatable("cpus:1;mem:512|gpus:1"),
        filter_gpu_resources=False,
    )
    b.add_agent("mem-only", R("cpus:0.5;mem:8192"), {})
    b.add_agent("gpu", R("cpus:0.5;mem:64;gpus:1"), {})
    b.add_framework("f1", ["*"], now=0)
    assert [o.agent_id for o in b.allocate(0)] == ["gpu"]


def test_parse_min_allocatable() -> None:
    assert parse_min_allocatable("cpus:0.01|mem:32") == ({"cpus": 0.01}, {"mem": 32.0})
    assert parse_min_allocatable("cpus:1;mem:512") == ({"cpus": 1.0, "mem": 512.0},)
    for bad in ("", "cpus", "cpus:x", "cpus:-1", "cpus:1||mem:2"):
        with pytest.raises(ConfigError):
            parse_min_allocatable(bad)


def test_used_resources_from_reregistration_are_not_offered() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {"old": R("cpus:3;mem:1024")})
    a.add_framework("f1", ["*"], now=0)
    [offer] = a.allocate(0)
    assert offer.resources == R("cpus:1;mem:3072")
    # The framework using them re-subscribes later; its usage is already charged.
    a.add_framework("old", ["*"], now=1)
    assert a.statistics().frameworks_by_role["old"]["*"].allocated == {"cpus": 3, "mem": 1024}


def test_remove_framework_releases_its_allocations() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], now=0)
    assert len(a.allocate(0)) == 1
    a.add_framework("f2", ["*"], now=0)
    assert a.allocate(0) == []
    a.remove_framework("f1")
    assert [o.framework_id for o in a.allocate(1)] == ["f2"]


def test_update_framework_roles_and_weights_update() -> None:
    a = make()
    for i in range(8):
        a.add_agent(f"s{i}", R("cpus:1;mem:1024"), {})
    a.add_framework("f1", ["a"], now=0)
    a.add_framework("f2", ["b"], now=0)
    a.update_weights({"a": 3.0})
    counts = Counter(o.role for o in a.allocate(0))
    assert counts == {"a": 6, "b": 2}
    a.update_framework("f2", ["b", "c"], suppressed_roles=["b"])
    a.add_agent("new", R("cpus:1;mem:1024"), {})
    [offer] = a.allocate(1)
    assert (offer.framework_id, offer.role) == ("f2", "c")


def test_update_and_remove_agent() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096"), {})
    a.add_framework("f1", ["*"], now=0)
    [offer] = a.allocate(0)
    a.update_agent("s1", R("cpus:8;mem:4096"))
    [more] = a.allocate(1)
    assert more.resources == R("cpus:4")
    a.remove_agent("s1")
    a.recover_resources("f1", "s1", offer.resources, None, 2)  # ignored: agent gone
    stats = a.statistics()
    assert stats.agents == 0 and stats.allocated == {} and stats.total == {}


def test_statistics_snapshot() -> None:
    a = make()
    a.add_agent("s1", R("cpus:4;mem:4096;ports:[31000-31009]"), {})
    a.add_framework("f1", ["*"], now=0)
    a.allocate(0)
    stats = a.statistics()
    assert stats.allocation_runs == 1 and stats.last_allocation_run_ms >= 0
    assert stats.total == {"cpus": 4, "mem": 4096}  # shares count scalars only
    assert stats.allocated == {"cpus": 4, "mem": 4096}
    assert stats.roles["*"].share == pytest.approx(1.0)
    assert stats.frameworks_by_role["f1"]["*"].share == pytest.approx(1.0)


def test_same_seed_same_allocation() -> None:
    def run(seed: int) -> list[tuple[str, str]]:
        a = make(seed=seed)
        for i in range(20):
            a.add_agent(f"s{i}", R("cpus:1;mem:1024"), {})
        for i in range(3):
            a.add_framework(f"f{i}", ["*"], now=0)
        return [(o.framework_id, o.agent_id) for o in a.allocate(0)]

    assert run(5) == run(5)
    assert run(5) != run(6)
