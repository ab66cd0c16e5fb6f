"""Sorter contract tests (run against every sorter) plus DRF- and random-specific behaviour."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mezzo.master.allocator.sorter import DRFSorter, RandomSorter, Sorter, Totals

SorterFactory = Callable[[Totals], Sorter]

FACTORIES: dict[str, SorterFactory] = {
    "drf": lambda totals: DRFSorter(totals),
    "random": lambda totals: RandomSorter(totals, rng=random.Random(7)),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> SorterFactory:
    return FACTORIES[request.param]


# -- contract: every sorter ----------------------------------------------------------------------


def test_added_clients_are_ordered_and_counted(make: SorterFactory) -> None:
    s = make(Totals({"cpus": 10}))
    for name in ("a", "b", "c"):
        s.add(name)
    assert len(s) == 3 and "a" in s and "z" not in s
    assert sorted(s.sort()) == ["a", "b", "c"]
    assert sorted(s) == ["a", "b", "c"]


def test_adding_twice_is_an_error(make: SorterFactory) -> None:
    s = make(Totals())
    s.add("a")
    with pytest.raises(ValueError):
        s.add("a")


def test_inactive_clients_are_not_ordered_but_keep_allocation(make: SorterFactory) -> None:
    s = make(Totals({"cpus": 10}))
    s.add("a")
    s.add("b", active=False)
    s.allocated("b", {"cpus": 2})
    assert s.sort() == ["a"]
    assert s.allocation("b") == {"cpus": 2}
    s.activate("b")
    assert sorted(s.sort()) == ["a", "b"]
    s.deactivate("a")
    assert s.sort() == ["b"]


def test_allocation_accounting(make: SorterFactory) -> None:
    s = make(Totals({"cpus": 10, "mem": 100}))
    s.add("a")
    s.allocated("a", {"cpus": 2, "mem": 10})
    s.allocated("a", {"cpus": 1})
    assert s.allocation("a") == {"cpus": 3, "mem": 10}
    s.unallocated("a", {"cpus": 3, "mem": 10})
    assert s.allocation("a") == {}


def test_remove_forgets_client(make: SorterFactory) -> None:
    s = make(Totals({"cpus": 10}))
    s.add("a")
    s.add("b")
    s.allocated("a", {"cpus": 1})
    s.remove("a")
    assert s.sort() == ["b"] and "a" not in s and len(s) == 1
    s.add("a")
    assert s.allocation("a") == {}


def test_bad_weight_rejected(make: SorterFactory) -> None:
    s = make(Totals())
    with pytest.raises(ValueError):
        s.add("a", weight=0)
    s.add("a")
    with pytest.raises(ValueError):
        s.update_weight("a", -1)


def test_unknown_client_raises(make: SorterFactory) -> None:
    s = make(Totals())
    with pytest.raises(KeyError):
        s.activate("nobody")
    with pytest.raises(KeyError):
        s.share("nobody")


# -- DRF -----------------------------------------------------------------------------------------


def test_drf_orders_by_dominant_share() -> None:
    s = DRFSorter(Totals({"cpus": 10, "mem": 100}))
    for name in ("a", "b", "c"):
        s.add(name)
    s.allocated("a", {"cpus": 5})  # share 0.5
    s.allocated("b", {"mem": 20})  # share 0.2
    assert s.sort() == ["c", "b", "a"]
    assert s.share("a") == pytest.approx(0.5)


def test_drf_ties_break_by_allocation_count_then_name() -> None:
    s = DRFSorter(Totals({"cpus": 10}))
    for name in ("b", "a", "c"):
        s.add(name)
    assert s.sort() == ["a", "b", "c"]
    s.allocated("a", {})  # an empty charge still counts as an allocation
    assert s.sort() == ["b", "c", "a"]


def test_drf_weight_divides_share() -> None:
    s = DRFSorter(Totals({"cpus": 12}))
    s.add("heavy", weight=3)
    s.add("light")
    s.allocated("heavy", {"cpus": 6})  # 0.5 / 3
    s.allocated("light", {"cpus": 3})  # 0.25
    assert s.sort() == ["heavy", "light"]
    s.update_weight("heavy", 1)
    assert s.sort() == ["light", "heavy"]


def test_drf_excluded_resources_do_not_count() -> None:
    s = DRFSorter(Totals({"cpus": 10, "gpus": 1}), excluded=frozenset({"gpus"}))
    s.add("a")
    s.add("b")
    s.allocated("a", {"gpus": 1, "cpus": 1})
    s.allocated("b", {"cpus": 2})
    assert s.sort() == ["a", "b"]
    assert s.share("a") == pytest.approx(0.1)


def test_drf_pool_change_recomputes_shares_lazily() -> None:
    totals = Totals({"cpus": 10, "mem": 10})
    s = DRFSorter(totals)
    s.add("a")
    s.add("b")
    s.allocated("a", {"cpus": 4})
    s.allocated("b", {"mem": 5})
    assert s.sort() == ["a", "b"]
    totals.add({"mem": 90})  # shared pool grows: b's share drops to 0.05
    assert s.sort() == ["b", "a"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alloc", "free", "weight", "toggle", "pool"]),
            st.integers(0, 4),
            st.integers(1, 5),
        ),
        max_size=40,
    )
)
def test_drf_incremental_order_matches_full_recomputation(ops: list[tuple[str, int, int]]) -> None:
    totals = Totals({"cpus": 20, "mem": 50})
    s = DRFSorter(totals)
    names = [f"c{i}" for i in range(5)]
    held: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    weights = dict.fromkeys(names, 1.0)
    active = dict.fromkeys(names, True)
    for n in names:
        s.add(n)
    for op, i, amount in ops:
        n = names[i]
        if op == "alloc":
            q = {"cpus": float(amount), "mem": float(amount * 3 % 7)}
            s.allocated(n, q)
            held[n].append(q)
        elif op == "free" and held[n]:
            s.unallocated(n, held[n].pop())
        elif op == "weight":
            weights[n] = float(amount)
            s.update_weight(n, float(amount))
        elif op == "toggle":
            active[n] = not active[n]
            (s.activate if active[n] else s.deactivate)(n)
        elif op == "pool":
            totals.add({"cpus": float(amount)})

    def expected_key(n: str) -> tuple[float, int, str]:
        cpus = sum(q["cpus"] for q in held[n])
        mem = sum(q["mem"] for q in held[n])
        t = totals.quantities
        share = max(cpus / t["cpus"], mem / t["mem"]) / weights[n]
        return (round(share, 9), len(held[n]), n)

    expected = sorted((n for n in names if active[n]), key=expected_key)
    assert s.sort() == expected


# -- random --------------------------------------------------------------------------------------


def test_random_sorter_is_seeded_and_reproducible() -> None:
    def orders(seed: int) -> list[list[str]]:
        s = RandomSorter(Totals(), rng=random.Random(seed))
        for i in range(10):
            s.add(f"c{i}")
        return [s.sort() for _ in range(5)]

    assert orders(1) == orders(1)
    assert orders(1) != orders(2)


def test_random_sorter_honours_weights() -> None:
    s = RandomSorter(Totals(), rng=random.Random(3))
    s.add("heavy", weight=4)
    s.add("light")
    firsts = Counter(next(iter(s)) for _ in range(2000))
    # P(heavy first) = 4/5.
    assert 0.75 < firsts["heavy"] / 2000 < 0.85


def test_random_sorter_equal_weights_is_roughly_uniform() -> None:
    s = RandomSorter(Totals(), rng=random.Random(4))
    for name in "abcd":
        s.add(name)
    firsts = Counter(next(iter(s)) for _ in range(4000))
    assert all(800 < firsts[name] < 1200 for name in "abcd")
