"""Quota in the allocator (Mesos 1.9+): limits are never exceeded, guarantees are met before
fair sharing with headroom held back, consumption counts unallocated reservations, nested
roles are charged to their quota'd ancestors."""

from __future__ import annotations

from mezzo.master.allocator import AllocatorOptions, HierarchicalAllocator, Quota
from mezzo.resources import Resources

R = Resources.parse


def cluster(n: int = 4, per: str = "cpus:4;mem:4096") -> HierarchicalAllocator:
    a = HierarchicalAllocator(AllocatorOptions())
    for i in range(n):
        a.add_agent(f"a{i}", R(per), {})
    return a


def held(offers, role: str) -> float:
    return sum(o.resources.scalars().quantities().get("cpus", 0.0) for o in offers if o.role == role)


def test_limit_is_never_exceeded() -> None:
    a = cluster()
    a.update_quota("team", Quota(limits={"cpus": 8.0}))
    a.add_framework("f", ["team"], now=0)
    offers = a.allocate(0)
    assert held(offers, "team") == 8.0
    assert a.consumption()["team"]["cpus"] == 8.0
    assert a.allocate(1) == []  # two agents stay free: nobody else wants them


def test_limit_applies_to_descendants_of_the_quota_role() -> None:
    a = cluster()
    a.update_quota("eng", Quota(limits={"cpus": 4.0}))
    a.add_framework("web", ["eng/web"], now=0)
    a.add_framework("db", ["eng/db"], now=0)
    offers = a.allocate(0)
    assert held(offers, "eng/web") + held(offers, "eng/db") == 4.0


def test_guarantee_is_met_first_and_headroom_is_held_back() -> None:
    a = cluster()
    # "big" would take everything under fair sharing at first (it arrives first).
    a.add_framework("big", ["other"], now=0)
    a.update_quota("team", Quota(guarantees={"cpus": 8.0}))
    offers = a.allocate(0)
    # Nobody in "team" yet: 8 cpus are held back as headroom for its guarantee.
    assert held(offers, "other") == 8.0
    a.add_framework("t", ["team"], now=1)
    offers = a.allocate(1)
    assert held(offers, "team") == 8.0


def test_raising_and_removing_a_limit_takes_effect_at_the_next_allocation() -> None:
    a = cluster()
    a.update_quota("team", Quota(limits={"cpus": 4.0}))
    a.add_framework("f", ["team"], now=0)
    assert held(a.allocate(0), "team") == 4.0
    a.update_quota("team", Quota(limits={"cpus": 12.0}))
    assert held(a.allocate(1), "team") == 8.0
    a.update_quota("team", None)
    assert held(a.allocate(2), "team") == 4.0
    assert a.quotas() == {}


def test_unallocated_reservations_count_as_consumption() -> None:
    a = HierarchicalAllocator(AllocatorOptions())
    a.add_agent("r", R("cpus(team):4;mem(team):1024"), {})
    a.add_agent("u1", R("cpus:4;mem:1024"), {})
    a.add_agent("u2", R("cpus:4;mem:1024"), {})
    a.update_quota("team", Quota(limits={"cpus": 8.0}))
    assert a.consumption()["team"]["cpus"] == 4.0
    a.add_framework("f", ["team"], now=0)
    offers = a.allocate(0)
    # The reservation (already counted) and one unreserved agent fit; the second would not.
    assert held(offers, "team") == 8.0
    assert {o.agent_id for o in offers} >= {"r"}


def test_the_quota_book_follows_the_names_quotas_name_as_they_change() -> None:
    """Setting one role's quota costs what that quota names (an UPDATE_QUOTA of 5,000 roles
    took seconds of the master's loop when every set re-read every quota); the names the book
    charges stay exactly those some quota names."""
    from mezzo.master.allocator.quota import QuotaBook

    book = QuotaBook()
    book.set("a", Quota(guarantees={"cpus": 1.0}, limits={"mem": 2.0}))
    book.set("b", Quota(limits={"cpus": 3.0, "disk": 1.0}))
    assert book._names == ("cpus", "disk", "mem")
    book.set("a", Quota(limits={"gpus": 1.0}))
    assert book._names == ("cpus", "disk", "gpus")
    book.set("b", None)
    assert book._names == ("gpus",)
    book.set("a", Quota())
    assert book._names == () and not book
    for i in range(5000):
        book.set(f"r{i}", Quota(guarantees={"cpus": 0.001}))
    assert book._names == ("cpus",) and len(book.quotas) == 5000
