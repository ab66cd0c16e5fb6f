"""Property tests: the algebra of Resources against simple models."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.resources import STATIC, Reservation, ResourceItem, ResourceKey, Resources
from mezzo.resources import values as v

settings.register_profile("resources", max_examples=300, deadline=None)
settings.load_profile("resources")

ROLES = ["*", "eng", "eng/web", "ops"]
interval = st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1]))
intervals = st.lists(interval, max_size=5)


def key(name: str, kind: int, role: str, alloc: str | None, revocable: bool) -> ResourceKey:
    res = () if role == "*" else (Reservation(STATIC, role),)
    return ResourceKey(name, kind, res, alloc, None, revocable)


scalar_item = st.builds(
    lambda name, role, alloc, rev, n: ResourceItem(key(name, v.SCALAR, role, alloc, rev), n),
    st.sampled_from(["cpus", "mem", "disk"]),
    st.sampled_from(ROLES),
    st.sampled_from([None, "eng", "ops"]),
    st.booleans(),
    st.integers(0, 50_000),  # thousandths
)
ranges_item = st.builds(
    lambda role, alloc, iv: ResourceItem(
        key("ports", v.RANGES, role, alloc, False), v.normalize_ranges(iv)
    ),
    st.sampled_from(ROLES),
    st.sampled_from([None, "eng"]),
    intervals,
)
set_item = st.builds(
    lambda role, items: ResourceItem(key("zones", v.SET, role, None, False), frozenset(items)),
    st.sampled_from(ROLES),
    st.sets(st.sampled_from("abcdef"), max_size=4),
)
resources = st.lists(st.one_of(scalar_item, ranges_item, set_item), max_size=8).map(Resources)


def points(r: v.RangesValue) -> set[int]:
    return {x for b, e in r for x in range(b, e + 1)}


@given(intervals, intervals)
def test_ranges_match_the_set_model(a_raw: list, b_raw: list) -> None:
    a, b = v.normalize_ranges(a_raw), v.normalize_ranges(b_raw)
    # Normal form: sorted, disjoint and non-adjacent (adjacent and overlapping merged).
    for (_, e1), (b2, _) in pairwise(a):
        assert e1 + 1 < b2
    assert points(a) == {x for lo, hi in a_raw for x in range(lo, hi + 1)}
    assert points(v.ranges_add(a, b)) == points(a) | points(b)
    diff = v.ranges_sub(a, b)
    assert points(diff) == points(a) - points(b)
    assert diff == v.normalize_ranges(diff)  # subtraction splits but stays normal
    assert v.ranges_contains(a, b) == (points(b) <= points(a))
    assert v.ranges_count(a) == len(points(a))


@given(resources, resources)
def test_add_then_subtract_restores(a: Resources, b: Resources) -> None:
    # Ranges and sets are unions, so only what b adds beyond a comes off again exactly.
    b_disjoint = b.scalars() + ((b - b.scalars()) - a)
    assert (a + b_disjoint) - b_disjoint == a
    assert (a + b).scalars() - b.scalars() == a.scalars()


@given(resources, resources)
def test_containment(a: Resources, b: Resources) -> None:
    assert a <= a + b and b <= a + b
    assert a.contains(a) and a.contains(Resources())
    assert a.contains(b) == (b - a).is_empty()
    if a.contains(b) and b.contains(a):
        assert a == b


@given(resources, resources)
def test_never_negative(a: Resources, b: Resources) -> None:
    d = a - b
    assert d <= a
    assert all(q > 0 for q in d.quantities().values())
    qa = a.quantities()
    for name, q in d.quantities().items():
        assert q <= qa[name]
    for it in d:
        assert not v.is_empty(it.value)


@given(resources, resources)
def test_quantities_are_consistent(a: Resources, b: Resources) -> None:
    qa, qb, qs = a.quantities(), b.quantities(), (a + b).quantities()
    for name in qa.keys() | qb.keys():
        assert (
            max(qa.get(name, 0), qb.get(name, 0)) - 1e-9
            <= qs[name]
            <= qa.get(name, 0) + qb.get(name, 0) + 1e-9
        )
    for name, q in qa.items():
        total = sum(it.quantity for it in a if it.name == name)
        assert abs(total - q) < 1e-9


@given(resources)
def test_text_round_trip(a: Resources) -> None:
    text_form = a.without_allocation().non_revocable()
    assert Resources.parse(str(text_form)) == text_form


@given(resources)
def test_wire_round_trip(a: Resources) -> None:
    assert Resources.from_wire(a.to_wire(refinement=True, with_allocation=True)) == a
    assert Resources.from_wire(a.to_wire(refinement=False, with_allocation=True)) == a
    assert Resources.from_wire(a.to_wire()) == a.unallocate()


@given(resources, st.sampled_from(["eng", "ops"]))
def test_allocation_round_trip(a: Resources, role: str) -> None:
    a = a.without_allocation()  # re-tagging merges identities, so start untagged
    tagged = a.allocate(role)
    assert tagged.allocations() == ({role: tagged} if tagged else {})
    assert tagged.unallocate() == a.unallocate()
    assert tagged.quantities() == a.quantities()
    assert a.allocatable_to("eng/web") + a.reserved("ops") == a
