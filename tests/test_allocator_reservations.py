"""The allocator's side of offer operations: a framework's RESERVE converts its allocation and
the agent's total alike (`update_allocation`); an operator's applies to what is available
(`update_available`, all or nothing); reserved resources go only to the role and its
descendants and count as the role's quota consumption."""

from __future__ import annotations

import pytest

from mezzo.master.allocator import AllocatorOptions
from mezzo.master.allocator.hierarchical import HierarchicalAllocator
from mezzo.master.allocator.quota import Quota
from mezzo.resources import DYNAMIC, Reservation, Resources
from mezzo.resources.conversions import ConversionError, reserve, unreserve

ENG = Reservation(DYNAMIC, "eng", "p")


def test_update_allocation_then_reserved_offered_only_to_role_and_children() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("s1", Resources.parse("cpus:4;mem:100"), {})
    a.add_framework("e", ["eng"], now=0)
    [offer] = a.allocate(0)
    consumed = Resources.parse("cpus:2").allocate("eng")
    converted = Resources.parse("cpus:2").push_reservation(ENG).allocate("eng")
    a.update_allocation("e", "s1", consumed, converted)
    assert a.statistics().total == {"cpus": 4.0, "mem": 100.0}
    a.recover_resources("e", "s1", offer.resources.allocate("eng") - consumed + converted, None, 0)
    a.remove_framework("e")
    a.add_framework("w", ["web"], now=0)
    [web] = a.allocate(0)
    assert web.resources.reserved().is_empty() and web.resources.cpus() == 2
    a.add_framework("b", ["eng/backend"], now=0)
    [child] = a.allocate(0)
    assert child.role == "eng/backend" and child.resources.reserved("eng").cpus() == 2
    # Unallocated reservations of eng count as eng's consumption.
    a.recover_resources("b", "s1", child.resources.allocate("eng/backend"), None, 0)
    a.update_quota("eng", Quota(guarantees={}, limits={"cpus": 10.0}))
    assert a.consumption(["eng"])["eng"]["cpus"] == 2.0


def test_update_available_is_all_or_nothing() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("s1", Resources.parse("cpus:4"), {})
    a.add_framework("f", ["*"], now=0)
    [offer] = a.allocate(0)
    too_much = reserve(Resources.parse("cpus:1").push_reservation(ENG))
    with pytest.raises(ConversionError, match="does not contain"):
        a.update_available("s1", too_much)  # everything is offered
    a.recover_resources("f", "s1", offer.resources, 60, 0)
    a.update_available("s1", reserve(Resources.parse("cpus:3").push_reservation(ENG)))
    with pytest.raises(ConversionError):
        a.update_available("s1", [*reserve(Resources.parse("cpus:1").push_reservation(ENG)),
                                  *unreserve(Resources.parse("cpus:9").push_reservation(ENG))])
    assert a.statistics().total == {"cpus": 4.0}
    a.update_available("s1", unreserve(Resources.parse("cpus:3").push_reservation(ENG)))
    a.add_framework("g", ["x"], now=0)
    [got] = a.allocate(0)
    assert got.resources == Resources.parse("cpus:4")


def test_refined_reservations_only_for_refinement_capable_frameworks() -> None:
    from mezzo.master.allocator.constraints import FrameworkPolicy

    refined = Resources.parse("cpus:2").push_reservation(ENG).push_reservation(
        Reservation(DYNAMIC, "eng/backend", "p"))
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("s1", Resources.parse("cpus:1") + refined, {})
    a.add_framework("old", ["eng/backend"], now=0, policy=FrameworkPolicy(refinement_capable=False))
    [got] = a.allocate(0)
    assert got.resources == Resources.parse("cpus:1")
    a.add_framework("new", ["eng/backend"], now=0, policy=FrameworkPolicy(refinement_capable=True))
    [got] = a.allocate(0)
    assert got.framework_id == "new" and got.resources == refined
